import { spawn, execFileSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { PTR_BIN, REPO, waitForOutput } from './cli.ts'

export interface WorkerProcess {
  child: ChildProcess
  pid: number
  output(): string
  /** Resolves with the exit code (or signal) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  statusUrl(): string
}

const spawned = new Set<ChildProcess>()

/** Starts `ptr worker serve ...args` and waits until it serves. Kill leftovers with killWorkers(). */
export async function startWorker(args: readonly string[], env: Record<string, string | undefined>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [PTR_BIN, 'worker', 'serve', ...args], {
    cwd: REPO,
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  spawned.add(child)
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c))
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      spawned.delete(child)
      resolve({ code, signal })
    }),
  )
  await Promise.race([
    waitForOutput(() => out, / serving \d+ task/, 30_000),
    exited.then((e) => {
      throw new Error(`worker exited early (${e.code ?? e.signal}):\n${out}`)
    }),
  ])
  return {
    child,
    pid: child.pid!,
    output: () => out,
    exited,
    statusUrl: () => {
      const match = /status on (http:\/\/\S+\/status)/.exec(out)
      if (!match) throw new Error(`no status URL in:\n${out}`)
      return match[1]!
    },
  }
}

/** SIGKILLs every worker still running (tests call it in after()). */
export async function killWorkers(): Promise<void> {
  const waits = [...spawned].map((child) => new Promise((resolve) => {
    child.once('close', resolve)
    child.kill('SIGKILL')
  }))
  await Promise.all(waits)
}

/** Child processes of this process still alive (`ps` itself and tsx's esbuild service excluded). */
export function childProcesses(): string[] {
  const out = execFileSync('ps', ['--ppid', String(process.pid), '-o', 'pid=,comm='], { encoding: 'utf8' })
  return out.split('\n').map((l) => l.trim()).filter((l) => l && !/\b(ps|esbuild)$/.test(l))
}
