import type { RunReport } from '../report-json.ts'
import type { ErrorRecord, LogRecord, TaskRunRecord } from '../run-history.ts'
import type { PageAttempt, PageData, PageDetail, PageFlow, PageLog, PageRun } from './page-data.ts'

/** Runs whose error keeps its stack and cause chain in the page; past that, name and message only. */
export const MAX_FULL_ERRORS = 1000
/** Log lines kept per run in the page, and in all. The JSON report keeps more. */
const MAX_LOGS_PER_RUN = 200
const MAX_LOGS = 20_000
/** Characters kept of a message or a stack. */
const MAX_TEXT = 4000

const ms = (iso: string | null | undefined): number | undefined => {
  if (!iso) return undefined
  const t = Date.parse(iso)
  return Number.isNaN(t) ? undefined : t
}
const clip = (text: string) => (text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}… (${text.length - MAX_TEXT} more characters)` : text)

function clipError(error: ErrorRecord, full: boolean): ErrorRecord {
  const out: ErrorRecord = { name: error.name, message: clip(error.message) }
  if (!full) return out
  if (error.stack !== undefined) out.stack = clip(error.stack)
  if (error.location) out.location = error.location
  if (error.cause) out.cause = clipError(error.cause, true)
  return out
}

/** Interns strings (state names, slots, task names) into a table the page indexes. */
class Table {
  readonly items: string[] = []
  readonly #index = new Map<string, number>()
  of(value: string): number {
    let i = this.#index.get(value)
    if (i === undefined) {
      i = this.items.length
      this.items.push(value)
      this.#index.set(value, i)
    }
    return i
  }
}

/**
 * The attempts of a run from its state history: each Running state starts one, the next state
 * ends it and says how it went (a Retrying or AwaitingRetry state: it failed and was retried).
 */
function attemptsOf(run: TaskRunRecord, t0: number, end: number, states: Table, slots: Table): PageAttempt[] {
  const attempts: PageAttempt[] = []
  let open: { start: number; slot: number } | undefined
  const close = (at: number, outcome: string, retried: boolean, message: string | undefined) => {
    if (!open) return
    const attempt: PageAttempt = [open.start - t0, Math.max(at, open.start) - t0, open.slot, states.of(outcome), retried ? 1 : 0]
    if (message !== undefined) attempt.push(clip(message))
    attempts.push(attempt)
    open = undefined
  }
  for (const state of run.stateHistory) {
    const at = ms(state.timestamp) ?? end
    if (state.type === 'Running') {
      // Running (Retrying) right after Running: the attempt before it failed and was retried at once.
      close(at, 'Failed', true, state.message)
      open = { start: at, slot: state.slot === undefined ? -1 : slots.of(state.slot) }
    } else if (open) {
      const retried = state.name === 'AwaitingRetry'
      close(at, retried ? 'Failed' : state.name, retried, state.message)
    }
  }
  close(end, 'Running', false, undefined)
  return attempts
}

/** The lines of one run the page keeps (at most MAX_LOGS_PER_RUN, and what is left of the budget), and how many it leaves out. */
const logsOf = (logs: readonly LogRecord[], t0: number, budget: { left: number }): { logs: PageLog[]; omitted: number } => {
  const kept = logs.slice(0, Math.min(MAX_LOGS_PER_RUN, Math.max(0, budget.left)))
  budget.left -= kept.length
  return { logs: kept.map((log) => [(ms(log.timestamp) ?? t0) - t0, log.level, clip(log.message)]), omitted: logs.length - kept.length }
}

/** What the page draws, from the JSON report: compact (string tables, times in ms from the start) so 10,000 runs stay small. */
export function pageData(report: RunReport, options: { source: 'run' | 'history' }): PageData {
  // The page's start and end: the first and last states of every run (a history is in time order).
  let t0 = Infinity
  let end = -Infinity
  for (const runs of [report.flowRuns, report.taskRuns]) {
    for (const { stateHistory } of runs) {
      const first = ms(stateHistory[0]?.timestamp)
      const last = ms(stateHistory[stateHistory.length - 1]?.timestamp)
      if (first !== undefined && first < t0) t0 = first
      if (last !== undefined && last > end) end = last
    }
  }
  if (t0 === Infinity) t0 = Date.now()
  if (end < t0) end = t0
  const states = new Table()
  const slots = new Table()
  const tasks = new Table()
  const flowIndex = new Map(report.flowRuns.map((f, i) => [f.id, i]))
  const runIndex = new Map(report.taskRuns.map((r, i) => [r.id, i]))
  const maps = new Map<string, number>()
  const mapList: PageData['maps'] = []
  const budget = { left: MAX_LOGS }
  let fullErrors = 0
  let logsOmitted = 0
  const details: Record<number, PageDetail> = {}

  // Flow runs first: their few lines matter more than the last task runs' when the budget runs out.
  const flows: PageFlow[] = report.flowRuns.map((flow) => {
    const kept = logsOf(flow.logs, t0, budget)
    logsOmitted += kept.omitted
    const start = ms(flow.startTime)
    const stop = ms(flow.endTime)
    const page: PageFlow = {
      id: flow.id,
      name: flow.name,
      flowName: flow.flowName,
      parent: flow.parentFlowRunId === null ? -1 : (flowIndex.get(flow.parentFlowRunId) ?? -1),
      state: states.of(flow.state.name),
      parameters: clip(JSON.stringify(flow.parameters ?? {})),
      runner: flow.taskRunner,
      tags: flow.tags,
      start: start === undefined ? null : start - t0,
      end: stop === undefined ? null : stop - t0,
      error: flow.error ? clipError(flow.error, true) : null,
      logs: kept.logs,
      logsOmitted: flow.logsOmitted + kept.omitted,
      // Counted as the task runs are made, below.
      taskRuns: 0,
    }
    return page
  })
  const runs: PageRun[] = report.taskRuns.map((run, i) => {
    const flow = run.flowRunId === null ? -1 : (flowIndex.get(run.flowRunId) ?? -1)
    if (flow !== -1) flows[flow]!.taskRuns++
    let map = -1
    if (run.mapId !== null) {
      map = maps.get(run.mapId) ?? -1
      if (map === -1) {
        map = mapList.length
        maps.set(run.mapId, map)
        mapList.push([tasks.of(run.taskName), flow, 0])
      }
      mapList[map]![2]++
    }
    const upstream: number[] = []
    for (const id of run.upstreamTaskRunIds) {
      const index = runIndex.get(id)
      if (index !== undefined && index !== i) upstream.push(index)
    }
    const created = (ms(run.stateHistory[0]?.timestamp) ?? t0) - t0
    const detail: PageDetail = {}
    if (run.error) detail.error = clipError(run.error, fullErrors++ < MAX_FULL_ERRORS)
    if (run.state.message !== undefined && run.state.name !== 'Completed') detail.message = clip(run.state.message)
    if (run.logs.length > 0) {
      const kept = logsOf(run.logs, t0, budget)
      detail.logs = kept.logs
      if (run.logsOmitted + kept.omitted > 0) detail.logsOmitted = run.logsOmitted + kept.omitted
      logsOmitted += kept.omitted
    }
    if (run.tags.length > 0) detail.tags = run.tags
    if (Object.keys(detail).length > 0) details[i] = detail
    return [run.id, run.name, tasks.of(run.taskName), flow, map, run.mapIndex ?? -1, states.of(run.state.name), attemptsOf(run, t0, end, states, slots), upstream, created]
  })

  // Every state name a run can show, with its type, so the page colours by type where it knows no name.
  const typeOf = new Map<string, string>()
  for (const run of report.taskRuns) for (const s of run.stateHistory) typeOf.set(s.name, s.type)
  for (const flow of report.flowRuns) for (const s of flow.stateHistory) typeOf.set(s.name, s.type)
  return {
    version: 1,
    tool: `${report.tool.name} ${report.tool.version}`,
    source: options.source,
    t0,
    span: Math.max(1, end - t0),
    counts: report.counts,
    wallSeconds: report.wallSeconds,
    states: states.items.map((name) => [name, typeOf.get(name) ?? (name === 'Running' ? 'Running' : name)]),
    slots: slots.items,
    tasks: tasks.items,
    maps: mapList,
    flows,
    runs,
    details,
    logsOmitted,
  }
}
