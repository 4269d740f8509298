import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConcurrentTaskRunner, Failed, FlowRunTimeoutError, SequentialTaskRunner, UnhandledTaskFailureError, flow, onRunEvent } from '../src/index.ts'
import type { RunEvent } from '../src/index.ts'
import * as S from '../src/engine/states.ts'
import * as F from './fixtures/flows.ts'
import { boom, double, sleeper } from './fixtures/tasks.ts'

describe('flows', () => {
  it('a flow takes one object of named parameters and returns its value', async () => {
    assert.equal(await F.returnsValue({ n: 20 }), 41)
    const { state, flowRun } = await F.returnsValue.run({ n: 1 })
    assert.equal(state.type, 'Completed')
    assert.equal(state.result, 3)
    assert.deepEqual(flowRun.parameters, { n: 1 })
    assert.match(flowRun.name, /^returns_value-/)
  })

  it('rejects parameters that are not one object', async () => {
    await assert.rejects(F.returnsValue.run(5 as never), /parameters must be one object of named values/)
  })

  it('an unhandled throw fails the flow run with that error', async () => {
    const { state } = await F.throws.run()
    assert.equal(state.type, 'Failed')
    assert.equal(state.error?.message, 'flow body broke')
    await assert.rejects(F.throws(), /flow body broke/)
  })

  it('a task run that failed and that nothing handled fails the flow, by default', async () => {
    const { state } = await F.unhandledFailure.run()
    assert.equal(state.type, 'Failed')
    assert.ok(state.error instanceof UnhandledTaskFailureError)
    assert.match(state.error.message, /1 task run failed and nothing handled it: 'boom-\d+' \(Failed: nobody looked\)/)
    assert.equal((state.error.cause as Error).message, 'nobody looked')
  })

  it('failOnUnhandledTaskFailure: false turns that off', async () => {
    const { state } = await F.tolerated.run()
    assert.equal(state.type, 'Completed')
    assert.equal(state.result, 'fine')
  })

  it('reading the failure with result() or passing it through allowFailure() handles it', async () => {
    assert.equal(await F.handledByResult(), 'handled: looked at')
    const { state } = await F.handledByAllowFailure.run()
    assert.equal(state.type, 'Completed')
  })

  it('returned futures are resolved; a returned failure fails the flow', async () => {
    assert.deepEqual(await F.returnsFutures(), [2, 4, 'plain'])
    const { state } = await F.returnsFailedFuture.run()
    assert.equal(state.type, 'Failed')
    assert.match(state.error?.message ?? '', /1 of 1 returned task runs did not complete.*returned failure/)
  })

  it('runs submitted and never awaited finish before the flow run ends', async () => {
    const settledAt: number[] = []
    let flowEndedAt = 0
    const off = onRunEvent((event: RunEvent) => {
      if (event.kind === 'task-run-state' && event.state.type === 'Completed' && event.taskRun.taskName === 'sleeper') settledAt.push(Date.now())
      if (event.kind === 'flow-run-state' && event.flowRun.flowName === 'fire_and_forget' && event.state.type === 'Completed') flowEndedAt = Date.now()
    })
    await F.fireAndForget()
    off()
    assert.equal(settledAt.length, 3)
    for (const t of settledAt) assert.ok(t <= flowEndedAt)
  })

  it('the flow run works on a duplicate of its runner; a caller-given runner wins over the flow code', async () => {
    const own = await F.inner({ n: 1 })
    assert.equal(own.runner, 'sequential')
    const { state } = await F.inner.run({ n: 1 }, { taskRunner: new ConcurrentTaskRunner() })
    assert.equal((state.result as { runner: string }).runner, 'concurrent')
    const byDefault = await F.reportsRunner.run(undefined, { defaultTaskRunner: new SequentialTaskRunner() })
    assert.equal((byDefault.state.result as { runner: string }).runner, 'sequential')
  })

  it('a flow may call another flow: a subflow with its own runner, whose failure reaches the parent', async () => {
    const parentRuns: string[] = []
    const off = onRunEvent((event) => {
      if (event.kind === 'flow-run-state' && event.state.type === 'Running') parentRuns.push(`${event.flowRun.flowName}<${event.flowRun.parentFlowRunId ? 'child' : 'root'}`)
    })
    const result = await F.outer()
    off()
    assert.deepEqual(result.nested, { runner: 'sequential', value: 42 })
    assert.equal(result.caught, 'inner flow failed')
    assert.deepEqual(parentRuns, ['outer<root', 'inner<child', 'failing_inner<child'])
  })

  it('a subflow nobody awaits still ends before its parent; if it fails, the parent fails saying so (no unhandled rejection)', async () => {
    const ended: string[] = []
    const off = onRunEvent((event) => {
      if (event.kind === 'flow-run-state' && S.isFinal(event.state)) ended.push(`${event.flowRun.flowName} ${event.state.name}`)
    })
    const { state } = await F.forgetsSubflows.run()
    const tolerated = await F.forgetsSubflowsTolerated.run()
    off()
    assert.equal(state.type, 'Failed')
    assert.ok(state.error instanceof UnhandledTaskFailureError)
    assert.match(state.error.message, /^1 subflow run failed and nothing handled it: subflow run 'failing_inner-[0-9a-f]+' \(Failed: inner flow failed\)$/)
    assert.equal(tolerated.state.type, 'Completed')
    assert.equal(tolerated.state.result, 'returned early')
    // Both children ended before their parent, in each run.
    assert.deepEqual(ended.slice(0, 3).sort(), ['failing_inner Failed', 'forgets_subflows Failed', 'sleepy_inner Completed'])
    assert.equal(ended[2], 'forgets_subflows Failed')
    assert.equal(ended[5], 'forgets_subflows_tolerated Completed')
  })

  it('cancelling a flow run (its signal) ends waiting and running runs Cancelled, and the flow too', async () => {
    const controller = new AbortController()
    const states: string[] = []
    const off = onRunEvent((event) => {
      if (event.kind === 'task-run-state' && event.state.type === 'Cancelled') states.push(event.taskRun.name)
    })
    setTimeout(() => controller.abort(new Error('test cancelled it')), 100)
    const started = Date.now()
    const { state } = await F.longFlow.run(undefined, { signal: controller.signal })
    off()
    assert.equal(state.type, 'Cancelled')
    assert.equal(states.length, 3)
    assert.ok(Date.now() - started < 4_000, 'cancellation waited for the sleeping tasks')
  })

  it('a direct task call outside any flow runs it and returns its value; submit() outside a flow says what to do', async () => {
    assert.equal(await F.directCallOutsideFlow(1), 101)
    assert.throws(() => double.submit(1), /double.submit\(\) was called outside a flow; call it inside a flow function, or give it to a runner/)
  })

  it('flow() and task() reject bad definitions with messages that name the option', () => {
    assert.throws(() => flow({ name: 'x' }, 42 as never), /flow\(\): expected a function/)
    assert.throws(() => double.withOptions({ retries: -1 }), /task 'double': expected `retries` to be an integer from 0 and up, got `-1` \(number\)/)
    assert.throws(() => double.withOptions({ timeoutSeconds: 0 }), /`timeoutSeconds` to be a number above 0/)
    assert.throws(() => double.withOptions({ retryJitterFactor: 2 }), /`retryJitterFactor` to be a number from 0 to 1/)
  })
})

describe('flow retries and time limits', () => {
  const flowStates = () => {
    const names = new Map<string, string[]>()
    const stop = onRunEvent((event) => {
      if (event.kind === 'flow-run-state') names.set(event.flowRun.flowName, [...(names.get(event.flowRun.flowName) ?? []), event.state.name])
    })
    return { names, stop }
  }

  it('retries re-run the flow function after a failed attempt; an unhandled failure of an earlier attempt no longer counts', async () => {
    let calls = 0
    const recovers = flow({ name: 'recovers', retries: 2, retryDelaySeconds: 0.05, taskRunner: new SequentialTaskRunner() }, async () => {
      calls++
      // Attempt 1 leaves a failed run nobody handles; attempt 2 throws; attempt 3 completes.
      if (calls === 1) void boom.submit('first attempt')
      if (calls === 2) throw new Error('second attempt')
      return calls
    })
    const { names, stop } = flowStates()
    const { state } = await recovers.run()
    stop()
    assert.equal(state.type, 'Completed', state.error?.message)
    assert.equal(state.result, 3)
    assert.deepEqual(names.get('recovers'), ['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'Completed'])
  })

  it('past its retries the flow run fails with the last attempt\'s error', async () => {
    let calls = 0
    const gives = flow({ name: 'gives_up', retries: 1, taskRunner: new SequentialTaskRunner() }, async () => {
      calls++
      throw new Error(`attempt ${calls} broke`)
    })
    const { state } = await gives.run()
    assert.equal(state.type, 'Failed')
    assert.equal(state.error?.message, 'attempt 2 broke')
    assert.equal(calls, 2)
  })

  it('timeoutSeconds: the attempt ends TimedOut and its runs are cancelled', async () => {
    const slow = flow({ name: 'too_slow', timeoutSeconds: 0.2, taskRunner: new ConcurrentTaskRunner() }, async () => sleeper.submit(5_000, 'long').result())
    const started = Date.now()
    const cancelled: string[] = []
    const stop = onRunEvent((event) => {
      if (event.kind === 'task-run-state' && event.state.type === 'Cancelled') cancelled.push(event.taskRun.taskName)
    })
    const { state } = await slow.run()
    stop()
    assert.equal(state.type, 'Failed')
    assert.equal(state.name, 'TimedOut')
    assert.ok(state.error instanceof FlowRunTimeoutError)
    assert.match(state.error.message, /^flow run 'too_slow-[0-9a-f]+' timed out after 0.2 s$/)
    assert.ok(Date.now() - started < 3000, `ended after ${Date.now() - started} ms, not when the 5 s task would have`)
    assert.deepEqual(cancelled, ['sleeper'], 'the running task run was cancelled')
  })

  it('a timed-out attempt is retried like a failed one; what it submits after its time limit never starts', async () => {
    let calls = 0
    const late: string[] = []
    const second = flow({ name: 'second_time_quick', timeoutSeconds: 0.2, retries: 1, retryDelaySeconds: 0.3, taskRunner: new ConcurrentTaskRunner() }, async () => {
      calls++
      if (calls === 1) {
        // Ignores its signal: still going when its time is up, and submits more.
        await new Promise((resolve) => setTimeout(resolve, 300))
        late.push((await double.submit(1).wait()).name)
      }
      return calls
    })
    const { names, stop } = flowStates()
    const { state } = await second.run()
    stop()
    assert.equal(state.type, 'Completed')
    assert.equal(state.result, 2)
    assert.deepEqual(names.get('second_time_quick'), ['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed'])
    assert.deepEqual(late, ['Cancelled'], 'the run the timed-out attempt submitted never started')
  })

  it('refuses bad retry and time-limit options when the flow is defined', () => {
    assert.throws(() => flow({ name: 'bad', retries: -1 }, async () => 1), /flow 'bad': expected `retries` to be an integer from 0 and up, got `-1` \(number\)/)
    assert.throws(() => flow({ name: 'bad', timeoutSeconds: 0 }, async () => 1), /flow 'bad': expected `timeoutSeconds` to be a number above 0/)
  })

  it('flow hooks (test_on_completion_hooks_run_on_completed, test_on_failure_hooks_run_on_failure, test_on_cancellation_hooks_run_on_cancelled_state in tests/test_flows.py)', async () => {
    const calls: string[] = []
    const hook = (name: string) => (f: { name: string }, run: { name: string; state: { name: string } }, state: { name: string }) => {
      calls.push(`${name} ${f.name} ${state.name} ${run.state.name}`)
    }
    let attempts = 0
    const hooked = flow(
      {
        name: 'hooked',
        retries: 1,
        taskRunner: new SequentialTaskRunner(),
        onRunning: hook('onRunning'),
        onCompletion: [hook('onCompletion')],
        onFailure: hook('onFailure'),
        onCancellation: hook('onCancellation'),
      },
      async ({ fail = false, wait = 0 }: { fail?: boolean; wait?: number }) => {
        attempts++
        if (wait) await new Promise((resolve) => setTimeout(resolve, wait))
        if (fail) throw new Error('hooked flow fails')
        return attempts
      },
    )
    assert.equal(await hooked({}), 1)
    assert.deepEqual(calls.splice(0), ['onRunning hooked Running Running', 'onCompletion hooked Completed Completed'])
    // onFailure only once the retries are spent; onRunning for every attempt.
    assert.equal((await hooked.run({ fail: true })).state.type, 'Failed')
    assert.deepEqual(calls.splice(0), ['onRunning hooked Running Running', 'onRunning hooked Retrying Retrying', 'onFailure hooked Failed Failed'])
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Error('stop now')), 50)
    assert.equal((await hooked.run({ wait: 2_000 }, { signal: controller.signal })).state.type, 'Cancelled')
    assert.deepEqual(calls.splice(0), ['onRunning hooked Running Running', 'onCancellation hooked Cancelled Cancelled'])
  })

  it('a flow hook that throws is logged against the flow run and leaves it Completed', async () => {
    const logs: string[] = []
    const off = onRunEvent((event) => {
      if (event.kind === 'log') logs.push(`${event.level} ${event.message}`)
    })
    const f = flow({ name: 'hook_throws', onCompletion: function badHook() { throw new Error('hook broke') } }, async () => 'ok')
    const { state, flowRun } = await f.run()
    off()
    assert.equal(state.type, 'Completed')
    assert.deepEqual(logs, [`error onCompletion hook 'badHook' of '${flowRun.name}' failed (the run stays Completed): Error: hook broke`])
  })

  it('a flow returning Failed() is retried, then ends with it (as test_task_retries_with_explicit_failed_state in tests/test_task_engine.py for tasks)', async () => {
    let calls = 0
    const f = flow({ name: 'returns_failed', retries: 1 }, async () => {
      calls++
      return Failed({ message: `attempt ${calls} said no` })
    })
    const { state, flowRun } = await f.run()
    assert.equal(calls, 2)
    assert.deepEqual([state.type, state.message], ['Failed', 'attempt 2 said no'])
    assert.deepEqual(flowRun.history.map((s) => s.name), ['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Failed'])
    await assert.rejects(f(), /attempt 4 said no/)
  })
})
