import type { FlowRunInfo, LogEvent, LogLevel, RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import { userFrame } from './failure.ts'

export interface StateRecord {
  type: State['type']
  name: string
  timestamp: string
  message?: string
  /** On a Running state: the task runner's slot that attempt ran in (`thread 2`). */
  slot?: string
}

/** A log line of a run: its console output and getRunLogger() lines. */
export interface LogRecord {
  timestamp: string
  level: LogLevel
  message: string
}

export interface ErrorRecord {
  name: string
  message: string
  /** The stack, mapped to the `.ts` sources. */
  stack?: string
  /** The first frame of the stack in the user's code; `file` relative to the working folder. */
  location?: { file: string; line: number; column: number }
  cause?: ErrorRecord
}

/** The log lines of a run (a flow run's: those outside its task runs). */
export interface RunLogs {
  /** The first `RunHistory.MAX_LOGS` lines. */
  logs: LogRecord[]
  /** Lines past that limit (counted, not kept). */
  logsOmitted: number
}

/** What task runs and flow runs both report: states, timings, error and logs. */
interface RunLifetime extends RunLogs {
  id: string
  name: string
  state: StateRecord
  stateHistory: StateRecord[]
  startTime: string | null
  endTime: string | null
  durationSeconds: number | null
  error: ErrorRecord | null
}

export interface TaskRunRecord extends RunLifetime {
  taskName: string
  taskKey: string
  flowRunId: string | null
  tags: string[]
  mapIndex: number | null
  mapId: string | null
  attempts: number
  /** In the run history: why the run's value was not kept (so a resume runs it again), when it was not. */
  resultNotStored?: string
  /** The task runs whose futures this run was given (arguments and `waitFor`): the task graph's edges. */
  upstreamTaskRunIds: string[]
}

export interface FlowRunRecord extends RunLifetime {
  flowName: string
  parentFlowRunId: string | null
  parameters: unknown
  taskRunner: string
  /** Tags from the `tags()` contexts around the flow call. */
  tags: string[]
}

const iso = (ms: number) => new Date(ms).toISOString()

export function stateRecord(state: State, slot?: string): StateRecord {
  const record: StateRecord = { type: state.type, name: state.name, timestamp: iso(state.timestamp) }
  if (state.message !== undefined) record.message = state.message
  if (slot !== undefined && state.type === 'Running') record.slot = slot
  return record
}

export function errorRecord(error: unknown, depth = 0): ErrorRecord | null {
  if (!(error instanceof Error)) return error === undefined ? null : { name: 'Error', message: String(error) }
  const record: ErrorRecord = { name: error.name, message: error.message }
  if (typeof error.stack === 'string') {
    record.stack = error.stack
    const frame = userFrame(error.stack)
    if (frame) record.location = { file: frame.file, line: frame.line, column: frame.column }
  }
  if (error.cause !== undefined && depth < 3) {
    const cause = errorRecord(error.cause, depth + 1)
    if (cause) record.cause = cause
  }
  return record
}

/** Parameters as JSON can hold them: BigInts as strings, functions and symbols dropped. */
function toJsonSafe(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null')
  } catch {
    return null
  }
}

interface Times {
  start: number | undefined
  end: number | undefined
}

/**
 * Keeps every task run's full state history, for the JSON and JUnit reports. Only attached when
 * a report is asked for: it holds a record per run.
 */
export class RunHistory {
  static readonly MAX_LOGS = 1000
  readonly #taskRuns = new Map<string, { record: TaskRunRecord; times: Times; settled: boolean }>()
  readonly #flowRuns = new Map<string, { info: FlowRunInfo; history: State[]; logs: RunLogs }>()
  #rootFlowRunId: string | undefined

  #log(event: LogEvent): void {
    const owner = event.taskRunId !== undefined ? this.#taskRuns.get(event.taskRunId)?.record : event.flowRunId !== undefined ? this.#flowRuns.get(event.flowRunId)?.logs : undefined
    if (!owner) return
    if (owner.logs.length < RunHistory.MAX_LOGS) owner.logs.push({ timestamp: iso(event.timestamp), level: event.level, message: event.message })
    else owner.logsOmitted++
  }

  onEvent = (event: RunEvent): void => {
    if (event.kind === 'log') return this.#log(event)
    if (event.kind === 'flow-run-state') {
      const entry = this.#flowRuns.get(event.flowRun.id) ?? { info: event.flowRun, history: [], logs: { logs: [], logsOmitted: 0 } }
      entry.history.push(event.state)
      this.#flowRuns.set(event.flowRun.id, entry)
      if (!this.#rootFlowRunId && event.flowRun.parentFlowRunId === undefined) this.#rootFlowRunId = event.flowRun.id
      return
    }
    if (event.kind !== 'task-run-state') return
    const { taskRun, state } = event
    let entry = this.#taskRuns.get(taskRun.id)
    if (!entry) {
      entry = {
        record: {
          id: taskRun.id,
          name: taskRun.name,
          taskName: taskRun.taskName,
          taskKey: taskRun.taskKey,
          flowRunId: taskRun.flowRunId ?? null,
          tags: [...taskRun.tags],
          mapIndex: taskRun.mapIndex ?? null,
          mapId: taskRun.mapId ?? null,
          upstreamTaskRunIds: taskRun.upstreamTaskRunIds ? [...taskRun.upstreamTaskRunIds] : [],
          state: stateRecord(state),
          stateHistory: [],
          attempts: 0,
          startTime: null,
          endTime: null,
          durationSeconds: null,
          error: null,
          logs: [],
          logsOmitted: 0,
        },
        times: { start: undefined, end: undefined },
        settled: false,
      }
      this.#taskRuns.set(taskRun.id, entry)
    }
    const { record, times } = entry
    record.state = stateRecord(state, taskRun.slot)
    record.stateHistory.push(record.state)
    record.attempts = taskRun.attempt
    if (state.type === 'Running' && times.start === undefined) times.start = state.timestamp
    if (isSettled(state)) {
      times.end = state.timestamp
      entry.settled = true
      record.error = state.type === 'Completed' ? null : errorRecord(state.error)
    }
  }

  taskRuns(): TaskRunRecord[] {
    return [...this.#taskRuns.values()].map(({ record, times }) => ({
      ...record,
      startTime: times.start === undefined ? null : iso(times.start),
      endTime: times.end === undefined ? null : iso(times.end),
      durationSeconds: times.start === undefined || times.end === undefined ? null : (times.end - times.start) / 1000,
    }))
  }

  flowRuns(): FlowRunRecord[] {
    const root = this.#rootFlowRunId
    const entries = [...this.#flowRuns.values()].sort((a, b) => (a.info.id === root ? -1 : b.info.id === root ? 1 : 0))
    return entries.map(({ info, history, logs }) => flowRunRecord(info, history, logs))
  }
}

/** The report's record of a flow run, from its info, its states so far and its log lines. */
export function flowRunRecord(info: FlowRunInfo, history: readonly State[], logs: RunLogs): FlowRunRecord {
  const running = history.find((s) => s.type === 'Running')
  const last = history[history.length - 1]!
  const ended = isSettled(last) ? last : undefined
  return {
    id: info.id,
    name: info.name,
    flowName: info.flowName,
    parentFlowRunId: info.parentFlowRunId ?? null,
    parameters: toJsonSafe(info.parameters),
    taskRunner: info.taskRunnerName,
    tags: [...(info.tags ?? [])],
    state: stateRecord(last),
    stateHistory: history.map((s) => stateRecord(s)),
    startTime: running ? iso(running.timestamp) : null,
    endTime: ended ? iso(ended.timestamp) : null,
    durationSeconds: running && ended ? (ended.timestamp - running.timestamp) / 1000 : null,
    error: ended && ended.type !== 'Completed' ? errorRecord(ended.error) : null,
    ...logs,
  }
}
