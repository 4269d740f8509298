/**
 * Prefect parity: cases ported from Prefect's own test suite (PrefectHQ/prefect, tests/*.py), each
 * named after the Prefect test it comes from, run against every runner Prefect parametrizes such
 * tests over. Where ptr deliberately differs, the test says so and checks ptr's behaviour
 * (README, "Differences from Prefect").
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import {
  Completed,
  PrefectFutureList,
  PrefectTaskRunner,
  allowFailure,
  asCompleted,
  flow,
  onRunEvent,
  tags,
  wait,
} from '../src/index.ts'
import type { FlowOptions, LogEvent, PrefectFuture, State, TaskRunner } from '../src/index.ts'
import * as P from './fixtures/parity-tasks.ts'
import * as T from './fixtures/tasks.ts'
import { recordStates } from './helpers/events.ts'
import { RUNNERS_UNDER_TEST, runnersClosedAfter } from './helpers/runners.ts'
import type { RunnerUnderTest } from './helpers/runners.ts'
import { killWorkers, startWorker } from './helpers/workers.ts'

const markers = mkdtempSync(path.join(os.tmpdir(), 'ptr-parity-'))
before(() => {
  process.env.PTR_PARITY_MARKERS = markers
})
after(() => {
  delete process.env.PTR_PARITY_MARKERS
  rmSync(markers, { recursive: true, force: true })
})
const markersOf = (runId: string) =>
  readdirSync(markers)
    .filter((f) => f.startsWith(runId))
    .map((f) => `${f.slice(runId.length + 1)}: ${readFileSync(path.join(markers, f), 'utf8')}`)
    .sort()

/** Log lines of level error seen until `stop()`. */
function recordErrors() {
  const lines: LogEvent[] = []
  const stop = onRunEvent((event) => {
    if (event.kind === 'log' && event.level === 'error') lines.push(event)
  })
  return { lines, stop }
}

/**
 * The queue runner: every submit goes to an SQLite queue that a real task worker
 * (`ptr worker serve` on the fixture modules) serves.
 */
const queueDir = mkdtempSync(path.join(os.tmpdir(), 'ptr-parity-queue-'))
const QUEUE_URL = `sqlite:${path.join(queueDir, 'queue.db')}`
const QUEUE_RUNNER: RunnerUnderTest = { kind: 'queue', create: () => new PrefectTaskRunner({ queue: QUEUE_URL }), parallel: true }
after(async () => {
  await killWorkers()
  rmSync(queueDir, { recursive: true, force: true })
})

for (const runnerUnderTest of [...RUNNERS_UNDER_TEST, QUEUE_RUNNER]) {
  describe(`Prefect parity on the ${runnerUnderTest.kind} runner`, () => {
    // What the queue runner does differently (README, "Differences from Prefect"): these cases skip there.
    const onQueue = runnerUnderTest === QUEUE_RUNNER
    const queueSkip = {
      retries: { skip: onQueue && 'on the queue the task worker runs the retries: the submitter sees Scheduled, Running or Retrying, and the end' },
      returnedState: { skip: onQueue && "the task worker does not take a returned State as the run's own" },
      running: { skip: onQueue && 'on the queue a start is reported best effort (a quick attempt may be seen only by its end), so onRunning may not fire' },
    }
    if (onQueue) {
      before(async () => {
        await startWorker(['test/fixtures/parity-tasks.ts', 'test/fixtures/tasks.ts', '--limit', '8', '--queue', QUEUE_URL], {})
      })
    }
    const { make } = runnersClosedAfter(runnerUnderTest)
    // Pool runners start workers (and load the task module in each): share one where a test can.
    let sharedRunner: TaskRunner | undefined
    const shared = () => (sharedRunner ??= make(2))
    /** Runs `body` as a flow on this runner and returns its final state. */
    const inFlow = async <R>(body: () => Promise<R>, parallel = 2, options: FlowOptions = {}): Promise<State<R>> => {
      const f = flow({ name: 'parity', taskRunner: make(parallel), ...options }, body)
      return (await f.run()).state as State<R>
    }

    // --- waitFor and allowFailure (tests/test_tasks.py) ---

    it('test_downstream_runs_if_upstream_succeeds (tests/test_tasks.py): waitFor with a plain value', async () => {
      const state = await inFlow(async () => {
        const f = await P.identity(1)
        return P.identity.withOptions({ waitFor: [f as never] }).submit(2).result()
      })
      assert.equal(state.type, 'Completed', state.message)
      assert.equal(state.result, 2)
    })

    it('test_downstream_runs_if_upstream_fails_with_allow_failure_annotation (tests/test_tasks.py)', async () => {
      const state = await inFlow(async () => {
        const f = P.fails.submit()
        return P.identity.withOptions({ waitFor: [allowFailure(f)], returnState: true })(2)
      })
      // The flow returned the task run's state, so the flow run takes it over (as in Prefect).
      assert.equal(state.type, 'Completed', state.message)
      assert.equal(state.result, 2)
    })

    it('test_downstream_receives_exception_if_upstream_fails_and_allow_failure (tests/test_tasks.py)', async () => {
      const state = await inFlow(async () => P.identity.submit(allowFailure(P.fails.submit())).result())
      assert.ok(state.result instanceof Error, String(state.result))
      assert.match(state.result.message, /Fail task!/)
    })

    it('test_downstream_receives_exception_in_collection_if_upstream_fails_and_allow_failure (tests/test_tasks.py)', async () => {
      const state = await inFlow(async () => P.identity.submit(allowFailure([P.fails.submit(), 1, 2])).result())
      assert.equal(state.type, 'Completed', state.message)
      const result = state.result as unknown[]
      assert.ok(Array.isArray(result), `expected a list, got ${typeof result}`)
      assert.ok(result[0] instanceof Error)
      assert.match(result[0].message, /Fail task!/)
      assert.deepEqual(result.slice(1), [1, 2])
    })

    it('allowFailure() of a plain value passes it through (Prefect annotations wrap any value)', async () => {
      const state = await inFlow(async () => P.identity.submit(allowFailure(5)).result())
      assert.equal(state.type, 'Completed', state.message)
      assert.equal(state.result, 5)
    })

    it('test_allow_failure_chained_mapped_tasks (tests/test_tasks.py)', async () => {
      const state = await inFlow(async () => {
        const f = P.failsOnTwo.map([1, 2, 3])
        const b = P.identity.map(allowFailure(f))
        await b.wait()
        return b.map((future) => future.state)
      })
      assert.equal(state.type, 'Completed', state.message)
      const states = state.result!
      assert.equal(states.length, 3)
      assert.ok(states.every((s) => s.type === 'Completed'))
      assert.deepEqual([states[0]!.result, states[2]!.result], [1, 3])
      assert.ok(states[1]!.result instanceof Error)
      assert.equal(states[1]!.result.message, 'Fail task')
    })

    it('test_allow_failure_mapped_with_noniterable_upstream (tests/test_tasks.py)', async () => {
      const state = await inFlow(async () => P.pair.map([1, 2, 3], allowFailure(P.fails.submit())).result())
      assert.equal(state.type, 'Completed', state.message)
      const results = state.result as [number, Error][]
      assert.equal(results.length, 3)
      results.forEach(([y, z], i) => {
        assert.equal(y, i + 1)
        assert.ok(z instanceof Error && z.message === 'Fail task!')
      })
    })

    it('test_allow_failure_with_mapped_tasks_in_wait_for (tests/test_tasks.py); ptr also fails the flow for the unhandled add_one failure', async () => {
      const body = async () => {
        const b = P.addOne.map([1, 2, 3])
        const c = P.addTwo.map(b)
        return P.cleanupTask.withOptions({ waitFor: [allowFailure(c)] }).submit().result()
      }
      const prefectLike = await inFlow(body, 4, { failOnUnhandledTaskFailure: false })
      assert.equal(prefectLike.result, 'cleanup done', prefectLike.message)
      const strict = await inFlow(body)
      assert.equal(strict.type, 'Failed')
      assert.match(strict.message ?? '', /1 task run failed and nothing handled it: 'add_one-\d+' \(Failed: Something is not right\)/)
    })

    // --- futures (tests/test_futures.py) ---

    it('test_results_with_raise_on_failure_false (tests/test_futures.py)', async () => {
      const runner = shared()
      const list = PrefectFutureList.from_([...[0, 1, 2, 3, 4].map((i) => runner.submit(P.identity, [i])), runner.submit(P.fails, [])])
      const results = await list.result({ raiseOnFailure: false })
      results.forEach((result, i) => {
        if (i === 5) assert.ok(result instanceof Error && result.message === 'Fail task!', String(result))
        else assert.equal(result, i)
      })
    })

    it('test_wait_with_negative_timeout_raises_value_error, test_as_completed_with_negative_timeout_raises_value_error, test_result_with_negative_timeout_raises_value_error (tests/test_futures.py)', async () => {
      const runner = shared()
      const futures = [0, 1, 2].map((i) => runner.submit(P.identity, [i]))
      await assert.rejects(wait(futures, { timeout: -1 }), /`timeout` must be a number of seconds from 0 up, got `-1`/)
      await assert.rejects(asCompleted(futures, { timeout: -1 }).next(), /asCompleted\(\): `timeout` must be/)
      await assert.rejects(PrefectFutureList.from_(futures).result({ timeout: -1 }), /PrefectFutureList.result\(\): `timeout` must be/)
      await wait(futures)
    })

    it('addDoneCallback: a callback that throws is logged, later callbacks run, and the flow run ends (Python futures log and go on)', async () => {
      const { lines, stop } = recordErrors()
      const called: string[] = []
      const state = await inFlow(async () => {
        const future = P.identity.submit('x')
        future.addDoneCallback(() => {
          throw new Error('callback broke')
        })
        future.addDoneCallback(() => called.push('second'))
        const [done] = await Promise.all([wait([future]), (async () => { for await (const f of asCompleted([future])) called.push(f.taskRunId) })()])
        assert.equal(done.done.length, 1)
        // Registered on a settled run: called at once, and its throw is logged too.
        future.addDoneCallback(() => {
          throw new Error('late callback broke')
        })
        return future.result()
      })
      stop()
      assert.equal(state.type, 'Completed', state.message)
      assert.equal(called[0], 'second')
      assert.equal(called.length, 2)
      assert.deepEqual(
        lines.map((l) => l.message.replace(/'identity-\d+'/, "'identity-N'")),
        [
          "a done callback of 'identity-N' failed: Error: callback broke",
          "a done callback of 'identity-N' failed: Error: late callback broke",
        ],
      )
    })

    // --- retries (tests/test_task_engine.py) ---

    it('test_task_respects_retry_count (tests/test_task_engine.py): no delay goes Running → Retrying', queueSkip.retries, async () => {
      const runner = shared()
      const { names, stop } = recordStates()
      const failed = runner.submit(T.flaky.withOptions({ retries: 3 }), [10])
      const recovered = runner.submit(T.flaky.withOptions({ retries: 3 }), [4])
      await Promise.all([failed.wait(), recovered.wait()])
      stop()
      assert.deepEqual(names(failed.taskRunId), ['Pending', 'Running', 'Retrying', 'Retrying', 'Retrying', 'Failed'])
      assert.deepEqual(names(recovered.taskRunId), ['Pending', 'Running', 'Retrying', 'Retrying', 'Retrying', 'Completed'])
      assert.equal(await recovered.result(), 4)
    })

    it('test_async_task_respects_retry_delay_seconds (tests/test_task_engine.py): a delay goes through AwaitingRetry', queueSkip.retries, async () => {
      const runner = shared()
      const { names, stop } = recordStates()
      const future = runner.submit(T.flaky.withOptions({ retries: 3, retryDelaySeconds: 0.01 }), [10])
      await future.wait()
      stop()
      assert.deepEqual(names(future.taskRunId), ['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'Failed'])
    })

    it('test_task_retries_receive_latest_task_run_in_context (tests/test_task_engine.py): the run context has the state name', queueSkip.retries, async () => {
      const state = await inFlow(async () => P.stateNamesRetried.submit().result())
      assert.equal(state.type, 'Completed', state.message)
      assert.deepEqual(state.result, { task: 'Retrying', flow: 'Running' })
    })

    // --- map (tests/test_task_runners.py) ---

    it('test_map_with_future_resolved_to_list (tests/test_task_runners.py)', async () => {
      const runner = shared()
      const future = runner.submit(P.identity, [[1, 2, 3]]) as PrefectFuture<number[]>
      await future.wait()
      const futures = runner.map(P.pair, [future, future])
      assert.ok(futures instanceof PrefectFutureList)
      assert.deepEqual(await futures.result(), [[1, 1], [2, 2], [3, 3]])
    })

    it('map() over a future that has not ended: the list fills in when it ends (ptr; Prefect waits inside map())', async () => {
      const runner = shared()
      const list = runner.submit(P.delayed, [50, [1, 2, 3]]) as PrefectFuture<number[]>
      const scalar = runner.submit(P.delayed, [80, 'z']) as PrefectFuture<string>
      const mapped = runner.map(P.pair, [list, scalar as never])
      assert.equal(mapped.length, 0)
      assert.deepEqual(await mapped.result(), [[1, 'z'], [2, 'z'], [3, 'z']])
      assert.equal(mapped.length, 3)
      const failed = runner.map(P.identity, [runner.submit(P.fails, []) as never])
      await failed.wait()
      await assert.rejects(failed.result(), /identity.map\(\): upstream task run .* ended Failed: Fail task!; there is nothing to map over/)
    })

    it('map() over a future inside a flow: runs never awaited still finish before the flow ends (ptr)', async () => {
      let mapped: PrefectFutureList<unknown> | undefined
      const state = await inFlow(async () => {
        mapped = P.identity.map(P.delayed.submit(30, [1, 2]) as never)
        return 'returned early'
      })
      assert.equal(state.type, 'Completed', state.message)
      assert.deepEqual(mapped!.map((f) => f.state.type), ['Completed', 'Completed'])
    })

    // --- hooks (tests/test_tasks.py) ---

    it('test_on_failure_hooks_run_on_failure (tests/test_tasks.py): in the main process, after the run failed', queueSkip.running, async () => {
      let id = ''
      const state = await inFlow(async () => {
        const future = P.failsWithHooks.submit()
        id = future.taskRunId
        const error = await future.result({ raiseOnFailure: false })
        // The hook has run by the time the run is seen to have ended.
        assert.deepEqual(markersOf(id), [`onFailure: ${process.pid} Failed`, `onRunning: ${process.pid} Running`])
        assert.equal((error as Error).message, 'hooked failure')
        return future.state.type
      })
      assert.equal(state.result, 'Failed')
    })

    it('test_on_completion_hooks_dont_run_on_failure, test_on_failure_hooks_dont_run_on_completed (tests/test_tasks.py)', async () => {
      const runner = shared()
      const done = runner.submit(P.completesWithHooks, [])
      const failed = runner.submit(P.failsWithHooks, [])
      await wait([done, failed])
      assert.deepEqual(markersOf(done.taskRunId), [`onCompletion: ${process.pid} Completed`])
      assert.ok(!markersOf(failed.taskRunId).some((m) => m.startsWith('onCompletion')))
    })

    it('test_other_completion_hooks_run_if_a_hook_fails (tests/test_tasks.py): the run stays Completed, the error is logged', async () => {
      const { lines, stop } = recordErrors()
      const runner = shared()
      const future = runner.submit(P.throwingHook, [])
      assert.equal(await future.result(), 'still fine')
      stop()
      assert.equal(future.state.type, 'Completed')
      assert.deepEqual(markersOf(future.taskRunId), [`onCompletion: ${process.pid} Completed`])
      const line = lines.find((l) => l.taskRunId === future.taskRunId)
      assert.match(line?.message ?? '', /onCompletion hook 'brokenHook' of 'throwing_hook-\d+' failed \(the run stays Completed\): Error: hook broke/)
    })

    it('test_on_running_hooks_fire_on_retry_without_delay (tests/test_tasks.py)', queueSkip.running, async () => {
      const runner = shared()
      const future = runner.submit(P.retriedWithRunningHook, [])
      assert.equal(await future.result(), 'success')
      assert.deepEqual(markersOf(future.taskRunId), [`onRunning: ${process.pid} Running${process.pid} Retrying`])
    })

    // --- states as values (tests/test_tasks.py, tests/test_task_engine.py, tests/test_flows.py) ---

    it('test_final_task_state_respects_returned_state (tests/test_tasks.py): a task returning Failed({ message }) ends Failed', queueSkip.returnedState, async () => {
      const runner = shared()
      const failed = await runner.submit(P.returnsFailed, []).wait()
      assert.deepEqual([failed.type, failed.message, failed.error?.message], ['Failed', 'told to fail', 'told to fail'])
      const completed = await runner.submit(P.returnsCompleted, []).wait()
      assert.deepEqual([completed.type, completed.result, completed.message], ['Completed', 42, 'all good'])
      // Through a flow, with returnState: the flow returns the task's state and takes it over.
      const state = await inFlow(async () => P.returnsFailed.withOptions({ returnState: true }).submit())
      assert.deepEqual([state.type, state.message], ['Failed', 'told to fail'])
    })

    it('test_task_retries_with_explicit_failed_state (tests/test_task_engine.py)', queueSkip.returnedState, async () => {
      const runner = shared()
      const { names, stop } = recordStates()
      const future = runner.submit(P.returnsFailedUntil, [2])
      assert.equal(await future.result(), 2)
      stop()
      assert.deepEqual(names(future.taskRunId), ['Pending', 'Running', 'Retrying', 'Completed'])
    })

    it('test_task_with_return_state_true, test_sync_task_with_return_state_true (tests/test_tasks.py)', async () => {
      const state = await inFlow(async () => {
        const inline = await P.identity.withOptions({ returnState: true })(1)
        const submitted = await P.identity.withOptions({ returnState: true }).submit(2)
        const failed = await P.fails.withOptions({ returnState: true }).submit()
        return [inline.result, submitted.result, failed.type, failed.error?.message]
      })
      // A failure read through returnState is handled: the flow completes.
      assert.equal(state.type, 'Completed', state.message)
      assert.deepEqual(state.result, [1, 2, 'Failed', 'Fail task!'])
    })

    it('test_flow_state_reflects_returned_task_run_state (tests/test_flows.py)', async () => {
      const state = await inFlow(async () => P.fails.withOptions({ returnState: true })())
      assert.equal(state.type, 'Failed')
      assert.equal(state.error?.message, 'Fail task!')
    })

    it('test_final_state_respects_returned_state (tests/test_flows.py): a flow returning Completed() despite a failed child ends Completed', async () => {
      const state = await inFlow(async () => {
        P.fails.submit()
        return Completed({ result: 'overruled', message: 'the child may fail' })
      })
      assert.equal(state.type, 'Completed', state.message)
      assert.equal(state.result, 'overruled')
      assert.equal(state.message, 'the child may fail')
    })

    // --- tags (tests/test_tasks.py) ---

    it('test_task_run_tags_added_at_call, test_task_run_tags_include_tags_on_task_object, test_task_run_tags_respects_nesting, test_task_run_tags_not_added_outside_context (tests/test_tasks.py)', async () => {
      const runner = shared()
      const seen = new Map<string, readonly string[]>()
      const stop = onRunEvent((event) => {
        if (event.kind === 'task-run-state') seen.set(event.taskRun.id, [...event.taskRun.tags].sort())
      })
      const tagged = P.identity.withOptions({ tags: ['own'] })
      const runs = await tags(['db'], async () => {
        const plain = runner.submit(P.identity, [0])
        const own = runner.submit(tagged, [1])
        const nested = await tags(['nightly', 'db'], async () => runner.submit(P.identity, [2]))
        const afterNested = runner.submit(P.identity, [3])
        return { plain, own, nested, afterNested }
      })
      const outside = runner.submit(P.identity, [4])
      await wait([...Object.values(runs), outside])
      stop()
      assert.deepEqual(seen.get(runs.plain.taskRunId), ['db'])
      assert.deepEqual(seen.get(runs.own.taskRunId), ['db', 'own'])
      assert.deepEqual(seen.get(runs.nested.taskRunId), ['db', 'nightly'])
      assert.deepEqual(seen.get(runs.afterNested.taskRunId), ['db'])
      assert.deepEqual(seen.get(outside.taskRunId), [])
    })

    it('test_task_run_tags_include_flow_run_tags (tests/test_tasks.py)', async () => {
      const seen = new Map<string, readonly string[]>()
      const stop = onRunEvent((event) => {
        if (event.kind === 'task-run-state') seen.set(event.taskRun.id, [...event.taskRun.tags])
      })
      const f = flow({ name: 'tagged_flow', taskRunner: make(1) }, async () => P.identity.submit(1).taskRunId)
      const { state, flowRun } = await tags(['nightly'], () => f.run())
      stop()
      assert.deepEqual(flowRun.tags, ['nightly'])
      assert.deepEqual(seen.get(state.result!), ['nightly'])
    })
  })
}

describe('Prefect parity, runner-independent', () => {
  it('test_noncallable_hook_raises, test_noniterable_hook_raises (tests/test_tasks.py)', async () => {
    const { task } = await import('../src/index.ts')
    assert.throws(() => task({ name: 'bad_hook', onCompletion: [5 as never] }, () => 1), /task 'bad_hook': expected `onCompletion`\[0\] to be a function, got number/)
    assert.throws(() => task({ name: 'bad_hooks', onFailure: 5 as never }, () => 1), /expected `onFailure` to be a function or a list of functions, got number/)
    assert.throws(() => flow({ name: 'bad_flow_hook', onCrashed: ['x' as never] }, () => 1), /flow 'bad_flow_hook': expected `onCrashed`\[0\] to be a function/)
  })
})
