/**
 * The contract every task runner keeps. One suite, run against every runner in RUNNERS_UNDER_TEST.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  CancelledError,
  FutureTimeoutError,
  MappingLengthMismatchError,
  MappingMissingIterableError,
  PrefectFutureList,
  UpstreamTaskRunError,
  allowFailure,
  asCompleted,
  flow,
  getRunContext,
  isFinal,
  unmapped,
  wait,
} from '../src/index.ts'
import * as T from './fixtures/tasks.ts'
import { recordStates } from './helpers/events.ts'
import { maxOverlap } from './helpers/overlap.ts'
import { RUNNERS_UNDER_TEST, runnersClosedAfter } from './helpers/runners.ts'

for (const runnerUnderTest of RUNNERS_UNDER_TEST) {
  describe(`${runnerUnderTest.kind} runner contract`, () => {
    const { make, track } = runnersClosedAfter(runnerUnderTest)

    it('has a name, and duplicate() gives a new runner of the same kind', async () => {
      const runner = make()
      assert.equal(runner.name, runnerUnderTest.kind)
      const copy = runner.duplicate()
      track(copy)
      assert.notEqual(copy, runner)
      assert.equal(copy.name, runner.name)
      assert.deepEqual((copy as unknown as { options: unknown }).options, (runner as unknown as { options: unknown }).options)
    })

    it('submit() returns a future at once that resolves to the value', async () => {
      const runner = make()
      const future = runner.submit(T.add, [2, 3])
      assert.equal(typeof future.taskRunId, 'string')
      assert.equal(isFinal(future.state), false)
      assert.equal(await future.result(), 5)
      assert.equal(future.state.type, 'Completed')
      assert.equal(future.state.result, 5)
    })

    it('map() runs one task per element in input order, with unmapped() and strings static', async () => {
      const runner = make(4)
      const list = runner.map(T.add, [[1, 2, 3], unmapped(10)])
      assert.ok(list instanceof PrefectFutureList)
      assert.deepEqual(await list.result(), [11, 12, 13])
      assert.deepEqual(await runner.map(T.concat, [['x', 'y'], 'ab']).result(), ['xab', 'yab'])
      assert.throws(() => runner.map(T.echo, ['abc'] as never), MappingMissingIterableError)
    })

    it('map() rejects unequal lengths and calls with nothing to iterate, naming the arguments', () => {
      const runner = make()
      assert.throws(() => runner.map(T.add, [[1, 2], [1, 2, 3]]), (error: unknown) => {
        assert.ok(error instanceof MappingLengthMismatchError)
        assert.match(error.message, /argument 1 has 2 items but argument 2 has 3/)
        return true
      })
      assert.throws(() => runner.map(T.add, [unmapped(1), 2] as never), MappingMissingIterableError)
    })

    it('resolves futures nested anywhere in the arguments (arrays, objects, Maps, Sets)', async () => {
      const runner = make(4)
      const a = runner.submit(T.double, [1])
      const b = runner.submit(T.double, [2])
      const total = runner.submit(T.sum, [[a, b, 3]])
      assert.equal(await total.result(), 9)
      const nested = runner.submit(T.echo, [{ list: [a], deep: { b }, map: new Map([['k', a]]), set: new Set([b]) }])
      assert.deepEqual(await nested.result(), { list: [2], deep: { b: 4 }, map: new Map([['k', 2]]), set: new Set([4]) })
    })

    it('an upstream failure leaves the downstream NotReady, naming the upstream and carrying its cause', async () => {
      const runner = make(2)
      const failed = runner.submit(T.boom, ['upstream broke'])
      const downstream = runner.submit(T.double, [failed])
      const state = await downstream.wait()
      assert.equal(state.type, 'Pending')
      assert.equal(state.name, 'NotReady')
      await assert.rejects(downstream.result(), (error: unknown) => {
        assert.ok(error instanceof UpstreamTaskRunError)
        assert.equal(error.upstreamTaskRunId, failed.taskRunId)
        assert.match(error.message, /boom-\d+/)
        assert.match(error.message, /upstream broke/)
        assert.equal((error.cause as Error).message, 'upstream broke')
        return true
      })
    })

    it('allowFailure() lets the downstream run and hands it the error', async () => {
      const runner = make(2)
      const failed = runner.submit(T.boom, ['tolerated'])
      const downstream = runner.submit(T.echo, [allowFailure(failed)])
      const value = await downstream.result()
      assert.ok(value instanceof Error)
      assert.equal(value.message, 'tolerated')
    })

    it('waitFor delays the run until its upstreams end, and a failed one makes it NotReady', async () => {
      const runner = make(4)
      const first = runner.submit(T.sleeper, [80, 'first'])
      const second = runner.submit(T.sleeper.withOptions({ waitFor: [first] }), [1, 'second'])
      const [a, b] = await Promise.all([first.result(), second.result()])
      assert.ok(b.start >= a.end, `second started at ${b.start}, before first ended at ${a.end}`)
      const failed = runner.submit(T.boom, ['nope'])
      const blocked = runner.submit(T.double.withOptions({ waitFor: [failed] }), [1])
      assert.equal((await blocked.wait()).name, 'NotReady')
    })

    it('retries a failing task: with no delay straight to Retrying, with a delay through AwaitingRetry', async () => {
      const runner = make()
      const { names, stop } = recordStates()
      const future = runner.submit(T.flaky, [3])
      const delayed = runner.submit(T.flaky.withOptions({ retryDelaySeconds: 0.01 }), [3])
      assert.equal(await future.result(), 3)
      assert.equal(await delayed.result(), 3)
      stop()
      assert.deepEqual(names(future.taskRunId), ['Pending', 'Running', 'Retrying', 'Retrying', 'Completed'])
      assert.deepEqual(names(delayed.taskRunId), [
        'Pending', 'Running', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'Completed',
      ])
      const gaveUp = runner.submit(T.flaky.withOptions({ retries: 1 }), [5])
      await assert.rejects(gaveUp.result(), /attempt 2 failed/)
    })

    it('a retryCondition runs in the run context of the flow run its run belongs to', async () => {
      const seen: (string | undefined)[] = []
      const contextFlow = flow({ name: 'retry-context', taskRunner: make(2) }, async () => {
        const flaky = T.flaky.withOptions({
          retryCondition: () => {
            seen.push(getRunContext().flowRun?.id)
            return true
          },
        })
        await flaky.map([2, 2, 2, 2, 2, 2]).result()
        return getRunContext().flowRun!.id
      })
      const id = await contextFlow()
      assert.deepEqual(seen, Array(6).fill(id))
    })

    it('retryCondition and retryDelaySeconds (list, function, jitter) decide retries and their delays', async () => {
      const runner = make()
      const { delays, names, stop } = recordStates()
      const noRetry = runner.submit(T.flaky.withOptions({ retryCondition: (error) => !error.message.includes('attempt 1') }), [2])
      await assert.rejects(noRetry.result(), /attempt 1 failed/)
      assert.deepEqual(names(noRetry.taskRunId), ['Pending', 'Running', 'Failed'])
      const listed = runner.submit(T.flaky.withOptions({ retries: 3, retryDelaySeconds: [0.01, 0.03] }), [4])
      const computed = runner.submit(T.flaky.withOptions({ retries: 2, retryDelaySeconds: (attempt) => attempt * 0.02 }), [3])
      const jittered = runner.submit(T.flaky.withOptions({ retries: 3, retryDelaySeconds: 0.05, retryJitterFactor: 0.5 }), [4])
      await Promise.all([listed.result(), computed.result(), jittered.result()])
      stop()
      assert.deepEqual(delays(listed.taskRunId), [10, 30, 30])
      assert.deepEqual(delays(computed.taskRunId), [20, 40])
      const spread = delays(jittered.taskRunId)
      assert.equal(spread.length, 3)
      for (const d of spread) assert.ok(d >= 25 && d <= 75, `jittered delay ${d} ms outside 25..75`)
      assert.ok(new Set(spread).size > 1, `jitter gave identical delays ${spread.join(', ')}`)
    })

    it('a run past timeoutSeconds ends TimedOut even if the task ignores its signal', async () => {
      const runner = make(2)
      const ignoring = runner.submit(T.stubborn, [5_000])
      const obeying = runner.submit(T.obedient, [])
      const [s1, s2] = await Promise.all([ignoring.wait(), obeying.wait()])
      for (const state of [s1, s2]) {
        assert.equal(state.type, 'Failed')
        assert.equal(state.name, 'TimedOut')
        assert.match(state.message ?? '', /timed out after 0.2 s/)
      }
    })

    it('thrown non-Errors arrive as readable errors', async () => {
      const runner = make(4)
      const expected: Record<string, RegExp> = {
        string: /plain string/,
        number: /42/,
        object: /code: 7.*reason: 'nope'/,
        undefined: /undefined/,
        null: /null/,
      }
      for (const [kind, pattern] of Object.entries(expected)) {
        const state = await runner.submit(T.throwValue, [kind]).wait()
        assert.equal(state.type, 'Failed', kind)
        assert.ok(state.error instanceof Error, kind)
        assert.match(state.error.message, pattern, kind)
      }
    })

    it('gives the task its run context: task run id, name, attempt and a live signal', async () => {
      const runner = make()
      const future = runner.submit(T.whoAmI, [])
      const seen = await future.result()
      assert.equal(seen.taskRun?.id, future.taskRunId)
      assert.match(seen.taskRun?.name ?? '', /^who_am_i-\d+$/)
      assert.equal(seen.taskRun?.attempt, 1)
      assert.equal(seen.signalAborted, false)
    })

    it('nested submits and direct calls from inside a task finish, even with one slot', async () => {
      const runner = make(1)
      assert.equal(await runner.submit(T.fanOut, [5]).result(), 20)
      assert.equal(await runner.submit(T.nestedCall, [4]).result(), 9)
    })

    it('wait(), asCompleted(), PrefectFutureList.result() and addDoneCallback()', async () => {
      const runner = make(3)
      // Pool runners start their workers (and import the task's module there) on first use.
      await runner.submit(T.sleeper, [0, 'warm-up']).result()
      // Wide margins: a loaded CI machine may take a while to start a worker.
      const slow = runner.submit(T.sleeper, [1_500, 'slow'])
      const fast = runner.submit(T.sleeper, [10, 'fast'])
      const { done, notDone } = await wait([slow, fast], { timeout: 0.8 })
      if (runnerUnderTest.parallel) {
        assert.deepEqual(done, [fast])
        assert.deepEqual(notDone, [slow])
      }
      const order: string[] = []
      for await (const future of asCompleted([slow, fast])) order.push((await future.result()).label as string)
      if (runnerUnderTest.parallel) assert.deepEqual(order, ['fast', 'slow'])
      else assert.deepEqual(order.sort(), ['fast', 'slow'])
      const called: string[] = []
      slow.addDoneCallback((f) => called.push(f.taskRunId))
      assert.deepEqual(called, [slow.taskRunId])
      const failing = PrefectFutureList.from_([runner.submit(T.double, [1]), runner.submit(T.boom, ['list fails'])])
      await assert.rejects(failing.result(), /list fails/)
    })

    it('result({ timeout }) throws when the run is not done; wait(timeout) never throws', async () => {
      const runner = make(2)
      const future = runner.submit(T.sleeper, [300])
      await assert.rejects(future.result({ timeout: 0.02 }), FutureTimeoutError)
      const state = await future.wait(0.02)
      assert.equal(isFinal(state), false)
      const failed = runner.submit(T.boom, ['soft'])
      const value = await failed.result({ raiseOnFailure: false })
      assert.ok(value instanceof Error && value.message === 'soft')
    })

    it('cancelAll() ends waiting and running runs Cancelled', async () => {
      const runner = make(1)
      const futures = [runner.submit(T.sleeper, [2_000, 'a']), runner.submit(T.sleeper, [2_000, 'b']), runner.submit(T.sleeper, [2_000, 'c'])]
      await new Promise((resolve) => setTimeout(resolve, 50))
      runner.cancelAll('test cancels')
      const states = await Promise.all(futures.map((f) => f.wait()))
      for (const state of states) {
        assert.equal(state.type, 'Cancelled')
        assert.ok(state.error instanceof CancelledError)
      }
    })

    it('works with await using, and close() waits for runs in flight', async () => {
      let future
      {
        await using runner = runnerUnderTest.create(2)
        future = runner.submit(T.sleeper, [50])
      }
      assert.equal(future.state.type, 'Completed')
      const closed = runnerUnderTest.create()
      await closed.close()
      assert.throws(() => closed.submit(T.double, [1]), /closed/)
    })

    if (runnerUnderTest.parallel) {
      it('never runs more than its limit at once, and reaches it', async () => {
        const runner = make(3)
        const results = await runner.map(T.sleeper, [Array.from({ length: 9 }, () => 60)]).result()
        assert.equal(maxOverlap(results), 3)
      })
    } else {
      it('runs one at a time, in submission order', async () => {
        const runner = make()
        const results = await runner.map(T.sleeper, [[20, 20, 20], ['a', 'b', 'c']]).result()
        assert.deepEqual(results.map((r) => r.label), ['a', 'b', 'c'])
        for (let i = 1; i < results.length; i++) assert.ok(results[i]!.start >= results[i - 1]!.end)
      })
    }
  })
}
