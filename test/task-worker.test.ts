/**
 * Task workers end to end: real `ptr worker serve` processes on a real SQLite file, runs put on
 * the queue with t.delay() from this process (or from `ptr run` in another one).
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { TaskRunTimeoutError } from '../src/index.ts'
import type { RunRecord } from '../src/queue/backend.ts'
import { setDefaultQueue } from '../src/queue/open.ts'
import { SqliteQueueBackend } from '../src/queue/sqlite.ts'
import { TaskWorker, tasksOf } from '../src/worker/task-worker.ts'
import { runPtr, tempDir, waitForOutput } from './helpers/cli.ts'
import { maxOverlap } from './helpers/overlap.ts'
import { childProcesses, killWorkers, startWorker } from './helpers/workers.ts'
import * as Q from './fixtures/queue-tasks.ts'
import { other } from './fixtures/queue-other.ts'

const TASKS = 'test/fixtures/queue-tasks.ts'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))


describe('task workers (real processes, SQLite queue)', () => {
  let dir: string
  let cleanup: () => void
  let url: string
  let queue: SqliteQueueBackend
  let env: Record<string, string>

  beforeEach(() => {
    ;({ dir, cleanup } = tempDir('ptr-worker-'))
    const file = path.join(dir, 'queue.db')
    url = `sqlite:${file}`
    queue = new SqliteQueueBackend(file, { leaseMs: 1000 })
    setDefaultQueue(url, queue)
    env = { PREFECT_QUEUE_URL: url, PREFECT_TASK_WORKER_LEASE_SECONDS: '1' }
  })
  afterEach(async () => {
    await killWorkers()
    setDefaultQueue(undefined)
    await queue.close()
    cleanup()
  })
  after(() => {
    assert.deepEqual(childProcesses(), [], 'no worker process is left behind')
  })

  it('1,000 delayed runs over 2 workers (limit 4): each completes exactly once, never more than 4 at once per worker; /status agrees', async () => {
    const workers = await Promise.all([0, 1].map(() => startWorker([TASKS, '--limit', '4', '--status-port', '0'], env)))
    const N = 1000
    const futures = Array.from({ length: N }, (_, i) => Q.work.delay(i, 2))

    // Watch both status endpoints while the runs go through.
    const seen = workers.map(() => ({ maxInFlight: 0, lastFinished: 0, samples: 0, busy: 0 }))
    let polling = true
    const poller = (async () => {
      while (polling) {
        await Promise.all(
          workers.map(async (w, k) => {
            const status = (await (await fetch(w.statusUrl())).json()) as Record<string, any>
            const s = seen[k]!
            assert.equal(status.limit, 4)
            assert.equal(status.state, 'serving')
            assert.deepEqual([...status.tasks].sort(), ['q_add', 'q_attentive', 'q_chatty', 'q_flaky', 'q_slowpoke', 'q_work'])
            assert.ok(status.inFlight <= 4, `status shows ${status.inFlight} in flight`)
            assert.equal(status.running.length, status.inFlight)
            for (const r of status.running) assert.equal(r.task, 'q_work')
            assert.ok(status.finished >= s.lastFinished, 'finished never goes down')
            assert.equal(status.finished, status.completed + status.failed + status.cancelled)
            assert.match(status.worker, new RegExp(`:${w.pid}:`))
            s.lastFinished = status.finished
            s.maxInFlight = Math.max(s.maxInFlight, status.inFlight)
            if (status.inFlight > 0) s.busy++
            s.samples++
          }),
        )
        await sleep(15)
      }
    })()
    const results = await Promise.all(futures.map((f) => f.result()))
    polling = false
    await poller

    assert.deepEqual(results.map((r) => r.i), Array.from({ length: N }, (_, i) => i), 'every run returns its own result')
    const records = (await queue.list({ task: 'q_work', limit: 5000 })) as RunRecord[]
    assert.equal(records.length, N)
    assert.ok(records.every((r) => r.state === 'Completed' && r.attempts === 1), 'each run completed once, on its first attempt')
    for (const w of workers) {
      const mine = results.filter((r) => r.pid === w.pid)
      assert.ok(mine.length > 0, `worker ${w.pid} ran some runs`)
      assert.ok(maxOverlap(mine) <= 4, `worker ${w.pid} ran ${maxOverlap(mine)} at once`)
    }
    // The endpoints' counts match what each worker did.
    for (const [k, w] of workers.entries()) {
      const status = (await (await fetch(w.statusUrl())).json()) as Record<string, any>
      assert.equal(status.completed, results.filter((r) => r.pid === w.pid).length)
      assert.equal(status.inFlight, 0)
      assert.ok(seen[k]!.busy > 0, 'the endpoint showed the worker busy during the run')
      assert.ok(seen[k]!.maxInFlight >= 1)
    }
    const health = await fetch(workers[0]!.statusUrl().replace('/status', '/health'))
    assert.equal(health.status, 200)
  })

  it('a SIGKILLed worker: another completes its runs after the lease expires; the attempt count shows the retry', async () => {
    const a = await startWorker([TASKS, '--limit', '4'], env)
    const futures = Array.from({ length: 4 }, (_, i) => Q.work.delay(i, 1500))
    await waitForOutput(a.output, /(q_work-\d+ Running[\s\S]*){4}/)
    a.child.kill('SIGKILL')
    await a.exited
    const b = await startWorker([TASKS, '--limit', '4'], env)
    const results = await Promise.all(futures.map((f) => f.result({ timeout: 20 })))
    assert.deepEqual(results.map((r) => r.i), [0, 1, 2, 3])
    assert.ok(results.every((r) => r.pid === b.pid && r.attempt === 2))
    for (const f of futures) {
      const record = (await queue.get(f.taskRunId))!
      assert.equal(record.state, 'Completed')
      assert.equal(record.attempts, 2)
      assert.equal(record.lostLeases, 1)
      assert.match(record.history.map((h) => h.message ?? '').join('\n'), new RegExp(`lease expired: worker \\S+:${a.pid}:`))
    }
  })

  it('SIGTERM: in-flight runs finish within the grace period and the worker exits 0', async () => {
    const w = await startWorker([TASKS, '--limit', '3', '--grace', '10'], env)
    const futures = Array.from({ length: 3 }, (_, i) => Q.work.delay(i, 600))
    await waitForOutput(w.output, /(q_work-\d+ Running[\s\S]*){3}/)
    w.child.kill('SIGTERM')
    assert.deepEqual(await w.exited, { code: 0, signal: null })
    assert.match(w.output(), /SIGTERM received: no new runs; waiting for 3 in flight/)
    const results = await Promise.all(futures.map((f) => f.result({ timeout: 5 })))
    assert.ok(results.every((r) => r.pid === w.pid))
  })

  it('SIGTERM past the grace period: unfinished runs go back to the queue, exit 0, and run again elsewhere', async () => {
    const w = await startWorker([TASKS, '--limit', '2', '--grace', '0.2'], env)
    const futures = Array.from({ length: 2 }, (_, i) => Q.work.delay(i, 2000))
    await waitForOutput(w.output, /(q_work-\d+ Running[\s\S]*){2}/)
    w.child.kill('SIGTERM')
    assert.deepEqual(await w.exited, { code: 0, signal: null })
    for (const f of futures) {
      const record = (await queue.get(f.taskRunId))!
      assert.equal(record.state, 'Scheduled')
      assert.equal(record.failures, 0)
      assert.match(record.history.at(-1)?.message ?? '', /stopped after a grace period of 0.2 s/)
    }
    const next = await startWorker([TASKS, '--limit', '2'], env)
    const results = await Promise.all(futures.map((f) => f.result({ timeout: 10 })))
    assert.ok(results.every((r) => r.pid === next.pid && r.attempt === 2))
  })

  it('a run of a task no live worker serves stays Scheduled, and runs when a worker that serves it starts', async () => {
    await startWorker([TASKS, '--limit', '2'], env)
    const future = other.delay('x')
    await sleep(600)
    const waiting = (await queue.get(future.taskRunId))!
    assert.equal(waiting.state, 'Scheduled')
    assert.equal(waiting.attempts, 0)
    assert.equal(future.state.type, 'Scheduled')
    await startWorker(['test/fixtures/queue-other.ts'], env)
    assert.equal(await future.result({ timeout: 10 }), 'other:x')
  })

  it('ptr run of a flow that delays work gets the results back from the worker', async () => {
    const w = await startWorker([TASKS, '--limit', '4'], env)
    const result = await runPtr(['run', 'test/fixtures/queue-flow.ts', '--param', 'n=5'], { env })
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`)
    assert.match(result.stdout, /results=\[100,101,102,103,104\]/)
    await waitForOutput(w.output, /(q_add-\d+ Completed[\s\S]*){5}/)
  })
})

/**
 * Runs `body` with a TaskWorker in this process on a fresh SQLite queue (lease 1 s), which is the
 * default queue meanwhile; stops and removes it all afterwards.
 */
async function withInProcessWorker(
  limit: number,
  body: (worker: { queue: SqliteQueueBackend; url: string; worker: TaskWorker; lines: string[] }) => Promise<void>,
): Promise<void> {
  const { dir, cleanup } = tempDir('ptr-worker-')
  const url = `sqlite:${path.join(dir, 'q.db')}`
  const queue = new SqliteQueueBackend(path.join(dir, 'q.db'), { leaseMs: 1000 })
  setDefaultQueue(url, queue)
  const lines: string[] = []
  const worker = new TaskWorker(tasksOf(Q), { queue, limit, log: (l) => lines.push(l) })
  await worker.start()
  try {
    await body({ queue, url, worker, lines })
  } finally {
    await worker.stop()
    setDefaultQueue(undefined)
    await queue.close()
    cleanup()
  }
}

describe('task worker in process: retries, logs, timeouts', () => {
  it('retries on the queue, stores logs with the run, ends timed-out runs TimedOut', async () => {
    await withInProcessWorker(4, async ({ queue, worker, lines }) => {
      const flaky = Q.flaky.delay(2)
      const chatty = Q.chatty.delay('ada')
      const slow = Q.slowpoke.delay()
      assert.equal(await flaky.result(), 2)
      assert.equal(await chatty.result(), 3)
      await assert.rejects(slow.result(), (e: Error) => e instanceof TaskRunTimeoutError && /timed out after 0.2 s/.test(e.message))
      assert.equal(slow.state.name, 'TimedOut')
      // A task that listens to its signal hears the timeout.
      const attentive = Q.attentive.delay()
      await assert.rejects(attentive.result(), TaskRunTimeoutError)
      assert.deepEqual(Q.aborts, ["TaskRunTimeoutError: 'q_attentive-0' timed out after 0.2 s"])
      const record = (await queue.get(flaky.taskRunId))!
      assert.equal(record.attempts, 2)
      assert.equal(record.failures, 1)
      assert.deepEqual(record.history.map((h) => h.name), ['Scheduled', 'Running', 'AwaitingRetry', 'Retrying', 'Completed'])
      assert.deepEqual((await queue.logs(chatty.taskRunId)).map((l) => `${l.level} ${l.message}`), ['info hello ada', 'warning careful'])
      assert.ok(lines.some((l) => / q_chatty-\d+ \| hello ada$/.test(l)), lines.join('\n'))
      const status = worker.status()
      assert.equal(status.completed, 2)
      assert.equal(status.failed, 2)
      assert.equal(status.retried, 1)
    })
  })

  it('a run cancelled while it runs is stopped by its worker and ends Cancelled, on the queue and for its future', async () => {
    await withInProcessWorker(2, async ({ queue, worker, lines }) => {
      const long = Q.work.delay(1, 10_000)
      await waitForOutput(() => lines.join('\n'), / q_work-\d+ Running/)
      const started = Date.now()
      await queue.cancel(long.taskRunId, 'no longer needed')
      assert.equal((await long.wait()).type, 'Cancelled')
      assert.ok(Date.now() - started < 3000, `stopped after ${Date.now() - started} ms (lease 1 s, renewed every third)`)
      const record = (await queue.get(long.taskRunId))!
      assert.equal(record.state, 'Cancelled')
      assert.equal(record.failures, 0)
      assert.equal(worker.status().cancelled, 1)
      assert.equal(worker.status().failed, 0)
    })
  })

  it('refuses two served tasks with one name, and a limit below 1', () => {
    assert.throws(() => new TaskWorker([Q.qadd], { limit: 0 }), /`limit` to be an integer from 1 and up, got `0`/)
    assert.throws(() => new TaskWorker([Q.qadd, Q.qadd.withOptions({ retries: 1 })]), /two served tasks are named 'q_add'/)
  })
})

describe('ptr worker serve: bad input (one line, exit 2)', () => {
  const project = tempDir()
  after(project.cleanup)
  const corrupt = path.join(project.dir, 'corrupt.db')
  writeFileSync(corrupt, 'this is not a database, just text that is long enough to look like a header '.repeat(20))
  writeFileSync(path.join(project.dir, 'none.ts'), 'export const x = 1\n')
  for (const [label, args, message] of [
    ['unknown scheme, password hidden', [TASKS, '--queue', 'postgres://ann:hunter2@db/q'], /^ptr: flag --queue must be a queue URL: sqlite:PATH, redis:\/\/.*, got 'postgres:\/\/ann:\*\*\*@db\/q'$/],
    ['corrupt queue file', [TASKS, '--queue', `sqlite:${corrupt}`], /^ptr: queue file .*corrupt\.db is not a ptr queue/],
    ['a file with no tasks', [path.join(project.dir, 'none.ts')], /^ptr: .*none\.ts exports no tasks; export the tasks/],
    ['limit 0', [TASKS, '--limit', '0'], /^ptr: flag --limit must be an integer from 1 and up, got '0'$/],
    ['limit -3', [TASKS, '--limit=-3'], /^ptr: flag --limit must be an integer from 1 and up, got '-3'$/],
  ] as const) {
    it(label, async () => {
      const result = await runPtr(['worker', 'serve', ...args], { env: { PREFECT_QUEUE_URL: `sqlite:${project.dir}/q.db` } })
      assert.equal(result.code, 2, result.stderr)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.match(result.stderr.trim(), message)
      assert.doesNotMatch(result.stderr + result.stdout, /hunter2/)
    })
  }
})

describe('PrefectTaskRunner', () => {
  it('sends submits and maps to the queue; futures in arguments and waitFor work; retries happen once, on the queue', async () => {
    const { PrefectTaskRunner } = await import('../src/index.ts')
    const { default: onTheQueue } = await import('./fixtures/queue-runner-flow.ts')
    await withInProcessWorker(3, async ({ queue, url, worker }) => {
      const { state } = await onTheQueue.run(undefined, { taskRunner: new PrefectTaskRunner({ queue: url }) })
      assert.equal(state.type, 'Completed', state.error?.stack)
      assert.deepEqual(state.result, [14, 15, 16])
      const runs = await queue.list({ limit: 100 })
      assert.equal(runs.length, 6, 'every submit and map went through the queue')
      const flakyRun = runs.find((r) => r.task === 'q_flaky')!
      assert.equal(flakyRun.attempts, 2, 'the worker retried it; the engine did not retry again')
      assert.equal(worker.status().completed, 6)
    })
  })

  it('a queued run is Scheduled while it waits and Running only once a worker starts it (--runner prefect and t.delay())', async () => {
    const { flow, onRunEvent, PrefectTaskRunner, unmapped } = await import('../src/index.ts')
    const names = new Map<string, string[]>()
    let running = 0
    let maxRunning = 0
    const stop = onRunEvent((event) => {
      if (event.kind !== 'task-run-state') return
      names.set(event.taskRun.id, [...(names.get(event.taskRun.id) ?? []), event.state.name])
      if (event.previous?.type === 'Running') running--
      if (event.state.type === 'Running') maxRunning = Math.max(maxRunning, ++running)
    })
    await withInProcessWorker(1, async ({ url }) => {
      const three = flow({ name: 'three_on_one_worker' }, async () => Q.work.map([1, 2, 3], unmapped(250)).result())
      const { state } = await three.run(undefined, { taskRunner: new PrefectTaskRunner({ queue: url }) })
      assert.equal(state.type, 'Completed', state.error?.stack)
      assert.equal(maxRunning, 1, 'the worker runs one at a time, and the view shows one running at a time')
      assert.deepEqual([...names.values()], Array(3).fill(['Pending', 'Scheduled', 'Running', 'Completed']))

      const delayed = Q.work.delay(4, 250)
      const stateName = (): string => delayed.state.name
      assert.equal(stateName(), 'Scheduled')
      const deadline = Date.now() + 5000
      while (stateName() !== 'Running' && Date.now() < deadline) await sleep(10)
      assert.equal(stateName(), 'Running')
      assert.equal((await delayed.result()).i, 4)
      assert.equal(delayed.state.name, 'Completed')
    }).finally(stop)
  })

  it('ptr run --runner prefect runs the flow\'s tasks on a worker process', async () => {
    const { dir, cleanup } = tempDir('ptr-worker-')
    after(cleanup)
    const env = { PREFECT_QUEUE_URL: `sqlite:${dir}/q.db` }
    const w = await startWorker([TASKS, '--limit', '2'], env)
    try {
      const result = await runPtr(['run', 'test/fixtures/queue-runner-flow.ts', '--runner', 'prefect'], { env })
      assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`)
      assert.match(result.stdout, /mapped=\[14,15,16\] flaky=2/)
      await waitForOutput(w.output, /q_flaky-\d+ Completed/)
    } finally {
      await killWorkers()
    }
  })
})

describe('ptr runs list / show / prune', () => {
  it('lists runs by state and task, shows one with history, attempts, worker, logs; --json for scripts', async () => {
    const { dir, cleanup } = tempDir('ptr-worker-')
    after(cleanup)
    const url = `sqlite:${dir}/q.db`
    const queue = new SqliteQueueBackend(`${dir}/q.db`, { leaseMs: 1000 })
    setDefaultQueue(url, queue)
    const worker = new TaskWorker([Q.flaky, Q.chatty], { queue, limit: 2 })
    await worker.start()
    const flaky = Q.flaky.delay(2)
    const chatty = Q.chatty.delay('bob')
    const waiting = other.delay('later')
    await Promise.all([flaky.result(), chatty.result()])
    await worker.stop()
    setDefaultQueue(undefined)
    await queue.close()
    const env = { PREFECT_QUEUE_URL: url }

    const list = await runPtr(['runs', 'list'], { env })
    assert.equal(list.code, 0, list.stderr)
    assert.match(list.stdout, /^ID\s+TASK\s+NAME\s+STATE\s+ATTEMPTS\s+WORKER/)
    assert.equal(list.stdout.trim().split('\n').length, 4)
    const scheduled = JSON.parse((await runPtr(['runs', 'list', '--state', 'Scheduled', '--json'], { env })).stdout) as { id: string; task: string }[]
    assert.deepEqual(scheduled.map((r) => [r.id, r.task]), [[waiting.taskRunId, 'q_other']])
    const byTask = JSON.parse((await runPtr(['runs', 'list', '--task', 'q_flaky', '--json'], { env })).stdout) as { id: string }[]
    assert.deepEqual(byTask.map((r) => r.id), [flaky.taskRunId])

    const show = await runPtr(['runs', 'show', flaky.taskRunId], { env })
    assert.equal(show.code, 0, show.stderr)
    assert.match(show.stdout, /^state\s+Completed$/m)
    assert.match(show.stdout, /^attempts 2 \(failures 1, lost leases 0, retries allowed 2\)$/m)
    assert.match(show.stdout, /AwaitingRetry .*flaky failure on attempt 1; retrying in/)
    assert.match(show.stdout, /^result\s+2$/m)
    const shown = JSON.parse((await runPtr(['runs', 'show', chatty.taskRunId, '--json'], { env })).stdout) as Record<string, any>
    assert.equal(shown.result, 3)
    assert.deepEqual(shown.args, ['bob'])
    assert.deepEqual(shown.logs.map((l: { message: string }) => l.message), ['hello bob', 'careful'])
    assert.match(shown.worker, new RegExp(`:${process.pid}:`))

    const missing = await runPtr(['runs', 'show', 'nope'], { env })
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /^ptr: no run nope on sqlite:.*; list runs with: ptr runs list\n$/)
    const badState = await runPtr(['runs', 'list', '--state', 'Done'], { env })
    assert.equal(badState.code, 2)
    assert.match(badState.stderr, /--state must be one of Scheduled, Running/)

    // Pruning: nothing ended a day ago; then every finished run goes, the Scheduled one stays.
    const badAge = await runPtr(['runs', 'prune', '--older-than', 'a week'], { env })
    assert.equal(badAge.code, 2)
    assert.match(badAge.stderr, /^ptr: --older-than must be a duration like 30s, 15m, 12h or 7d, got 'a week'\n$/)
    const none = await runPtr(['runs', 'prune', '--older-than', '1d', '--json'], { env })
    assert.equal(none.code, 0, none.stderr)
    assert.deepEqual(JSON.parse(none.stdout), { pruned: 0 })
    await new Promise((resolve) => setTimeout(resolve, 20))
    const pruned = await runPtr(['runs', 'prune', '--older-than', '0s'], { env })
    assert.equal(pruned.code, 0, pruned.stderr)
    assert.match(pruned.stdout, /^pruned 2 finished runs older than 0s from sqlite:/)
    const left = JSON.parse((await runPtr(['runs', 'list', '--json'], { env })).stdout) as { id: string }[]
    assert.deepEqual(left.map((r) => r.id), [waiting.taskRunId])
  })
})
