/**
 * Soak: 20,000 runs through two SQLite task workers (limit 8 each, lease 1 s) while one of them is
 * SIGKILLed and restarted every 2 s. Checks that every run ends Completed, that every execution
 * beyond one per run is explained by a kill (an earlier execution of that run was in a worker
 * that was killed after it started), and that no worker ever ran more than its limit at once.
 * Prints the numbers; the scenario's value is the throughput under kills.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { setDefaultQueue } from '../src/queue/open.ts'
import { SqliteQueueBackend } from '../src/queue/sqlite.ts'
import type { Scenario } from './harness.ts'
import { soakStep } from './queue-soak-tasks.ts'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const LIMIT = 8
const TASK_MS = 2
const KILL_EVERY_MS = 2000

interface Worker {
  child: ChildProcess
  pid: number
  killedAt: number | undefined
}

function startWorker(file: string, logDir: string): Promise<Worker> {
  const child = spawn(
    process.execPath,
    [path.join(REPO, 'bin/ptr.js'), 'worker', 'serve', path.join(REPO, 'bench/queue-soak-tasks.ts'), '--limit', String(LIMIT), '--lease', '1', '--queue', `sqlite:${file}`],
    // Enough lost leases that a run killed again and again still completes (the soak checks duplicates, not the Crashed limit).
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SOAK_LOG: logDir, PREFECT_TASK_WORKER_MAX_LOST_LEASES: '1000' } },
  )
  return new Promise((resolve, reject) => {
    let out = ''
    const onData = (chunk: Buffer) => {
      out += chunk.toString()
      if (/ serving \d+ task/.test(out)) {
        // Its run lines are not needed: drop them without holding the pipe.
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        resolve({ child, pid: child.pid!, killedAt: undefined })
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code, signal) => reject(new Error(`soak worker exited before serving (${code ?? signal}):\n${out}`)))
  })
}

export interface SoakReport {
  runs: number
  completed: number
  notCompleted: number
  executions: number
  duplicates: number
  explained: number
  unexplained: number
  kills: number
  maxAtOnce: number
  limit: number
  seconds: number
}

/** The report of the last soak, for the target check. */
let last: SoakReport | undefined

export async function soak(n: number): Promise<SoakReport> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-soak-'))
  const file = path.join(dir, 'queue.db')
  const logDir = path.join(dir, 'log')
  const { mkdirSync } = await import('node:fs')
  mkdirSync(logDir)
  const queue = new SqliteQueueBackend(file)
  setDefaultQueue(`sqlite:${file}`, queue)
  const workers: Worker[] = []
  try {
    const steady = await startWorker(file, logDir)
    let victim = await startWorker(file, logDir)
    workers.push(steady, victim)
    const started = Date.now()
    const futures = Array.from({ length: n }, (_, i) => soakStep.delay(i, TASK_MS))
    let done = false
    const killer = (async () => {
      while (!done) {
        await new Promise((r) => setTimeout(r, KILL_EVERY_MS))
        if (done) break
        victim.killedAt = Date.now()
        const exited = new Promise((r) => victim.child.once('exit', r))
        victim.child.kill('SIGKILL')
        await exited
        victim = await startWorker(file, logDir)
        workers.push(victim)
      }
    })()
    const results = await Promise.all(futures.map((f) => f.result({ timeout: 600 })))
    const seconds = (Date.now() - started) / 1000
    done = true
    await killer
    if (results.some((r, i) => r !== i)) throw new Error('a run returned another run\'s value')

    const db = new Database(file, { readonly: true })
    const states = db.prepare(`SELECT state, count(*) AS n FROM runs GROUP BY state`).all() as { state: string; n: number }[]
    db.close()
    const completed = states.find((s) => s.state === 'Completed')?.n ?? 0
    const total = states.reduce((a, s) => a + s.n, 0)

    // Executions, from each worker's notes: run i, start, end (none if killed first).
    const killedAt = new Map(workers.map((w) => [w.pid, w.killedAt]))
    const perRun = new Map<number, { pid: number; start: number }[]>()
    let executions = 0
    let maxAtOnce = 0
    for (const name of readdirSync(logDir)) {
      const pid = Number(/exec-(\d+)\.log/.exec(name)?.[1])
      const events: [number, number][] = []
      const open = new Map<number, number>()
      for (const line of readFileSync(path.join(logDir, name), 'utf8').split('\n')) {
        const [kind, i, a, b] = line.split(' ')
        if (kind === 'S' && b !== undefined) {
          executions++
          const start = Number(b)
          const list = perRun.get(Number(i)) ?? []
          list.push({ pid, start })
          perRun.set(Number(i), list)
          open.set(Number(i), (open.get(Number(i)) ?? 0) + 1)
          events.push([start, 1])
        } else if (kind === 'E' && a !== undefined) {
          open.set(Number(i), (open.get(Number(i)) ?? 1) - 1)
          events.push([Number(a), -1])
        }
      }
      // Executions a kill cut short end at the kill.
      const cut = killedAt.get(pid)
      for (const [, count] of open) for (let k = 0; k < count; k++) events.push([cut ?? Number.POSITIVE_INFINITY, -1])
      events.sort((x, y) => x[0] - y[0] || x[1] - y[1])
      let now = 0
      for (const [, delta] of events) maxAtOnce = Math.max(maxAtOnce, (now += delta))
    }
    let duplicates = 0
    let explained = 0
    for (const list of perRun.values()) {
      if (list.length < 2) continue
      list.sort((x, y) => x.start - y.start)
      for (const earlier of list.slice(0, -1)) {
        duplicates++
        const kill = killedAt.get(earlier.pid)
        if (kill !== undefined && kill >= earlier.start) explained++
      }
    }
    const kills = workers.filter((w) => w.killedAt !== undefined).length
    last = { runs: n, completed, notCompleted: total - completed, executions, duplicates, explained, unexplained: duplicates - explained, kills, maxAtOnce, limit: LIMIT, seconds }
    return last
  } finally {
    for (const w of workers) w.child.kill('SIGKILL')
    setDefaultQueue(undefined)
    await queue.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const describe = (r: SoakReport) =>
  `    ${r.runs} runs in ${r.seconds.toFixed(1)} s, ${r.kills} kills: ${r.completed} Completed, ${r.notCompleted} not; ` +
  `${r.executions} executions = runs + ${r.executions - r.runs} duplicates (${r.explained} explained by a kill, ${r.unexplained} not); ` +
  `most at once in one worker ${r.maxAtOnce} (limit ${r.limit})`

const healthy = (r: SoakReport | undefined) =>
  r !== undefined && r.completed === r.runs && r.notCompleted === 0 && r.unexplained === 0 && r.executions - r.runs === r.explained && r.maxAtOnce <= r.limit

let measured = 0
export const scenarios: Scenario[] = [
  {
    name: '20000 runs through 2 SQLite workers (limit 8, lease 1 s), one SIGKILLed and restarted every 2 s',
    unit: 'runs/s',
    better: 'higher',
    // The harness warms up once: that is a short soak (2,000 runs), then the full one.
    repeats: 1,
    ours: {
      label: 'ptr queue under kills',
      measure: async () => {
        const report = await soak(measured++ === 0 ? 2000 : 20_000)
        console.log(describe(report))
        return report.runs / report.seconds
      },
    },
    target: { text: 'every run Completed, every duplicate explained by a kill, limit held', met: () => healthy(last) },
  },
]
