/**
 * What the HTML report is drawn from: the upstream runs and slots the engine records (real flows,
 * real runners, in this process), and how the page's data is made from the JSON report.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ConcurrentTaskRunner, ThreadPoolTaskRunner, flow, onRunEvent, task } from '../src/index.ts'
import type { RunEvent } from '../src/index.ts'
import type { RunReport } from '../src/render/report-json.ts'
import type { TaskRunRecord } from '../src/render/run-history.ts'
import { MAX_FULL_ERRORS, pageData } from '../src/render/report-html/data.ts'
import { buildHtmlReport } from '../src/render/report-html/index.ts'
import { double, sleeper, sum } from './fixtures/tasks.ts'

/** Runs `fn` with a listener that keeps every task-run event. */
async function recording<T>(fn: () => Promise<T>): Promise<{ value: T; events: Extract<RunEvent, { kind: 'task-run-state' }>[] }> {
  const events: Extract<RunEvent, { kind: 'task-run-state' }>[] = []
  const off = onRunEvent((event) => {
    if (event.kind === 'task-run-state') events.push({ ...event, taskRun: { ...event.taskRun, slot: event.taskRun.slot, upstreamTaskRunIds: event.taskRun.upstreamTaskRunIds } })
  })
  try {
    return { value: await fn(), events }
  } finally {
    off()
  }
}

/** The attempts seen on Running events, and checks that no two running at once held one slot. */
function slotsOf(events: Extract<RunEvent, { kind: 'task-run-state' }>[]): string[] {
  const holder = new Map<string, string>()
  const seen: string[] = []
  for (const { taskRun, state, previous } of events) {
    if (previous?.type === 'Running') for (const [slot, id] of holder) if (id === taskRun.id) holder.delete(slot)
    if (state.type !== 'Running') continue
    const slot = taskRun.slot
    assert.ok(slot, `${taskRun.name} is Running without a slot`)
    const other = holder.get(slot)
    assert.ok(other === undefined || other === taskRun.id, `${taskRun.name} runs on ${slot} while another run holds it`)
    holder.set(slot, taskRun.id)
    seen.push(slot)
  }
  return seen
}

const pick = task({ name: 'pick' }, (value: { a: number; list: number[] }) => value.a + value.list.length)

describe('the engine records upstream runs and slots', () => {
  it('upstreamTaskRunIds: futures in arguments at any depth, in waitFor, and the future a map() iterated', async () => {
    // A map over a future: written as users write it.
    const items = task({ name: 'items' }, async () => [1, 2, 3])
    const mapping = flow({ name: 'map-over-future', taskRunner: new ConcurrentTaskRunner() }, async () => {
      const source = items.submit()
      const doubled = double.map(source)
      await doubled.wait()
      return { source: source.taskRunId, runs: doubled.map((f) => f.taskRunId) }
    })
    const ids = flow({ name: 'edges', taskRunner: new ConcurrentTaskRunner({ maxConcurrency: 2 }) }, async () => {
      const a = double.submit(1)
      const b = double.submit(2)
      const nested = pick.submit({ a, list: [b, b] })
      const gated = double.withOptions({ waitFor: [nested] }).submit(3)
      const plain = double.submit(4)
      await Promise.all([gated.wait(), plain.wait()])
      return { a: a.taskRunId, b: b.taskRunId, nested: nested.taskRunId, gated: gated.taskRunId, plain: plain.taskRunId }
    })
    const { value, events } = await recording(() => ids())
    const upstreamOf = (id: string) => events.find((e) => e.taskRun.id === id)!.taskRun.upstreamTaskRunIds
    assert.deepEqual(upstreamOf(value.nested), [value.a, value.b], 'each future once, in order')
    assert.deepEqual(upstreamOf(value.gated), [value.nested])
    assert.equal(upstreamOf(value.plain), undefined)
    assert.equal(upstreamOf(value.a), undefined)
    // Known from the run's first event on, when it is submitted.
    const first = events.find((e) => e.taskRun.id === value.nested)!
    assert.equal(first.previous, undefined)
    assert.deepEqual(first.taskRun.upstreamTaskRunIds, [value.a, value.b])

    const mapped = await recording(() => mapping())
    for (const id of mapped.value.runs) assert.deepEqual(mapped.events.find((e) => e.taskRun.id === id)!.taskRun.upstreamTaskRunIds, [mapped.value.source])
    assert.equal(mapped.value.runs.length, 3)
  })

  it('slot: a Running attempt holds one slot of its runner, never shared with another running attempt', async () => {
    const concurrent = flow({ name: 'slots', taskRunner: new ConcurrentTaskRunner({ maxConcurrency: 3 }) }, async () => {
      await sleeper.map([20, 20, 20, 20, 20, 20, 20], 'x').result()
    })
    const { events } = await recording(() => concurrent())
    const slots = slotsOf(events)
    assert.equal(slots.length, 7)
    assert.deepEqual([...new Set(slots)].sort(), ['concurrent 1', 'concurrent 2', 'concurrent 3'])
  })

  it('slot: the thread pool names its slots thread 1..maxWorkers', async () => {
    const threads = flow({ name: 'thread-slots', taskRunner: new ThreadPoolTaskRunner({ maxWorkers: 2 }) }, async () => {
      await sleeper.map([30, 30, 30, 30], 'x').result()
    })
    const { events } = await recording(() => threads())
    const slots = slotsOf(events)
    assert.equal(slots.length, 4)
    assert.deepEqual([...new Set(slots)].sort(), ['thread 1', 'thread 2'])
  })
})

const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()
function taskRun(id: string, states: [string, string, number, string?, string?][], extra: Partial<TaskRunRecord> = {}): TaskRunRecord {
  const stateHistory = states.map(([type, name, ms, message, slot]) => ({ type: type as 'Running', name, timestamp: at(ms), ...(message ? { message } : {}), ...(slot ? { slot } : {}) }))
  return {
    id,
    name: `${id}-0`,
    taskName: id,
    taskKey: `file:///x.ts#${id}`,
    flowRunId: 'f',
    tags: [],
    mapIndex: null,
    mapId: null,
    upstreamTaskRunIds: [],
    state: stateHistory[stateHistory.length - 1]!,
    stateHistory,
    attempts: stateHistory.filter((s) => s.type === 'Running').length,
    startTime: null,
    endTime: null,
    durationSeconds: null,
    error: null,
    logs: [],
    logsOmitted: 0,
    ...extra,
  }
}
function reportOf(taskRuns: TaskRunRecord[]): RunReport {
  const states = [
    { type: 'Pending' as const, name: 'Pending', timestamp: at(0) },
    { type: 'Running' as const, name: 'Running', timestamp: at(1) },
    { type: 'Failed' as const, name: 'Failed', timestamp: at(1000) },
  ]
  return {
    schemaVersion: 1,
    tool: { name: 'ptr', version: '0.0.0' },
    flowRun: null,
    flowRuns: [
      { id: 'f', name: 'f-1', flowName: 'f', parentFlowRunId: null, parameters: {}, taskRunner: 'concurrent', tags: [], state: states[2]!, stateHistory: states, startTime: at(1), endTime: at(1000), durationSeconds: 1, error: null, logs: [], logsOmitted: 0 },
    ],
    taskRuns,
    counts: {},
    wallSeconds: 1,
  }
}

describe("the page's data", () => {
  it('an attempt per Running state; a Retrying or AwaitingRetry state ends the one before as failed and retried', () => {
    const data = pageData(
      reportOf([
        taskRun('now', [
          ['Pending', 'Pending', 0],
          ['Running', 'Running', 10, undefined, 'concurrent 1'],
          ['Running', 'Retrying', 30, 'attempt 1 failed: nope; retrying now', 'concurrent 1'],
          ['Completed', 'Completed', 50],
        ]),
        taskRun('later', [
          ['Pending', 'Pending', 0],
          ['Running', 'Running', 10, undefined, 'concurrent 2'],
          ['Scheduled', 'AwaitingRetry', 20, 'nope'],
          ['Running', 'Retrying', 120, undefined, 'concurrent 1'],
          ['Failed', 'Failed', 140, 'nope again'],
        ]),
        taskRun('never', [
          ['Pending', 'Pending', 0],
          ['Pending', 'NotReady', 200, 'upstream failed'],
        ]),
      ]),
      { source: 'run' },
    )
    const attempts = (i: number) => data.runs[i]![7].map(([start, end, slot, outcome, retried]) => [start, end, data.slots[slot], data.states[outcome]![0], retried])
    assert.deepEqual(attempts(0), [
      [10, 30, 'concurrent 1', 'Failed', 1],
      [30, 50, 'concurrent 1', 'Completed', 0],
    ])
    assert.deepEqual(attempts(1), [
      [10, 20, 'concurrent 2', 'Failed', 1],
      [120, 140, 'concurrent 1', 'Failed', 0],
    ])
    assert.deepEqual(attempts(2), [])
    assert.equal(data.runs[0]![7][0]![5], 'attempt 1 failed: nope; retrying now')
  })

  it('upstream ids become run indexes; stacks are kept for the first errors only', async () => {
    const runs = Array.from({ length: MAX_FULL_ERRORS + 5 }, (_, i) =>
      taskRun(`r${i}`, [
        ['Pending', 'Pending', 0],
        ['Running', 'Running', 1, undefined, 'thread 1'],
        ['Failed', 'Failed', 2, 'bad'],
      ], { error: { name: 'Error', message: `bad ${i}`, stack: `Error: bad ${i}\n    at x (/x.ts:1:1)` }, upstreamTaskRunIds: i > 0 ? [`r${i - 1}`, 'not-in-this-report'] : [] }),
    )
    const data = pageData(reportOf(runs), { source: 'history' })
    assert.deepEqual(data.runs[3]![8], [2])
    assert.ok(data.details[0]!.error!.stack)
    assert.equal(data.details[MAX_FULL_ERRORS + 1]!.error!.stack, undefined)
    assert.equal(data.details[MAX_FULL_ERRORS + 1]!.error!.message, `bad ${MAX_FULL_ERRORS + 1}`)
    // And the page embeds it so that no text of a run can end its script element.
    const html = await buildHtmlReport(reportOf([taskRun('x', [['Pending', 'Pending', 0]], { name: '</script><b>x' })]), { source: 'run' })
    assert.equal(html.match(/<\/script>/g)!.length, 2)
    assert.match(html, /\\u003c\/script>\\u003cb>x/)
  })
})

describe("the page's logs", () => {
  const lines = (n: number) => Array.from({ length: n }, (_, i) => ({ timestamp: at(i), level: 'info' as const, message: `line ${i}` }))

  it('a flow run keeps at most 200 lines and counts the rest as omitted, as a task run does', () => {
    const report = reportOf([])
    report.flowRuns[0]!.logs = lines(1000)
    report.flowRuns[0]!.logsOmitted = 7
    const data = pageData(report, { source: 'run' })
    assert.equal(data.flows[0]!.logs.length, 200)
    assert.equal(data.flows[0]!.logsOmitted, 800 + 7)
    assert.equal(data.logsOmitted, 800)
  })

  it('the flow runs get their lines before the task runs use up the budget of 20,000', () => {
    const report = reportOf(Array.from({ length: 101 }, (_, i) => taskRun(`r${i}`, [['Completed', 'Completed', 5]], { logs: lines(200) })))
    report.flowRuns[0]!.logs = lines(50)
    const data = pageData(report, { source: 'run' })
    assert.equal(data.flows[0]!.logs.length, 50)
    assert.equal(data.flows[0]!.logsOmitted, 0)
    // 20,000 - 50 lines are left for 101 runs of 200: the last runs get 150 and 0.
    assert.equal(data.details[99]!.logs!.length, 150)
    assert.equal(data.details[99]!.logsOmitted, 50)
    assert.deepEqual(data.details[100]!.logs, [])
    assert.equal(data.details[100]!.logsOmitted, 200)
    assert.equal(data.logsOmitted, 250)
  })
})

describe("the page's flow runs", () => {
  it('the start and end come from the first and last states of every run: 60,000 subflows do not overflow the stack, a bad timestamp does not move the start to 1970', () => {
    const report = reportOf([taskRun('t', [['Pending', 'Pending', 5], ['Completed', 'Completed', 3000]])])
    const root = report.flowRuns[0]!
    const states = root.stateHistory
    for (let i = 0; i < 60_000; i++) report.flowRuns.push({ ...root, id: `s${i}`, parentFlowRunId: 'f', stateHistory: states })
    report.flowRuns.push({ ...root, id: 'bad', parentFlowRunId: 'f', stateHistory: [{ ...states[0]!, timestamp: 'not a time' }] })
    const data = pageData(report, { source: 'run' })
    assert.equal(data.t0, Date.parse(at(0)))
    assert.equal(data.span, 3000)
    assert.equal(data.flows.length, 60_002)
    assert.deepEqual([data.flows[0]!.taskRuns, data.flows[1]!.taskRuns], [1, 0])
  })

  it('parameters are JSON text clipped like any other text: a 100,000-character one does not land whole', () => {
    const report = reportOf([])
    report.flowRuns[0]!.parameters = { big: 'x'.repeat(100_000), n: 1 }
    const data = pageData(report, { source: 'run' })
    const text = data.flows[0]!.parameters
    assert.equal(typeof text, 'string')
    assert.ok(text.length < 4100, `${text.length} characters of parameters in the page`)
    assert.match(text, /^\{"big":"xxx/)
    assert.match(text, /… \(\d+ more characters\)$/)
    const small = reportOf([])
    small.flowRuns[0]!.parameters = { n: 1 }
    assert.equal(pageData(small, { source: 'run' }).flows[0]!.parameters, '{"n":1}')
  })
})
