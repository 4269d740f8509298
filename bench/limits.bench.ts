/**
 * Limit targets (tag concurrency limits, concurrency(), rateLimit()):
 * - acquire + release of an uncontended slot, p50: ≤ 1 ms on SQLite (peer: the same two writes as
 *   raw better-sqlite3 transactions), ≤ 2 ms on Redis (peer: two raw ioredis round trips);
 * - 2,000 no-op task runs tagged `db` under `ptr concurrency-limit create db 10`, concurrent runner,
 *   on SQLite: ≥ 1,000 runs/s (peer: the same runs without tags);
 * - the engine's cost of tags without limits: 20,000 tagged runs whose tag has no limit, µs/run,
 *   next to the same runs untagged (the check is one cached set lookup, no SQLite query).
 * The Redis scenario is skipped (with a note) when redis-server is not installed.
 */
import { rmSync } from 'node:fs'
import Database from 'better-sqlite3'
import { Redis } from 'ioredis'
import { ConcurrentTaskRunner, task } from '../src/index.ts'
import type { TaskRunner } from '../src/index.ts'
import { Limits } from '../src/limits/limits.ts'
import { closeDefaultLimits, defaultLimits, openLimitStore } from '../src/limits/open.ts'
import { setDefaultQueue } from '../src/queue/open.ts'
import { tempDir } from '../test/helpers/cli.ts'
import { haveRedisServer, startRedis } from '../test/helpers/redis.ts'
import type { TestRedis } from '../test/helpers/redis.ts'
import type { Scenario } from './harness.ts'
import { timeMs } from './harness.ts'

const ROUNDS = 2000
const RUNS = 2000
const HOT = 20_000
const { dir, cleanup } = tempDir('ptr-limits-bench-')
const SQLITE_URL = `sqlite:${dir}/queue.db`

export const tagged = task({ name: 'tagged_noop', tags: ['db'] }, async (i: number) => i)
export const unlimited = task({ name: 'unlimited_noop', tags: ['not-limited'] }, async (i: number) => i)
export const plain = task({ name: 'plain_noop' }, async (i: number) => i)

const p50 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function acquireReleaseP50(url: string): Promise<number> {
  const store = (await openLimitStore(url))!
  await store.create('bench-slot', 5, 0)
  const limits = new Limits(store)
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint()
    const held = await limits.acquire(['bench-slot'])
    await held.release()
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  await limits.close()
  return p50(times)
}

/** The same two writes as an acquire and a release, as raw better-sqlite3 transactions. */
function rawSqliteP50(): number {
  const db = new Database(`${dir}/raw.db`)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE IF NOT EXISTS slots (id TEXT PRIMARY KEY, name TEXT, lease_until INTEGER)')
  const insert = db.prepare('INSERT INTO slots VALUES (?, ?, ?)')
  const remove = db.prepare('DELETE FROM slots WHERE id = ?')
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint()
    db.transaction(() => insert.run(String(i), 'x', Date.now())).immediate()
    db.transaction(() => remove.run(String(i))).immediate()
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  db.close()
  return p50(times)
}

let redis: Promise<TestRedis> | undefined
let started: TestRedis | undefined
const redisServer = () => (redis ??= startRedis().then((r) => (started = r)))

async function rawRedisP50(): Promise<number> {
  const client = new Redis((await redisServer()).url)
  const times: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = process.hrtime.bigint()
    await client.incr('raw-slot')
    await client.decr('raw-slot')
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  client.disconnect()
  return p50(times)
}

async function runsPerSecond(t: typeof tagged | typeof plain, n: number): Promise<number> {
  const ms = await timeMs(async () => {
    await using runner: TaskRunner = new ConcurrentTaskRunner({ maxConcurrency: 50 })
    const futures = []
    for (let i = 0; i < n; i++) futures.push(runner.submit(t, [i]))
    for (const f of futures) await f.result()
  })
  return (n * 1000) / ms
}

async function withDefaultQueue<T>(fn: () => Promise<T>): Promise<T> {
  setDefaultQueue(SQLITE_URL)
  try {
    return await fn()
  } finally {
    await closeDefaultLimits()
    setDefaultQueue(undefined)
  }
}

async function limitDb(): Promise<void> {
  const store = (await openLimitStore(SQLITE_URL))!
  await store.create('db', 10, 0)
  await store.close()
}

export const scenarios: Scenario[] = [
  {
    name: `acquire + release of an uncontended slot on SQLite, p50 of ${ROUNDS}`,
    unit: 'ms',
    better: 'lower',
    ours: { label: 'ptr limits (sqlite)', measure: () => acquireReleaseP50(SQLITE_URL) },
    peer: { label: 'raw better-sqlite3 insert + delete', measure: async () => rawSqliteP50() },
    target: { text: '≤ 1 ms', met: (ours) => ours <= 1 },
  },
  ...(haveRedisServer()
    ? [
        {
          name: `acquire + release of an uncontended slot on Redis, p50 of ${ROUNDS}`,
          unit: 'ms',
          better: 'lower' as const,
          ours: { label: 'ptr limits (redis)', measure: async () => acquireReleaseP50((await redisServer()).url) },
          peer: { label: 'raw ioredis incr + decr', measure: rawRedisP50 },
          target: { text: '≤ 2 ms', met: (ours: number) => ours <= 2 },
        },
      ]
    : (console.log('limits.bench.ts: redis-server is not installed: the Redis scenario is skipped'), [])),
  {
    name: `${RUNS} tagged no-op runs under a limit of 10 on SQLite (concurrent runner)`,
    unit: 'runs/s',
    better: 'higher',
    ours: { label: 'ptr, tag db limited to 10', measure: () => withDefaultQueue(async () => (await limitDb(), runsPerSecond(tagged, RUNS))) },
    peer: { label: 'the same runs, untagged', measure: () => runsPerSecond(plain, RUNS) },
    target: { text: '≥ 1,000 runs/s', met: (ours) => ours >= 1000 },
    repeats: 3,
  },
  {
    name: `${HOT} no-op runs with a tag that has no limit (SQLite store open) vs untagged`,
    unit: 'µs/run',
    better: 'lower',
    // The store is open before the runs start, as the name says: until it is, a tagged run cannot
    // know whether its tags have limits, and waits in the engine's general way (once per process).
    ours: { label: 'ptr, tagged, no limit', measure: () => withDefaultQueue(async () => (await limitDb(), await defaultLimits(), 1e6 / (await runsPerSecond(unlimited, HOT)))) },
    peer: { label: 'untagged', measure: async () => 1e6 / (await runsPerSecond(plain, HOT)) },
    target: { text: '≤ 1.5× untagged', met: (ours, peer) => peer !== undefined && ours <= peer * 1.5 },
  },
]

// The harness ends this process with process.exit(): stop the server and remove the folders in the
// exit handler, synchronously (a promise would never settle there).
process.once('exit', () => {
  if (started) {
    void started.kill('SIGKILL')
    rmSync(started.dir, { recursive: true, force: true })
  }
  cleanup()
})
