import type { ChalkInstance } from 'chalk'
import type { State } from '../engine/states.ts'
import { colorState } from './style.ts'
import type { RunRecorder } from './recorder.ts'

/**
 * The end-of-run summary, the same for every renderer: each failure with its cause and attempts,
 * the slowest runs, the flow's final state, and a last line with counts by state and wall time.
 */
export function formatSummary(recorder: RunRecorder, flowState: State | undefined, c: ChalkInstance): string {
  const lines: string[] = ['']
  for (const failure of recorder.failures) {
    const attempts = failure.attempts === 1 ? '1 attempt' : `${failure.attempts} attempts`
    lines.push(`${c.red('✗')} ${failure.taskRunName} ${colorState(c, failure.state.name, failure.state.type)} after ${attempts}: ${failure.state.message ?? ''}`)
    const cause = failure.state.error?.cause
    if (cause instanceof Error && cause.message !== failure.state.message) lines.push(c.dim(`    caused by ${cause.name}: ${cause.message}`))
  }
  if (recorder.failureCount > recorder.failures.length) lines.push(`  … and ${recorder.failureCount - recorder.failures.length} more failures`)
  if (recorder.slowest.length > 0) {
    lines.push(`slowest: ${recorder.slowest.map((s) => `${s.taskRunName} ${s.seconds.toFixed(2)} s`).join(', ')}`)
  }
  if (flowState) {
    const name = recorder.flowRun?.name ?? 'flow run'
    const why = flowState.type === 'Completed' ? '' : `: ${flowState.message ?? ''}`
    lines.push(`flow run ${c.bold(name)} ${colorState(c, flowState.name, flowState.type)}${why}`)
  }
  lines.push(countsLine(recorder))
  return `${lines.join('\n')}\n`
}

/** `12 task runs: 10 Completed, 2 Failed in 1.23 s`. */
export function countsLine(recorder: RunRecorder): string {
  const counts = [...recorder.counts.entries()].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${n} ${name}`)
  const total = `${recorder.taskRuns} task run${recorder.taskRuns === 1 ? '' : 's'}`
  return `${total}${counts.length ? `: ${counts.join(', ')}` : ''} in ${recorder.wallSeconds.toFixed(2)} s`
}
