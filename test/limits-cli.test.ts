/**
 * Tag concurrency limits end to end: the real `ptr` binary in child processes, on a real SQLite
 * file and a real redis-server; `ptr run` processes and `ptr worker serve` processes share a limit.
 */
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { after, afterEach, before, describe, it } from 'node:test'
import { PTR_BIN, REPO, runPtr, tempDir, waitForOutput } from './helpers/cli.ts'
import type { PtrResult } from './helpers/cli.ts'
import { maxOverlap } from './helpers/overlap.ts'
import { redisSkipReason, startRedis } from './helpers/redis.ts'
import type { TestRedis } from './helpers/redis.ts'
import { killWorkers, startWorker } from './helpers/workers.ts'
import { Terminal, hasTmux } from './helpers/terminal.ts'

const FLOW = 'test/fixtures/limits-flow.ts'

interface Line {
  i: number
  pid: number
  phase: 'start' | 'end'
  at: number
  start?: number
  end?: number
}

const readLog = (file: string): Line[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Line)
    : []
const spansOf = (lines: Line[]) => lines.filter((l) => l.phase === 'end').map((l) => ({ start: l.start!, end: l.end! }))

function assertRan(result: PtrResult, what: string): void {
  assert.equal(result.code, 0, `${what} exited ${result.code}:\n${result.stdout}\n${result.stderr}`)
}

const running = new Set<ChildProcess>()

/** SIGKILLs the `ptr run` children a failed test left running. */
async function killRuns(): Promise<void> {
  await Promise.all(
    [...running].map((child) => {
      const closed = new Promise((resolve) => child.once('close', resolve))
      child.kill('SIGKILL')
      return closed
    }),
  )
}

/** A `ptr run` child that can be killed; `result` resolves when it exits. */
function startRun(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; result: Promise<PtrResult> } {
  let child!: ChildProcess
  let out = ''
  const result = runPtr(['run', FLOW, ...args], {
    env,
    onSpawn: (c) => {
      child = c
      running.add(c)
      c.once('close', () => running.delete(c))
      c.stdout!.on('data', (chunk: string) => (out += chunk))
      c.stderr!.on('data', (chunk: string) => (out += chunk))
    },
  })
  return { child, output: () => out, result }
}

describe('ptr concurrency-limit and tag limits on SQLite (real processes)', () => {
  let dir: string
  let cleanup: () => void
  let env: Record<string, string>
  let log: string
  let n = 0

  before(() => {
    ;({ dir, cleanup } = tempDir('ptr-limits-cli-'))
  })
  afterEach(async () => {
    await killRuns()
    await killWorkers()
  })
  after(() => cleanup())
  /** A fresh queue file and log per test. */
  const fresh = () => {
    n++
    log = path.join(dir, `log-${n}.jsonl`)
    env = { PREFECT_QUEUE_URL: `sqlite:${path.join(dir, `queue-${n}.db`)}`, LIMITS_LOG: log, PREFECT_HISTORY: 'false' }
  }
  const ptr = (...args: string[]) => runPtr(args, { env })

  it('create, ls, inspect, reset and delete; mistakes exit 2 with a line that says what to do', async () => {
    fresh()
    assertRan(await ptr('concurrency-limit', 'create', 'db', '2'), 'create')
    assertRan(await ptr('concurrency-limit', 'create', 'api', '10', '--slot-decay-per-second', '10'), 'create api')
    const ls = await ptr('concurrency-limit', 'ls')
    assert.match(ls.stdout, /^NAME\s+LIMIT\s+ACTIVE\s+WAITING\s+DECAY\/S/m)
    assert.match(ls.stdout, /^db\s+2\s+0\s+0\s+-/m)
    assert.match(ls.stdout, /^api\s+10\s+0\s+0\s+10/m)
    const json = JSON.parse((await ptr('concurrency-limit', 'ls', '--json')).stdout) as { name: string; limit: number }[]
    assert.deepEqual(json.map((l) => [l.name, l.limit]), [['api', 10], ['db', 2]])
    assert.match((await ptr('concurrency-limit', 'inspect', 'db')).stdout, /db: 0 of 2 slots in use, 0 waiting/)
    assertRan(await ptr('concurrency-limit', 'reset', 'db'), 'reset')
    assertRan(await ptr('concurrency-limit', 'delete', 'api'), 'delete')
    const missing = await ptr('concurrency-limit', 'inspect', 'api')
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /^ptr: no concurrency limit named 'api' in sqlite:.*; see them with ptr concurrency-limit ls, or create it: ptr concurrency-limit create api 5\n$/)
    const bad = await ptr('concurrency-limit', 'create', 'db', 'two')
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /the limit of 'db' must be an integer from 1 and up, got 'two'/)
  })

  it('two ptr run processes, 6 runs tagged db each, limit 2: peak overlap exactly 2, all 12 complete, AwaitingConcurrencySlot shown', async () => {
    fresh()
    assertRan(await ptr('concurrency-limit', 'create', 'db', '2'), 'create')
    const a = startRun(['--runner', 'concurrent'], env)
    const b = startRun(['--runner', 'concurrent', '--output', 'json'], env)
    const [ra, rb] = await Promise.all([a.result, b.result])
    assertRan(ra, 'first ptr run')
    assertRan(rb, 'second ptr run')
    const lines = readLog(log)
    const spans = spansOf(lines)
    assert.equal(spans.length, 12, 'all 12 runs completed')
    assert.equal(new Set(lines.map((l) => l.pid)).size, 2, 'in two processes')
    assert.equal(maxOverlap(spans), 2)
    // Without the limit the concurrent runner would have run all six of a process at once.
    assert.match(ra.stdout, /db_work-\d AwaitingConcurrencySlot: waiting for a slot of 'db'/)
    const report = JSON.parse(rb.stdout) as { taskRuns: { stateHistory: { type: string; name: string }[] }[] }
    const names = report.taskRuns.flatMap((t) => t.stateHistory.map((s) => `${s.type}/${s.name}`))
    assert.ok(names.includes('Pending/AwaitingConcurrencySlot'), `the JSON report shows the wait: ${[...new Set(names)].join(', ')}`)
    const after = JSON.parse((await ptr('concurrency-limit', 'ls', '--json')).stdout) as { active: number; waiting: number }[]
    assert.deepEqual(after.map((l) => [l.active, l.waiting]), [[0, 0]], 'every slot given back, nobody left in line')
  })

  it('the same through task workers: two workers, two submitting ptr run processes, peak exactly 2', async () => {
    fresh()
    assertRan(await ptr('concurrency-limit', 'create', 'db', '2'), 'create')
    await Promise.all([0, 1].map(() => startWorker([FLOW, '--limit', '6'], env)))
    const [ra, rb] = await Promise.all([startRun(['--runner', 'prefect'], env).result, startRun(['--runner', 'prefect'], env).result])
    assertRan(ra, 'first ptr run')
    assertRan(rb, 'second ptr run')
    const lines = readLog(log)
    const spans = spansOf(lines)
    assert.equal(spans.length, 12)
    assert.equal(maxOverlap(spans), 2)
    assert.equal(new Set(lines.map((l) => l.pid)).size, 2, 'both workers ran some')
  })

  it('a process SIGKILLed while holding a slot: the slot is free again within the lease, and the other process finishes', async () => {
    fresh()
    const lease = { PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS: '1' }
    assertRan(await ptr('concurrency-limit', 'create', 'db', '1'), 'create')
    const holder = startRun(['--runner', 'concurrent'], { ...env, ...lease, LIMITS_COUNT: '1', LIMITS_SLEEP_MS: '60000' })
    await waitForOutput(() => readLog(log).map((l) => l.phase).join(), 'start')
    const other = startRun(['--runner', 'concurrent'], { ...env, ...lease, LIMITS_COUNT: '2', LIMITS_SLEEP_MS: '100' })
    await waitForOutput(other.output, 'AwaitingConcurrencySlot')
    const inspect = await ptr('concurrency-limit', 'inspect', 'db')
    assert.match(inspect.stdout, /db: 1 of 1 slot in use, 2 waiting/)
    assert.match(inspect.stdout, new RegExp(`db_work-0 \\(.*\\)\\s+1\\s+\\S+:${holder.child.pid}\\s`), 'inspect names the holder and its process')
    const killedAt = Date.now()
    holder.child.kill('SIGKILL')
    assert.equal((await holder.result).signal, 'SIGKILL')
    assertRan(await other.result, 'the other ptr run')
    const mine = readLog(log).filter((l) => l.pid === other.child.pid && l.phase === 'start')
    assert.equal(mine.length, 2)
    const after = Math.min(...mine.map((l) => l.at)) - killedAt
    assert.ok(after >= 0 && after <= 1_000 + 700, `the slot came free ${after} ms after the kill (lease 1 s)`)
  })

  it('the live view (real tmux) shows runs awaiting a concurrency slot', { skip: hasTmux() ? undefined : 'tmux is not installed' }, async () => {
    fresh()
    assertRan(await ptr('concurrency-limit', 'create', 'db', '1'), 'create')
    const holder = startRun(['--runner', 'concurrent'], { ...env, LIMITS_COUNT: '1', LIMITS_SLEEP_MS: '60000' })
    await waitForOutput(() => readLog(log).map((l) => l.phase).join(), 'start')
    const term = new Terminal('limits').open(REPO)
    try {
      const vars = Object.entries({ ...env, LIMITS_COUNT: '3', LIMITS_SLEEP_MS: '50' }).map(([k, v]) => `${k}=${v}`).join(' ')
      term.type(`${vars} node ${PTR_BIN} run ${FLOW} --runner concurrent; echo limits-exit=$?`)
      await term.waitFor(/db_work \(map\) .*3 awaiting concurrency slot/)
      holder.child.kill('SIGKILL')
      await holder.result
      assertRan(await ptr('concurrency-limit', 'reset', 'db'), 'reset')
      const done = await term.waitFor(/limits-exit=\d+/, 30_000)
      assert.match(done, /limits-exit=0/)
    } finally {
      term.close()
    }
  })

  it('deleting a limit releases its waiters (ptr concurrency-limit delete from another process)', async () => {
    fresh()
    assertRan(await ptr('concurrency-limit', 'create', 'db', '1'), 'create')
    const holder = startRun(['--runner', 'concurrent'], { ...env, LIMITS_COUNT: '1', LIMITS_SLEEP_MS: '60000' })
    await waitForOutput(() => readLog(log).map((l) => l.phase).join(), 'start')
    const waiting = startRun(['--runner', 'concurrent'], { ...env, LIMITS_COUNT: '3', LIMITS_SLEEP_MS: '50' })
    await waitForOutput(waiting.output, 'AwaitingConcurrencySlot')
    const deletedAt = Date.now()
    assertRan(await ptr('concurrency-limit', 'delete', 'db'), 'delete')
    assertRan(await waiting.result, 'the waiting ptr run')
    const starts = readLog(log).filter((l) => l.pid === waiting.child.pid && l.phase === 'start')
    assert.equal(starts.length, 3)
    assert.ok(Math.max(...starts.map((l) => l.at)) - deletedAt < 1_500, 'they went ahead promptly once the limit was gone')
    holder.child.kill('SIGKILL')
    await holder.result
  })
})

describe('tag limits through task workers on Redis (real processes)', { skip: redisSkipReason() }, () => {
  let redis: TestRedis
  let dir: string
  let cleanup: () => void
  before(async () => {
    redis = await startRedis()
    ;({ dir, cleanup } = tempDir('ptr-limits-redis-'))
  })
  afterEach(async () => {
    await killRuns()
    await killWorkers()
  })
  after(async () => {
    await redis.stop()
    cleanup()
  })

  it('two workers, two submitting ptr run processes, 12 runs tagged db, limit 2: peak overlap exactly 2', async () => {
    const log = path.join(dir, 'log.jsonl')
    const env = { PREFECT_QUEUE_URL: redis.url, LIMITS_LOG: log, PREFECT_HISTORY: 'false' }
    assertRan(await runPtr(['concurrency-limit', 'create', 'db', '2'], { env }), 'create')
    const workers = await Promise.all([0, 1].map(() => startWorker([FLOW, '--limit', '6'], env)))
    const [ra, rb] = await Promise.all([startRun(['--runner', 'prefect'], env).result, startRun(['--runner', 'prefect'], env).result])
    assertRan(ra, 'first ptr run')
    assertRan(rb, 'second ptr run')
    const lines = readLog(log)
    assert.equal(spansOf(lines).length, 12)
    assert.equal(maxOverlap(spansOf(lines)), 2)
    assert.deepEqual(new Set(lines.map((l) => l.pid)), new Set(workers.map((w) => w.pid)), 'both workers ran some')
    assert.match(workers.map((w) => w.output()).join(''), /db_work-\d AwaitingConcurrencySlot \(db\)/)
    const ls = JSON.parse((await runPtr(['concurrency-limit', 'ls', '--json'], { env })).stdout) as { name: string; active: number }[]
    assert.deepEqual(ls.map((l) => [l.name, l.active]), [['db', 0]])
  })
})

