import type { FlowRunInfo, LogEvent, RunEvent, TaskRunInfo } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { RunLogs } from '../render/run-history.ts'
import { RunHistory, errorRecord, flowRunRecord } from '../render/run-history.ts'
import type { FlowRunWrite, HistoryStore, StoredTaskRun, TaskRunWrite } from './store.ts'

/** How often buffered changes are written (and the heartbeat renewed). */
const FLUSH_MS = 250

interface TaskEntry {
  rootId: string
  seq: number
  row: StoredTaskRun
  settled: boolean
}

interface FlowEntry {
  rootId: string
  created: number
  info: FlowRunInfo
  history: State[]
  logs: RunLogs
}

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * Listens to run events and writes every flow run and task run into the history store, off the
 * hot path: an event only updates the run's record in memory and marks it changed; a timer writes
 * the changed records in one transaction every 250 ms (and renews the heartbeat), and `close()`
 * writes the rest. A task run is kept compact (states as [type, name, epoch ms]) and leaves memory
 * once its final state is written; the store builds the report's record from it when read.
 */
export class HistoryRecorder {
  readonly #store: HistoryStore
  readonly #tasks = new Map<string, TaskEntry>()
  readonly #flows = new Map<string, FlowEntry>()
  readonly #dirtyTasks = new Set<TaskEntry>()
  readonly #dirtyFlows = new Set<FlowEntry>()
  readonly #roots = new Set<string>()
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  #failed: Error | undefined
  /** Called once if a write fails; recording stops (the flow run goes on). */
  onError: ((error: Error) => void) | undefined

  constructor(store: HistoryStore) {
    this.#store = store
  }

  /** The root flow runs recorded so far (the run `ptr run` started, first). */
  get rootIds(): string[] {
    return [...this.#roots]
  }

  onEvent = (event: RunEvent): void => {
    if (this.#failed) return
    if (event.kind === 'log') return this.#log(event)
    if (event.kind === 'flow-run-state') this.#flowState(event.flowRun, event.state)
    else if (event.kind === 'task-run-state') this.#taskState(event.taskRun, event.state)
    this.#timer ??= setTimeout(this.#flushSoon, FLUSH_MS).unref()
  }

  #flushSoon = (): void => {
    this.#timer = undefined
    this.flush()
    // Keep the heartbeat fresh while any flow run is open, even when nothing changes.
    if (!this.#failed && [...this.#flows.values()].some((f) => !isSettled(f.history[f.history.length - 1]!))) {
      this.#timer = setTimeout(this.#flushSoon, FLUSH_MS * 4).unref()
    }
  }

  #flowState(info: FlowRunInfo, state: State): void {
    let entry = this.#flows.get(info.id)
    if (!entry) {
      const parent = info.parentFlowRunId === undefined ? undefined : this.#flows.get(info.parentFlowRunId)
      const rootId = parent?.rootId ?? info.id
      if (rootId === info.id) this.#roots.add(info.id)
      entry = { rootId, created: state.timestamp, info, history: [], logs: { logs: [], logsOmitted: 0 } }
      this.#flows.set(info.id, entry)
    }
    entry.history.push(state)
    this.#dirtyFlows.add(entry)
  }

  #taskState(info: TaskRunInfo, state: State): void {
    let entry = this.#tasks.get(info.id)
    if (!entry) {
      const flow = info.flowRunId === undefined ? undefined : this.#flows.get(info.flowRunId)
      // A task run outside any flow run this process records (a direct call in a script) is not kept.
      if (!flow) return
      const row: StoredTaskRun = { id: info.id, n: info.name, t: info.taskName, k: info.taskKey, f: info.flowRunId!, s: [], a: 0 }
      if (info.tags.length > 0) row.g = [...info.tags]
      if (info.mapId !== undefined) {
        row.m = info.mapId
        row.i = info.mapIndex
      }
      entry = { rootId: flow.rootId, seq: this.#seq++, row, settled: false }
      this.#tasks.set(info.id, entry)
    }
    const { row } = entry
    // The hot path: a compact state (type, name, epoch ms); the report's record is built when read.
    row.s.push(state.message === undefined ? [state.type, state.name, state.timestamp] : [state.type, state.name, state.timestamp, state.message])
    row.a = info.attempt
    if (isSettled(state)) {
      entry.settled = true
      if (state.type !== 'Completed' && state.error !== undefined) row.e = errorRecord(state.error) ?? undefined
    }
    this.#dirtyTasks.add(entry)
  }

  #log(event: LogEvent): void {
    const task = event.taskRunId === undefined ? undefined : this.#tasks.get(event.taskRunId)
    if (task) {
      const logs = (task.row.l ??= [])
      if (logs.length < RunHistory.MAX_LOGS) logs.push([event.timestamp, event.level, event.message])
      else task.row.o = (task.row.o ?? 0) + 1
      this.#dirtyTasks.add(task)
      return
    }
    const flow = event.flowRunId === undefined ? undefined : this.#flows.get(event.flowRunId)
    if (!flow) return
    const { logs } = flow
    if (logs.logs.length < RunHistory.MAX_LOGS) logs.logs.push({ timestamp: iso(event.timestamp), level: event.level, message: event.message })
    else logs.logsOmitted++
    this.#dirtyFlows.add(flow)
  }

  /** Writes what changed since the last write. Never throws: a failed write stops recording and is reported once. */
  flush(): void {
    if (this.#failed) return
    // Flow runs are few: their records are built here, the way the JSON report builds them.
    const flows: FlowRunWrite[] = [...this.#dirtyFlows].map((f) => ({ id: f.info.id, rootId: f.rootId, record: flowRunRecord(f.info, f.history, f.logs), created: f.created }))
    const tasks: TaskRunWrite[] = [...this.#dirtyTasks].map((t) => ({ rootId: t.rootId, seq: t.seq, row: t.row, settled: t.settled }))
    try {
      this.#store.write(flows, tasks, this.rootIds)
    } catch (error) {
      this.#failed = error as Error
      this.onError?.(this.#failed)
      return
    }
    for (const task of this.#dirtyTasks) if (task.settled) this.#tasks.delete(task.row.id)
    this.#dirtyTasks.clear()
    this.#dirtyFlows.clear()
  }

  /** Writes the rest and stops the timer (the store stays open). */
  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.flush()
  }
}

