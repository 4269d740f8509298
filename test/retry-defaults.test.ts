/**
 * Default retries from settings (PREFECT_TASK_DEFAULT_RETRIES, PREFECT_FLOW_DEFAULT_RETRIES and
 * their delays), as Prefect's test_global_task_retry_config / test_global_retry_config: in the
 * engine (flow.run's retryDefaults) and through the real ptr binary and `ptr config view`.
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import { SequentialTaskRunner, flow } from '../src/index.ts'
import * as F from './fixtures/retry-defaults-flow.ts'
import { recordStates } from './helpers/events.ts'
import { REPO, runPtr, tempProject } from './helpers/cli.ts'

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'retry-defaults-flow.ts')
const projects: Array<{ remove: () => void }> = []
after(() => {
  for (const project of projects) project.remove()
})

describe('retry defaults', () => {
  it('test_global_task_retry_config (tests/test_task_engine.py): a task with no retries of its own takes the default; its own options win', async () => {
    const { names, stop } = recordStates()
    const ids: string[] = []
    const f = flow({ name: 'task_defaults', taskRunner: new SequentialTaskRunner() }, async () => {
      const flaky = F.flakyOnce.submit()
      const own = F.ownRetries.submit()
      ids.push(flaky.taskRunId, own.taskRunId)
      return [await flaky.result(), (await own.result({ raiseOnFailure: false })) instanceof Error]
    })
    const { state } = await f.run({}, { retryDefaults: { taskRetries: 1, taskRetryDelaySeconds: 0.01 } })
    stop()
    assert.equal(state.type, 'Completed', state.message)
    assert.deepEqual(state.result, [2, true])
    assert.deepEqual(names(ids[0]!), ['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'Completed'])
    assert.deepEqual(names(ids[1]!), ['Pending', 'Running', 'Failed'])
    // Without defaults, no retry.
    assert.equal((await f.run()).state.type, 'Failed')
  })

  it('test_global_retry_config (tests/test_flows.py): a flow with no retries of its own takes the default, and subflows inherit it', async () => {
    let runs = 0
    let childRuns = 0
    const child = flow({ name: 'child' }, async () => {
      if (++childRuns === 1) throw new Error('child fails once')
      return 'child ok'
    })
    const parent = flow({ name: 'parent', taskRunner: new SequentialTaskRunner() }, async () => {
      runs++
      return child()
    })
    const { state } = await parent.run({}, { retryDefaults: { flowRetries: 1 } })
    assert.equal(state.result, 'child ok', state.message)
    assert.equal(childRuns, 2)
    assert.equal(runs, 1)
    const own = flow({ name: 'own', retries: 0, taskRunner: new SequentialTaskRunner() }, async () => {
      throw new Error('no retry: retries 0 is its own')
    })
    const { flowRun } = await own.run({}, { retryDefaults: { flowRetries: 3 } })
    assert.deepEqual(flowRun.history.map((s) => s.name), ['Pending', 'Running', 'Failed'])
  })

  it('through ptr run and ptr config view: environment and .prefectrc', async () => {
    const p = tempProject({
      'package.json': '{ "name": "retry-defaults", "private": true }\n',
      '.prefectrc': 'tasks:\n  defaultRetries: 1\nflows:\n  defaultRetries: 1\n',
    })
    projects.push(p)
    const env = { PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS: '0.05', PREFECT_FLOW_DEFAULT_RETRY_DELAY_SECONDS: '0' }
    const run = await runPtr(['run', FIXTURE, '--runner', 'sequential', '--output', 'plain'], { cwd: p.dir, env })
    assert.equal(run.code, 0, run.stdout + run.stderr)
    assert.match(run.stdout, /flow attempts=2 task attempts=2 own=Failed/)
    assert.match(run.stdout, /flaky_once-\d+ AwaitingRetry attempt 1 failed: first attempt fails; retrying in 0\.1 s/)
    const view = await runPtr(['config', 'view', '--show-sources'], { cwd: p.dir, env })
    assert.equal(view.code, 0, view.stderr)
    assert.match(view.stdout, /tasks\.defaultRetries\s*=?\s*1.*file .*\.prefectrc/)
    assert.match(view.stdout, /tasks\.defaultRetryDelaySeconds\s*=?\s*0\.05.*env PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS/)
    assert.match(view.stdout, /flows\.defaultRetries\s*=?\s*1.*file/)
    const bad = await runPtr(['config', 'view'], { cwd: p.dir, env: { PREFECT_TASK_DEFAULT_RETRIES: '-1' } })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /PREFECT_TASK_DEFAULT_RETRIES.*an integer from 0 and up/)
  })
})
