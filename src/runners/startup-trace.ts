import { appendFileSync } from 'node:fs'
import { isMainThread, threadId } from 'node:worker_threads'

/**
 * `PTR_STARTUP_TRACE=FILE`: each step of a run's start-up (main process, every pool worker)
 * appends `<epoch ms> <pid[/thread]> <step>` to FILE, for `bench/startup-breakdown.ts`.
 * Off (one env read) when the variable is unset.
 */
const FILE = process.env.PTR_STARTUP_TRACE
const who = `${process.pid}${isMainThread ? '' : `/${threadId}`}`

export function startupMark(step: string): void {
  if (FILE) appendFileSync(FILE, `${(performance.timeOrigin + performance.now()).toFixed(1)} ${who} ${step}\n`)
}
