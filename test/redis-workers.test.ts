/**
 * Task workers on Redis, end to end: real `ptr worker serve` processes and a real redis-server
 * started for the test (see helpers/redis.ts; skipped locally without redis-server, never in CI).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { after, afterEach, before, describe, it } from 'node:test'
import type { RunRecord } from '../src/queue/backend.ts'
import { decodeValue, encodeValue } from '../src/queue/codec.ts'
import { openQueue, setDefaultQueue } from '../src/queue/open.ts'
import { Redis } from 'ioredis'
import { RedisQueueBackend } from '../src/queue/redis.ts'
import { TaskWorker } from '../src/worker/task-worker.ts'
import { REPO, runPtr, waitForOutput } from './helpers/cli.ts'
import { interruptQueuedFlow } from './helpers/queues.ts'
import { maxOverlap } from './helpers/overlap.ts'
import { freePort, redisSkipReason, startRedis } from './helpers/redis.ts'
import type { TestRedis } from './helpers/redis.ts'
import { childProcesses, killWorkers, startWorker } from './helpers/workers.ts'
import * as Q from './fixtures/queue-tasks.ts'
import { killer } from './fixtures/redis-tasks.ts'

const TASKS = 'test/fixtures/queue-tasks.ts'
const PASSWORD = 'pw-s3cret-9f2'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await sleep(50)
  }
}


/** Runs `node --import tsx test/fixtures/redis-submit.ts N MS` and returns what it printed. */
function submit(n: number, ms: number, env: Record<string, string>): Promise<{ results: { i: number; pid: number; start: number; end: number; attempt: number }[]; ids: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/redis-submit.ts', String(n), String(ms)], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`submitter exited ${code}:\n${err}`))
      else resolve(JSON.parse(out))
    })
  })
}

describe('task workers on Redis (real processes)', { skip: redisSkipReason() }, () => {
  let redis: TestRedis
  let queue: RedisQueueBackend
  let env: Record<string, string>

  before(async () => {
    // Persistent (AOF, fsync always) and with a password: every test also checks it never shows.
    redis = await startRedis({ password: PASSWORD, persistent: true })
    queue = await RedisQueueBackend.connect(redis.url, { log: () => undefined })
    setDefaultQueue(redis.url, queue)
    env = { PREFECT_QUEUE_URL: redis.url }
  })
  afterEach(async () => {
    await killWorkers()
  })
  after(async () => {
    setDefaultQueue(undefined)
    await queue.close()
    await redis.stop()
    assert.deepEqual(childProcesses(), [], 'no worker or redis-server process is left behind')
  })

  it('two workers and a submitter, each in its own process: 1,000 runs, each completed exactly once, limits respected', async () => {
    const workers = await Promise.all([0, 1].map(() => startWorker([TASKS, '--limit', '4', '--status-port', '0'], env)))
    const { results, ids } = await submit(1000, 2, env)
    assert.deepEqual(results.map((r) => r.i), Array.from({ length: 1000 }, (_, i) => i), 'every run returns its own result')
    const records = await Promise.all(ids.map((id) => queue.get(id)))
    assert.ok(records.every((r) => r?.state === 'Completed' && r.attempts === 1), 'each run completed once, on its first attempt')
    for (const w of workers) {
      const mine = results.filter((r) => r.pid === w.pid)
      assert.ok(mine.length > 0, `worker ${w.pid} ran some runs`)
      assert.ok(maxOverlap(mine) <= 4, `worker ${w.pid} ran ${maxOverlap(mine)} at once`)
      const status = await (await fetch(w.statusUrl())).text()
      assert.equal((JSON.parse(status) as { completed: number }).completed, mine.length)
      assert.doesNotMatch(status + w.output(), new RegExp(PASSWORD), 'the password never shows in status or output')
      assert.match(w.output(), /from redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0/)
    }
  })

  it('SIGKILL a worker mid-run (default lease): another worker completes its runs within 15 s; nothing lost', async () => {
    const a = await startWorker([TASKS, '--limit', '4'], env)
    const futures = Array.from({ length: 4 }, (_, i) => Q.work.delay(i, 2500))
    await waitForOutput(a.output, /(q_work-\d+ Running[\s\S]*){4}/)
    // Killed before another worker starts: on a loaded machine a worker's start can outlast the runs.
    a.child.kill('SIGKILL')
    const killedAt = Date.now()
    await a.exited
    const b = await startWorker([TASKS, '--limit', '4'], env)
    const results = await Promise.all(futures.map((f) => f.result({ timeout: 30 })))
    const took = Date.now() - killedAt
    assert.ok(took < 15_000, `recovered in ${took} ms`)
    assert.deepEqual(results.map((r) => r.i), [0, 1, 2, 3])
    assert.ok(results.every((r) => r.pid === b.pid && r.attempt === 2))
    for (const f of futures) {
      const record = (await queue.get(f.taskRunId))!
      assert.equal(record.lostLeases, 1)
      assert.match(record.history.map((h) => h.message ?? '').join('\n'), new RegExp(`lease expired: worker \\S+:${a.pid}:`))
    }
  })

  it('a run that keeps killing its workers ends Crashed after its attempts, with a reason that says so', async () => {
    const short = { ...env, PREFECT_TASK_WORKER_LEASE_SECONDS: '0.5', PREFECT_TASK_WORKER_MAX_LOST_LEASES: '2' }
    const future = killer.delay()
    for (let i = 0; i < 2; i++) {
      // The worker may die before it reports serving: the run is waiting for it.
      await startWorker(['test/fixtures/redis-tasks.ts'], short).then((w) => w.exited, () => undefined)
      await waitFor(async () => (await queue.get(future.taskRunId))?.attempts === i + 1)
    }
    // Nobody serves the task now: whoever watches the queue (here, a handle with the same
    // settings as the workers) recovers the lease.
    const watcher = await RedisQueueBackend.connect(redis.url, { leaseMs: 500, maxLostLeases: 2 })
    const stop = watcher.watchWork(['r_killer'], () => undefined)
    try {
      await assert.rejects(future.result({ timeout: 10 }), /lost its worker 2 times/)
    } finally {
      stop()
      await watcher.close()
    }
    const record = (await queue.get(future.taskRunId)) as RunRecord
    assert.equal(record.state, 'Crashed')
    assert.equal(record.attempts, 2)
  })

  it('a queue in another database (/3): a worker claims and completes its runs there, and database 0 never sees them', async () => {
    const other = (await openQueue(redis.url.replace(/\/0$/, '/3'))) as RedisQueueBackend
    const worker = new TaskWorker([Q.qadd], { queue: other, limit: 2 })
    await worker.start()
    try {
      const ids = [randomUUID(), randomUUID(), randomUUID()]
      await other.enqueue(ids.map((id, i) => ({ id, task: 'q_add', name: `q_add-${i}`, args: encodeValue([i, 1], 'args') })))
      const outcomes = await Promise.all(ids.map((id) => other.waitForEnd(id, { signal: AbortSignal.timeout(10_000) })))
      assert.deepEqual(
        outcomes.map((o) => [o.state, decodeValue(o.result!)]),
        [1, 2, 3].map((sum) => ['Completed', sum]),
      )
      for (const id of ids) assert.equal(await queue.get(id), undefined)
    } finally {
      await worker.stop()
      await other.close()
    }
  })

  it('restart redis-server mid-run (AOF on): workers and submitter wait, reconnect, log it once; every run completes', async () => {
    const workers = await Promise.all([0, 1].map(() => startWorker([TASKS, '--limit', '4'], env)))
    const submitting = submit(400, 30, env)
    const completed = () => workers.map((w) => w.output().match(/q_work-\d+ Completed/g)?.length ?? 0).reduce((a, b) => a + b)
    await waitFor(async () => completed() >= 40)
    await redis.kill('SIGKILL')
    assert.ok(completed() < 400, 'redis-server went away mid-run')
    await sleep(1500)
    await redis.restart()
    const { results } = await submitting
    assert.deepEqual(results.map((r) => r.i), Array.from({ length: 400 }, (_, i) => i))
    for (const w of workers) {
      const out = w.output()
      assert.equal(out.match(/lost the connection to the Redis queue/g)?.length, 1, out)
      assert.match(out, /reconnected to the Redis queue redis:\/\/:\*\*\*@/)
      assert.doesNotMatch(out, new RegExp(PASSWORD))
    }
  })
})

describe('Redis outage longer than the lease (real processes)', { skip: redisSkipReason() }, () => {
  let redis: TestRedis
  let queue: RedisQueueBackend
  before(async () => {
    redis = await startRedis({ persistent: true })
    queue = await RedisQueueBackend.connect(redis.url, { log: () => undefined })
    setDefaultQueue(redis.url, queue)
  })
  after(async () => {
    await killWorkers()
    setDefaultQueue(undefined)
    await queue.close()
    await redis.stop()
  })

  it('Ctrl-C of ptr run --runner prefect with no worker: the runs end Cancelled on the Redis queue too', async () => {
    await interruptQueuedFlow(queue, { PREFECT_QUEUE_URL: redis.url })
    assert.deepEqual(await queue.claim('w', ['q_work'], 10), [], 'nothing left for a worker to run')
  })

  it('/health answers 503 saying the queue is unreachable; runs in flight are not run twice, nor more than --limit at once', async () => {
    const env = { PREFECT_QUEUE_URL: redis.url }
    const workers = await Promise.all([0, 1].map(() => startWorker([TASKS, '--limit', '2', '--lease', '1', '--status-port', '0'], env)))
    const futures = Array.from({ length: 6 }, (_, i) => Q.work.delay(i, 3000))
    const starts = () => workers.map((w) => w.output().match(/q_work-\d+ (Running|Retrying)/g)?.length ?? 0)
    await waitFor(async () => starts().reduce((a, b) => a + b) === 4)
    await redis.kill('SIGKILL')
    const health = workers[0]!.statusUrl().replace('/status', '/health')
    const down = await fetch(health)
    assert.equal(down.status, 503)
    assert.match(await down.text(), /unreachable/)
    await sleep(2500)
    await redis.restart()
    const results = await Promise.all(futures.map((f) => f.result({ timeout: 60 })))
    assert.deepEqual(results.map((r) => r.i), [0, 1, 2, 3, 4, 5])
    assert.equal((await fetch(health)).status, 200)
    assert.deepEqual(starts().reduce((a, b) => a + b), 6, `each run started once:\n${workers.map((w) => w.output()).join('\n')}`)
    for (const w of workers) assert.ok(maxOverlap(results.filter((r) => r.pid === w.pid)) <= 2)
  })
})

describe('Redis queue URL errors: one clear line, exit 2, no password', { skip: redisSkipReason() }, () => {
  let redis: TestRedis
  before(async () => {
    redis = await startRedis({ password: PASSWORD })
  })
  after(async () => {
    await redis.stop()
  })

  it('a wrong password', async () => {
    const url = `redis://:wrong-${PASSWORD}@127.0.0.1:${redis.port}/0`
    for (const args of [['worker', 'serve', TASKS, '--queue', url], ['runs', 'list', '--queue', url]]) {
      // No retrying a refused password: ptr stops on its own (runPtr's time limit catches a hang).
      const result = await runPtr(args, { timeoutMs: 45_000 })
      assert.equal(result.code, 2, result.stderr)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.match(result.stderr.trim(), /^ptr: cannot use the Redis queue redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0: authentication failed/)
      assert.doesNotMatch(result.stderr + result.stdout, /s3cret/)
    }
  })

  it('a password in the query (?password=): it connects, and the password shows nowhere (serving line, /status, config view)', async () => {
    const url = `redis://127.0.0.1:${redis.port}/0?password=${PASSWORD}`
    const w = await startWorker([TASKS, '--queue', url, '--status-port', '0'], {})
    try {
      const status = await (await fetch(w.statusUrl())).text()
      const view = await runPtr(['config', 'view', '--show-sources'], { env: { PREFECT_QUEUE_URL: url } })
      assert.equal(view.code, 0, view.stderr)
      for (const text of [w.output(), status, view.stdout + view.stderr]) {
        assert.doesNotMatch(text, /s3cret/)
        assert.match(text, /password=\*\*\*/)
      }
    } finally {
      await killWorkers()
    }
  })

  for (const [label, path, message] of [
    ['a database out of range (/99)', '/99', /^ptr: the Redis queue redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/99 \(from .*\) names database 99, which this server does not have .*use a database from 0 to 15/],
    ['a database that is not a number (/abc)', '/abc', /^ptr: queue URL 'redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/abc' \(from .*\) names database 'abc'; write redis:\/\/\[user:password@\]host:port\/db with db a number/],
  ] as const) {
    it(label, async () => {
      const result = await runPtr(['worker', 'serve', TASKS, '--queue', `redis://:${PASSWORD}@127.0.0.1:${redis.port}${path}`])
      assert.equal(result.code, 2, result.stderr)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.match(result.stderr.trim(), message)
      assert.doesNotMatch(result.stderr + result.stdout, /s3cret/)
    })
  }

  it('a port that is not a number: exit 2, not an internal error', async () => {
    const result = await runPtr(['worker', 'serve', TASKS, '--queue', `redis://:${PASSWORD}@127.0.0.1:notaport/0`])
    assert.equal(result.code, 2, result.stderr)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    assert.match(result.stderr.trim(), /^ptr: queue URL 'redis:\/\/:\*\*\*@127\.0\.0\.1:notaport\/0' \(from .*\) has port 'notaport'; write redis:\/\/\[user:password@\]host:port\/db with port a number/)
    assert.doesNotMatch(result.stderr + result.stdout, /s3cret/)
  })

  it('an unreachable host', async () => {
    const port = await freePort()
    const result = await runPtr(['worker', 'serve', TASKS], { env: { PREFECT_QUEUE_URL: `redis://user:${PASSWORD}@127.0.0.1:${port}/0` } })
    assert.equal(result.code, 2, result.stderr)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    assert.match(result.stderr.trim(), /^ptr: cannot reach the Redis queue redis:\/\/user:\*\*\*@127\.0\.0\.1:\d+\/0: .*ECONNREFUSED/)
    assert.doesNotMatch(result.stderr + result.stdout, /s3cret/)
  })
})

describe('Redis over TLS (rediss://)', { skip: redisSkipReason() }, () => {
  let redis: TestRedis
  before(async () => {
    redis = await startRedis({ tls: true, password: PASSWORD })
  })
  afterEach(async () => {
    await killWorkers()
  })
  after(async () => {
    await redis.stop()
    assert.deepEqual(childProcesses(), [], 'no worker or redis-server process is left behind')
  })

  it('a worker and a submitter that trust the CA run every run over TLS', async () => {
    const env = { PREFECT_QUEUE_URL: redis.url, NODE_EXTRA_CA_CERTS: redis.caFile! }
    const worker = await startWorker([TASKS, '--limit', '4'], env)
    const { results } = await submit(50, 0, env)
    assert.deepEqual(results.map((r) => r.i), Array.from({ length: 50 }, (_, i) => i))
    assert.ok(results.every((r) => r.pid === worker.pid))
    assert.match(worker.output(), /from rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0/)
  })

  it('an untrusted certificate, and plain redis:// to a TLS port: one line each saying what to do, exit 2', async () => {
    const untrusted = await runPtr(['runs', 'list', '--queue', redis.url])
    assert.equal(untrusted.code, 2, untrusted.stderr)
    assert.equal(untrusted.stderr.trim().split('\n').length, 1, untrusted.stderr)
    assert.match(untrusted.stderr, /^ptr: cannot trust the TLS certificate of the Redis queue rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0: .*NODE_EXTRA_CA_CERTS/)
    const plain = await runPtr(['runs', 'list', '--queue', redis.url.replace('rediss:', 'redis:')])
    assert.equal(plain.code, 2, plain.stderr)
    assert.equal(plain.stderr.trim().split('\n').length, 1, plain.stderr)
    assert.match(plain.stderr, /cannot reach the Redis queue .*use rediss:\/\//)
    assert.doesNotMatch(untrusted.stderr + plain.stderr, new RegExp(PASSWORD))
  })
})

describe("the Redis queue's claim connection", { skip: redisSkipReason() }, () => {
  it('the queue is unhealthy (what /health answers) while claims cannot reach Redis, though the main connection can', async () => {
    const redis = await startRedis()
    const queue = await RedisQueueBackend.connect(redis.url, { log: () => undefined })
    const admin = new Redis(redis.url)
    const until = async (what: string, ok: () => boolean) => {
      const deadline = Date.now() + 10_000
      while (!ok()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}: ${JSON.stringify(queue.health())}`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    try {
      assert.deepEqual(await queue.claim('w', ['nothing-queued'], 1), [])
      assert.deepEqual(queue.health(), { ok: true })
      // Redis full (maxclients reached) just as the claim connection drops: it cannot come back.
      const clients = String(await admin.client('LIST')).trim().split('\n')
      const claims = clients.find((line) => / name=ptr-claims /.test(line))
      assert.ok(claims, clients.join('\n'))
      await admin.config('SET', 'maxclients', String(clients.length - 1))
      await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(claims)![1]!)
      await until('it is unhealthy', () => !queue.health().ok)
      const health = queue.health()
      assert.match(health.ok ? '' : health.reason, /cannot be reached for claims \(at its maxclients\?\); ptr reconnects by itself/)
      await admin.config('SET', 'maxclients', '10000')
      await until('it is healthy again', () => queue.health().ok)
      assert.deepEqual(await queue.claim('w', ['nothing-queued'], 1), [])
    } finally {
      admin.disconnect()
      await queue.close()
      await redis.stop()
    }
  })
})
