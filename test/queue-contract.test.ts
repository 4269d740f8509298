/**
 * The contract every queue backend keeps. One suite, run against every backend in
 * QUEUES_UNDER_TEST; each test uses a fresh queue and at least two handles (connections) on it.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { NewRun, QueueBackend } from '../src/queue/backend.ts'
import { decodeValue, encodeValue, storeError } from '../src/queue/codec.ts'
import type { QueueUnderTest } from './helpers/queues.ts'
import { QUEUES_UNDER_TEST } from './helpers/queues.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`)
    await sleep(10)
  }
}
const newRun = (task: string, value: unknown = 1, extra: Partial<NewRun> = {}): NewRun => ({
  id: randomUUID(),
  task,
  name: `${task}-x`,
  args: encodeValue([value], 'args'),
  ...extra,
})

for (const factory of QUEUES_UNDER_TEST) {
  const skip = factory.skip?.()
  describe(`${factory.kind} queue backend contract`, { skip }, () => {
    let queue: QueueUnderTest
    let a: QueueBackend
    let b: QueueBackend
    const LEASE = 300
    before(async () => {
      queue = await factory.create()
      a = await queue.open({ leaseMs: LEASE, maxLostLeases: 2 })
      b = await queue.open({ leaseMs: LEASE, maxLostLeases: 2 })
    })
    after(async () => {
      await queue.cleanup()
    })
    // Each test works on its own task names, so tests do not see each other's runs.
    const t = (name: string) => `${name}-${randomUUID().slice(0, 8)}`

    it('enqueue is idempotent per id; a new run is Scheduled with its history', async () => {
      const task = t('add')
      const run = newRun(task, 5, { retries: 2 })
      await a.enqueue([run])
      await a.enqueue([{ ...run, name: 'other' }])
      const record = await b.get(run.id)
      assert.ok(record)
      assert.equal(record.state, 'Scheduled')
      assert.equal(record.name, run.name)
      assert.equal(record.retries, 2)
      assert.equal(record.attempts, 0)
      assert.deepEqual(decodeValue(Buffer.from(record.args)), [5])
      assert.deepEqual(record.history.map((h) => h.state), ['Scheduled'])
      assert.equal((await b.list({ task })).length, 1)
    })

    it('claims only the tasks asked for, at most max, oldest first, with a lease', async () => {
      const served = t('served')
      const other = t('other')
      const runs = [newRun(served, 1), newRun(other, 2), newRun(served, 3), newRun(served, 4)]
      for (const run of runs) await a.enqueue([run])
      const claimed = await b.claim('w1', [served], 2)
      assert.deepEqual(claimed.map((c) => c.runId), [runs[0]!.id, runs[2]!.id])
      assert.equal(claimed[0]!.attempt, 1)
      assert.equal(claimed[0]!.task, served)
      const record = await a.get(runs[0]!.id)
      assert.equal(record?.state, 'Running')
      assert.equal(record?.worker, 'w1')
      assert.ok(record?.leaseUntil && record.leaseUntil > Date.now())
      assert.equal((await a.get(runs[1]!.id))?.state, 'Scheduled', 'a run of another task is never claimed')
      assert.deepEqual((await a.claim('w2', [served], 5)).map((c) => c.runId), [runs[3]!.id])
      assert.deepEqual(await a.claim('w2', [served], 5), [])
      assert.deepEqual(await a.claim('w2', [served], 0), [])
    })

    it('claims are atomic across handles: 300 runs claimed by two claimers, each exactly once', async () => {
      const task = t('atomic')
      const runs = Array.from({ length: 300 }, (_, i) => newRun(task, i))
      await a.enqueue(runs)
      const seen: string[] = []
      const claimer = async (backend: QueueBackend, worker: string) => {
        for (;;) {
          const got = await backend.claim(worker, [task], 7)
          if (got.length === 0) return
          seen.push(...got.map((c) => c.runId))
          await Promise.all(got.map((c) => backend.complete(c, encodeValue(null, 'result'))))
        }
      }
      await Promise.all([claimer(a, 'w1'), claimer(b, 'w2'), claimer(a, 'w3')])
      assert.equal(seen.length, 300)
      assert.equal(new Set(seen).size, 300)
    })

    it('complete stores the result and ends the run; waitForEnd on another handle resolves', async () => {
      const task = t('complete')
      const run = newRun(task)
      await a.enqueue([run])
      const ended = b.waitForEnd(run.id)
      const [claimed] = await a.claim('w1', [task], 1)
      assert.ok(claimed)
      assert.equal(await a.complete(claimed, encodeValue({ ok: new Date(5) }, 'result')), true)
      const outcome = await ended
      assert.equal(outcome.state, 'Completed')
      assert.deepEqual(decodeValue(Buffer.from(outcome.result!)), { ok: new Date(5) })
      const record = (await b.get(run.id))!
      assert.equal(record.endedAt, outcome.endedAt)
      assert.ok(record.endedAt && record.startedAt && record.endedAt >= record.startedAt)
      assert.deepEqual(record.history.map((h) => h.state), ['Scheduled', 'Running', 'Completed'])
      assert.equal(await a.complete(claimed, encodeValue(2, 'result')), false, 'a run completes once')
      assert.equal((await b.waitForEnd(run.id)).state, 'Completed', 'waitForEnd of an ended run resolves at once')
    })

    it('fail stores the error; a variant name (TimedOut) is kept', async () => {
      const task = t('fail')
      const [r1, r2] = [newRun(task), newRun(task)]
      await a.enqueue([r1, r2])
      const [c1, c2] = await a.claim('w1', [task], 2)
      await a.fail(c1!, storeError(new TypeError('bad input')))
      await a.fail(c2!, storeError(new Error('too slow')), 'TimedOut')
      const f1 = await b.waitForEnd(r1.id)
      assert.equal(f1.state, 'Failed')
      assert.equal(f1.error?.name, 'TypeError')
      assert.equal(f1.error?.message, 'bad input')
      assert.equal((await b.get(r1.id))?.failures, 1)
      const f2 = await b.waitForEnd(r2.id)
      assert.equal(f2.stateName, 'TimedOut')
    })

    it('retry schedules another attempt after the delay; attempts and failures are counted', async () => {
      const task = t('retry')
      const run = newRun(task, 1, { retries: 1 })
      await a.enqueue([run])
      const [first] = await a.claim('w1', [task], 1)
      assert.equal(await a.retry(first!, storeError(new Error('flaky')), 250), true)
      const waiting = await b.get(run.id)
      assert.equal(waiting?.state, 'Scheduled')
      assert.equal(waiting?.stateName, 'AwaitingRetry')
      assert.deepEqual(await b.claim('w2', [task], 1), [], 'not claimable before its delay')
      const woke = new Promise<number>((resolve) => {
        const started = Date.now()
        const stop = b.watchWork([task], async () => {
          const got = await b.claim('w2', [task], 1)
          if (got.length) {
            stop()
            resolve(Date.now() - started)
            await b.complete(got[0]!, encodeValue('ok', 'result'))
          }
        })
      })
      const delay = await woke
      assert.ok(delay >= 150 && delay < 2000, `claimed after ${delay} ms`)
      assert.equal((await a.waitForEnd(run.id)).state, 'Completed')
      const record = (await a.get(run.id))!
      assert.equal(record.attempts, 2)
      assert.equal(record.failures, 1)
      assert.deepEqual(record.history.map((h) => h.name), ['Scheduled', 'Running', 'AwaitingRetry', 'Retrying', 'Completed'])
    })

    it('an expired lease goes back to the queue; the stale holder can no longer write', async () => {
      const task = t('lease')
      const run = newRun(task)
      await a.enqueue([run])
      const [stale] = await a.claim('dead', [task], 1)
      await sleep(LEASE + 50)
      assert.ok((await b.recoverExpired()) >= 1)
      const back = await b.get(run.id)
      assert.equal(back?.state, 'Scheduled')
      assert.equal(back?.lostLeases, 1)
      const [fresh] = await b.claim('alive', [task], 1)
      assert.equal(fresh?.attempt, 2)
      assert.equal(await a.complete(stale!, encodeValue('late', 'result')), false)
      assert.deepEqual(await a.renew([stale!]), ['lost'])
      assert.equal(await b.complete(fresh!, encodeValue('fresh', 'result')), true)
      assert.equal(decodeValue(Buffer.from((await a.waitForEnd(run.id)).result!)), 'fresh')
    })

    it('renewing keeps the lease; past maxLostLeases the run ends Crashed with a reason', async () => {
      const task = t('renew')
      const run = newRun(task)
      await a.enqueue([run])
      const [held] = await a.claim('w1', [task], 1)
      for (let i = 0; i < 4; i++) {
        await sleep(LEASE / 3)
        assert.deepEqual(await a.renew([held!]), ['ok'])
      }
      await b.recoverExpired()
      assert.equal((await b.get(run.id))?.state, 'Running', 'a renewed lease does not expire')
      // Lose it twice (maxLostLeases 2): Crashed.
      await sleep(LEASE + 50)
      await b.recoverExpired()
      await b.claim('w2', [task], 1)
      await sleep(LEASE + 50)
      await b.recoverExpired()
      const outcome = await a.waitForEnd(run.id)
      assert.equal(outcome.state, 'Crashed')
      assert.match(outcome.error?.message ?? '', /lost its worker 2 times/)
      const record = (await a.get(run.id))!
      assert.equal(record.lostLeases, 2)
      assert.equal(record.attempts, 2)
    })

    it('release hands a run back unfinished, without counting a failure', async () => {
      const task = t('release')
      const run = newRun(task)
      await a.enqueue([run])
      const [held] = await a.claim('w1', [task], 1)
      assert.equal(await a.release(held!, 'worker stopping'), true)
      const record = await b.get(run.id)
      assert.equal(record?.state, 'Scheduled')
      assert.equal(record?.failures, 0)
      assert.equal((await b.claim('w2', [task], 1)).length, 1)
    })

    it('cancel ends a Scheduled run at once and asks a Running one to stop', async () => {
      const task = t('cancel')
      const [r1, r2] = [newRun(task), newRun(task)]
      await a.enqueue([r1])
      const ended = b.waitForEnd(r1.id)
      await a.cancel(r1.id, 'not needed')
      assert.equal((await ended).state, 'Cancelled')
      assert.deepEqual(await a.claim('w1', [task], 1), [])
      await a.enqueue([r2])
      const [held] = await a.claim('w1', [task], 1)
      await b.cancel(r2.id, 'stop')
      assert.deepEqual(await a.renew([held!]), ['cancelled'])
      // The holder stops the attempt and says so: the run ends Cancelled, not Failed.
      const stopped = b.waitForEnd(r2.id)
      assert.equal(await a.cancelled(held!, storeError(new Error('stop'))), true)
      assert.deepEqual([(await stopped).state, (await stopped).error?.message], ['Cancelled', 'stop'])
      assert.deepEqual((await b.get(r2.id))?.history.map((h) => h.state), ['Scheduled', 'Running', 'Cancelled'])
      assert.equal(await a.cancelled(held!, storeError(new Error('again'))), false, 'only while the lease is held')
    })

    it('a run asked to cancel is never run again: its expired lease, a release or a retry end it Cancelled', async () => {
      const task = t('cancel-held')
      const runs = [newRun(task), newRun(task), newRun(task)]
      await a.enqueue(runs)
      const held = await a.claim('w1', [task], 3)
      assert.equal(held.length, 3)
      for (const run of runs) await b.cancel(run.id, 'cancelled by SIGINT')
      // The first holder dies (its lease expires), the second hands its run back, the third retries.
      assert.equal(await a.release(held[1]!, 'worker stopping'), true)
      assert.equal(await a.retry(held[2]!, storeError(new Error('boom')), 0), true)
      await sleep(LEASE + 50)
      await b.recoverExpired()
      for (const run of runs) {
        const record = (await b.get(run.id))!
        assert.deepEqual([record.state, record.error?.message], ['Cancelled', 'cancelled by SIGINT'], `run ${runs.indexOf(run)}`)
        assert.equal((await b.waitForEnd(run.id)).state, 'Cancelled')
      }
      assert.deepEqual(await b.claim('w2', [task], 3), [], 'no worker runs a cancelled run')
    })

    it('watchWork fires soon after another handle enqueues', async () => {
      const task = t('watch')
      let fired = 0
      let resolveFired!: () => void
      const firedPromise = new Promise<void>((r) => (resolveFired = r))
      const stop = b.watchWork([task], () => {
        fired++
        void b.claim('w', [task], 1).then((got) => got.length && resolveFired())
      })
      await sleep(50)
      const start = Date.now()
      await a.enqueue([newRun(task)])
      await firedPromise
      stop()
      assert.ok(Date.now() - start < 500, `took ${Date.now() - start} ms`)
      assert.ok(fired >= 1)
    })

    it('the enqueuing handle learns how each run ended, waiting before or after the end', async () => {
      const task = t('outcome')
      const [r1, r2, r3, r4] = [newRun(task), newRun(task), newRun(task), newRun(task)]
      await a.enqueue([r1, r2, r3, r4])
      const early = a.waitForEnd(r1.id)
      const byId = new Map((await b.claim('w1', [task], 3)).map((c) => [c.runId, c]))
      // Line breaks and binary bytes in results and errors survive the trip.
      const result = { text: 'two\nlines', bytes: new Uint8Array([0, 10, 255]) }
      assert.equal(await b.complete(byId.get(r1.id)!, encodeValue(result, 'result')), true)
      assert.equal(await b.fail(byId.get(r2.id)!, storeError(new RangeError('out of\nrange')), 'TimedOut'), true)
      assert.equal(await b.complete(byId.get(r3.id)!, encodeValue('three', 'result')), true)
      await b.cancel(r4.id, 'not wanted')
      await sleep(50)
      assert.deepEqual(decodeValue(Buffer.from((await early).result!)), result)
      const failed = await a.waitForEnd(r2.id)
      assert.deepEqual([failed.state, failed.stateName, failed.error?.name, failed.error?.message], ['Failed', 'TimedOut', 'RangeError', 'out of\nrange'])
      assert.equal(failed.result, undefined)
      assert.equal(decodeValue(Buffer.from((await a.waitForEnd(r3.id)).result!)), 'three')
      assert.equal((await a.waitForEnd(r3.id)).state, 'Completed', 'waiting twice gives the same outcome')
      const cancelled = await a.waitForEnd(r4.id)
      assert.deepEqual([cancelled.state, cancelled.error?.message], ['Cancelled', 'not wanted'])
      assert.equal(cancelled.endedAt, (await b.get(r4.id))?.endedAt)
      // Enqueuing an ended run again changes nothing, and waiting for it still resolves.
      await a.enqueue([r3])
      assert.equal((await a.waitForEnd(r3.id)).state, 'Completed')
    })

    it('waitForEnd hears each attempt a worker starts, also one that started before the wait', async () => {
      const task = t('running')
      const [r1, r2] = [newRun(task, 1, { retries: 1 }), newRun(task, 2)]
      await a.enqueue([r1])
      const seen: number[] = []
      const ended = a.waitForEnd(r1.id, { onRunning: (attempt) => seen.push(attempt) })
      const [first] = await b.claim('w1', [task], 1)
      await until(() => seen.length === 1)
      assert.equal(await b.retry(first!, storeError(new Error('again')), 0), true)
      const [second] = await b.claim('w1', [task], 1)
      await until(() => seen.length === 2)
      assert.equal(await b.complete(second!, encodeValue('done', 'result')), true)
      assert.equal((await ended).state, 'Completed')
      assert.deepEqual(seen, [1, 2])
      // Started before anyone waited: heard at once, on the handle that enqueued it and on another.
      await a.enqueue([r2])
      const [held] = await b.claim('w1', [task], 1)
      await sleep(50)
      for (const handle of [a, b]) {
        const heard: number[] = []
        const waiting = handle.waitForEnd(r2.id, { onRunning: (attempt) => heard.push(attempt) })
        await until(() => heard.length === 1)
        assert.deepEqual(heard, [1])
        void waiting.catch(() => undefined)
      }
      await b.complete(held!, encodeValue('done', 'result'))
      assert.equal((await a.waitForEnd(r2.id)).state, 'Completed')
    })

    it('waitForEnd rejects when its signal aborts', async () => {
      const run = newRun(t('abort'))
      await a.enqueue([run])
      const controller = new AbortController()
      const waiting = b.waitForEnd(run.id, { signal: controller.signal })
      controller.abort(new Error('gave up'))
      await assert.rejects(waiting, /gave up/)
    })

    it('lists by state and task, newest first; stores logs; prunes old final runs only', async () => {
      const task = t('list')
      const runs = [newRun(task, 1), newRun(task, 2), newRun(task, 3)]
      for (const run of runs) await a.enqueue([run])
      const [c] = await a.claim('w', [task], 1)
      await a.appendLogs(c!.runId, [{ at: Date.now(), level: 'info', message: 'hello', attempt: 1 }])
      await a.complete(c!, encodeValue(1, 'result'))
      assert.deepEqual((await b.list({ task })).map((r) => r.id), [runs[2]!.id, runs[1]!.id, runs[0]!.id])
      assert.deepEqual((await b.list({ task, state: 'Completed' })).map((r) => r.id), [runs[0]!.id])
      assert.deepEqual((await b.logs(runs[0]!.id)).map((l) => l.message), ['hello'])
      assert.ok((await b.prune(Date.now() + 1)) >= 1)
      assert.equal(await b.get(runs[0]!.id), undefined)
      assert.deepEqual(await b.logs(runs[0]!.id), [])
      assert.equal((await b.list({ task })).length, 2, 'unfinished runs are never pruned')
    })
  })
}
