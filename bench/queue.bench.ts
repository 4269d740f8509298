/**
 * Task-worker targets: one `ptr worker serve` process (limit 10) and this process submitting.
 * Throughput of 5,000 no-op delayed runs end to end (next to a raw better-sqlite3
 * insert + claim + complete loop), and pickup latency of a single run on an idle worker.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { setDefaultQueue } from '../src/queue/open.ts'
import { SqliteQueueBackend } from '../src/queue/sqlite.ts'
import type { Scenario } from './harness.ts'
import { timeMs } from './harness.ts'
import { pickupScenarios } from './pickup.ts'
import { noop } from './queue-tasks.ts'

const N = 5000
const REPO = fileURLToPath(new URL('..', import.meta.url))
let setup: Promise<{ queue: SqliteQueueBackend; dir: string }> | undefined
let worker: ChildProcess | undefined

function start(): Promise<{ queue: SqliteQueueBackend; dir: string }> {
  setup ??= (async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-'))
    const file = path.join(dir, 'queue.db')
    const queue = new SqliteQueueBackend(file)
    setDefaultQueue(`sqlite:${file}`, queue)
    worker = spawn(process.execPath, [path.join(REPO, 'bin/ptr.js'), 'worker', 'serve', path.join(REPO, 'bench/queue-tasks.ts'), '--limit', '10', '--queue', `sqlite:${file}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    // The worker prints a line per state change; its stdout is ignored so printing costs nothing here.
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(async () => {
        // Serving once it claims: delay one run and wait for it.
        clearInterval(check)
        try {
          await noop.delay(-1).result({ timeout: 30 })
          resolve()
        } catch (error) {
          reject(error)
        }
      }, 10)
    })
    process.once('exit', () => {
      worker?.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
    return { queue, dir }
  })()
  return setup
}

/** Stops the worker and removes the queue (run.ts exits after the benchmarks anyway). */
export async function teardown(): Promise<void> {
  worker?.kill('SIGKILL')
}

async function throughput(): Promise<number> {
  const { queue } = await start()
  const ms = await timeMs(async () => {
    const futures = []
    for (let i = 0; i < N; i++) futures.push(noop.delay(i))
    for (const f of futures) await f.result()
  })
  await queue.prune(Date.now() + 1)
  return (N / ms) * 1000
}

/** Raw peer: better-sqlite3 alone, one process: insert N, then claim 10 / complete 10 until done. */
async function rawLoop(): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-raw-'))
  const db = new Database(path.join(dir, 'raw.db'))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec(`CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT NOT NULL, args BLOB, result BLOB, lease_until INTEGER);
           CREATE INDEX jobs_q ON jobs(id) WHERE state = 'queued'`)
  const insert = db.prepare(`INSERT INTO jobs (state, args) VALUES ('queued', ?)`)
  const claim = db.prepare(`UPDATE jobs SET state = 'running', lease_until = ? WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 10) RETURNING id, args`)
  const complete = db.prepare(`UPDATE jobs SET state = 'done', result = ? WHERE id = ?`)
  const completeAll = db.transaction((rows: { id: number; args: Buffer }[]) => {
    for (const row of rows) complete.run(row.args, row.id)
  })
  const ms = await timeMs(async () => {
    db.transaction(() => {
      for (let i = 0; i < N; i++) insert.run(Buffer.from([i & 255]))
    })()
    for (;;) {
      const rows = claim.all(Date.now() + 10_000) as { id: number; args: Buffer }[]
      if (rows.length === 0) break
      completeAll(rows)
    }
  })
  db.close()
  rmSync(dir, { recursive: true, force: true })
  return (N / ms) * 1000
}


export const scenarios: Scenario[] = [
  {
    name: `${N} no-op delayed runs end to end, 1 worker (limit 10) + 1 submitter vs raw better-sqlite3 loop`,
    unit: 'runs/s',
    better: 'higher',
    repeats: 3,
    ours: { label: 'ptr queue', measure: throughput },
    peer: { label: 'raw insert+claim(10)+complete', measure: rawLoop },
    target: { text: '≥ 2000 runs/s', met: (ours) => ours >= 2000 },
  },
  ...pickupScenarios({ prefix: '', label: 'ptr queue', start, p50: 10, p99: 50 }),
]
