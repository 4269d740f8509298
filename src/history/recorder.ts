import type { FlowRunInfo, LogEvent, RunEvent, TaskRunInfo } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { RunLogs } from '../render/run-history.ts'
import { RunHistory, errorRecord, flowRunRecord } from '../render/run-history.ts'
import type { CachePolicy, ResultStore, StoredResult, TaskRunMemo } from '../engine/result-types.ts'
import { digest } from '../engine/value-hash.ts'
import { decodeResult, encodeResult } from './values.ts'
import type { CacheWrite, FlowRunWrite, HistoryStore, StoredTaskRun, StoredValue, TaskRunWrite } from './store.ts'

/** How often buffered changes are written (and the heartbeat renewed). */
const FLUSH_MS = 250

/** A task run as the recorder keeps it until written: the row to write, and what it waits to serialize. */
interface TaskEntry extends TaskRunWrite {
  /** A completed run's value, serialized when the entry is written (not on the engine's hot path). */
  keep?: { value: unknown; memo: TaskRunMemo } | undefined
}

/** A cache entry of this process not yet written: its value as the run returned it. */
interface PendingCacheEntry {
  value: unknown
  created: number
  expires: number | undefined
  source: string
}

/** How results are kept (the `results.*` settings). */
export interface ResultSettings {
  /** Keep values of runs whose task or flow sets no `persistResult`. */
  readonly persistByDefault: boolean
  /** Values bigger than this (serialized) are not kept: the run is marked not resumable. */
  readonly maxBytes: number
  /** The cache policy of tasks that set none (`tasks.defaultCachePolicy`). */
  readonly defaultCachePolicy?: CachePolicy | undefined
}

export const DEFAULT_RESULT_SETTINGS: ResultSettings = { persistByDefault: true, maxBytes: 64 * 1024 * 1024 }

export interface RecorderOptions {
  results?: ResultSettings | undefined
  /** The flow file `ptr run` loaded, kept with root flow runs for `ptr flow-runs retry`. */
  file?: string | undefined
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
export class HistoryRecorder implements ResultStore {
  readonly #store: HistoryStore
  readonly #results: ResultSettings
  readonly #file: string | undefined
  #resumeFrom: string | undefined
  /** Stored values of the resumed run's completed task runs, by identity (read once, at start). */
  #resumable: Map<string, { result: Uint8Array | null; file: string | null }> | undefined
  /** Cache entries of this process not yet written, by key: a later run in this process sees them. */
  readonly #pendingCache = new Map<string, PendingCacheEntry>()
  /** Flow run values to keep, by flow run id, until written (a later write without one keeps it). */
  readonly #flowValues = new Map<string, Uint8Array>()
  readonly #tasks = new Map<string, TaskEntry>()
  readonly #flows = new Map<string, FlowEntry>()
  readonly #dirtyTasks = new Set<TaskEntry>()
  readonly #dirtyFlows = new Set<FlowEntry>()
  readonly #roots = new Set<string>()
  #seq = 0
  #timer: NodeJS.Timeout | undefined
  /** Whether `#timer` is only the heartbeat's (nothing changed since the last write). */
  #heartbeatOnly = false
  #failed: Error | undefined
  /** Called once if a write fails; recording stops (the flow run goes on). */
  onError: ((error: Error) => void) | undefined

  constructor(store: HistoryStore, options: RecorderOptions = {}) {
    this.#store = store
    this.#results = options.results ?? DEFAULT_RESULT_SETTINGS
    this.#file = options.file
  }

  /** Resume root flow run `id`: its completed task runs' stored values stand in for matching runs. Returns how many there are. */
  resumeFrom(id: string): number {
    this.#resumeFrom = id
    this.#resumable = this.#store.resumable(id)
    return this.#resumable.size
  }

  get persistByDefault(): boolean {
    return this.#results.persistByDefault
  }
  get defaultCachePolicy(): CachePolicy | undefined {
    return this.#results.defaultCachePolicy
  }

  resumed(identity: string): StoredResult | undefined {
    const stored = this.#resumable?.get(identity)
    if (!stored) return undefined
    const value = this.#decode(() => this.#store.readValue(stored))
    return value && { value: value.value, from: `flow run ${this.#resumeFrom}` }
  }

  cached(key: string): StoredResult | undefined {
    const pending = this.#pendingCache.get(key)
    if (pending) {
      if (pending.expires !== undefined && pending.expires <= Date.now()) return undefined
      // A copy, as a read from the store would be: the run that wrote it keeps its own object.
      const value = this.#decode(() => {
        const bytes = encodeResult(pending.value)
        if (bytes instanceof Uint8Array) return bytes
        throw new Error(bytes.problem)
      })
      return value && { value: value.value, from: `the cache (written ${iso(pending.created)} by ${pending.source})` }
    }
    let found: ReturnType<HistoryStore['cached']>
    try {
      found = this.#store.cached(key)
    } catch {
      return undefined
    }
    if (!found) return undefined
    const value = this.#decode(() => found.bytes)
    return value && { value: value.value, from: `the cache (written ${iso(found.created)} by ${found.source})` }
  }

  /** A stored value that cannot be read back (a results file removed by hand) is a miss: the run runs. */
  #decode(read: () => Uint8Array): { value: unknown } | undefined {
    try {
      return { value: decodeResult(read()) }
    } catch {
      return undefined
    }
  }

  /** The value's bytes as the store keeps them, or why it cannot be kept. */
  #keep(value: unknown, name: string): StoredValue | string {
    const bytes = encodeResult(value)
    // "its value is an instance of Point, which would arrive as a plain object, ..."
    if (!(bytes instanceof Uint8Array)) return `its ${bytes.problem}`
    if (bytes.byteLength > this.#results.maxBytes) {
      return `its value is ${bytes.byteLength} bytes serialized, over the results.maxBytes setting (${this.#results.maxBytes})`
    }
    try {
      return this.#store.storeValue(bytes, name)
    } catch (error) {
      return `its value could not be written: ${(error as Error).message}`
    }
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
    if (this.#timer === undefined || this.#heartbeatOnly) {
      // A change is written within FLUSH_MS, even when only the (slower) heartbeat timer was set.
      clearTimeout(this.#timer)
      this.#heartbeatOnly = false
      this.#timer = setTimeout(this.#flushSoon, FLUSH_MS).unref()
    }
  }

  #flushSoon = (): void => {
    this.#timer = undefined
    this.flush(false)
    // Keep the heartbeat fresh while any flow run is open, even when nothing changes.
    if (!this.#failed && [...this.#flows.values()].some((f) => !isSettled(f.history[f.history.length - 1]!))) {
      this.#heartbeatOnly = true
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
    if (state.type === 'Completed' && info.persistResult) {
      const kept = this.#keep(state.result, `flow-${info.id}`)
      // A flow run's value is kept inline only: it is shown, never reused.
      if (typeof kept !== 'string' && kept.bytes) this.#flowValues.set(info.id, kept.bytes)
    }
    this.#dirtyFlows.add(entry)
  }

  #taskState(info: TaskRunInfo, state: State): void {
    let entry = this.#tasks.get(info.id)
    if (!entry) {
      const flow = info.flowRunId === undefined ? undefined : this.#flows.get(info.flowRunId)
      // A task run outside any flow run this process records (a direct call in a script) is not kept.
      if (!flow) return
      const row: StoredTaskRun = { id: info.id, n: info.name, k: info.taskKey, s: [], a: 0 }
      // Left out when they can be told from the key and the root (see StoredTaskRun).
      if (!info.taskKey.endsWith(`#${info.taskName}`)) row.t = info.taskName
      if (info.flowRunId !== flow.rootId) row.f = info.flowRunId!
      if (info.tags.length > 0) row.g = [...info.tags]
      if (info.mapId !== undefined) {
        row.m = info.mapId
        row.i = info.mapIndex
      }
      if (info.upstreamTaskRunIds !== undefined) row.u = [...info.upstreamTaskRunIds]
      entry = { rootId: flow.rootId, seq: this.#seq++, row, settled: false }
      this.#tasks.set(info.id, entry)
    }
    const { row } = entry
    // The hot path: a compact state (type, name, epoch ms); the report's record is built when read.
    const slot = state.type === 'Running' ? info.slot : undefined
    row.s.push(
      slot !== undefined
        ? [state.type, state.name, state.timestamp, state.message ?? null, slot]
        : state.message === undefined
          ? [state.type, state.name, state.timestamp]
          : [state.type, state.name, state.timestamp, state.message],
    )
    row.a = info.attempt
    if (isSettled(state)) {
      entry.settled = true
      if (state.type !== 'Completed' && state.error !== undefined) row.e = errorRecord(state.error) ?? undefined
      if (state.type === 'Completed' && info.memo?.persist) this.#keepTaskValue(entry, info, state)
    }
    this.#dirtyTasks.add(entry)
  }

  /**
   * Notes a completed run's value for resuming (under its identity) and for the cache (under its
   * key); it is serialized when the entry is written.
   */
  #keepTaskValue(entry: TaskEntry, info: TaskRunInfo, state: State): void {
    const memo = info.memo!
    if (memo.identity === undefined && memo.cacheKey === undefined) {
      entry.row.r = `it cannot be matched on resume: ${memo.unhashable ?? 'its arguments have no stable hash'}`
      return
    }
    entry.keep = { value: state.result, memo }
    // A run that executed refreshes its cache entry; one that a stored value stood in for does not.
    if (memo.cacheKey !== undefined && state.name !== 'Cached') {
      const flow = info.flowRunId === undefined ? undefined : this.#flows.get(info.flowRunId)
      this.#pendingCache.set(memo.cacheKey, {
        value: state.result,
        created: state.timestamp,
        expires: memo.cacheTtlMs === undefined ? undefined : state.timestamp + memo.cacheTtlMs,
        source: `'${info.name}' of flow run ${flow?.rootId ?? info.flowRunId}`,
      })
    }
  }

  /** Serializes the value `entry` keeps (see #keepTaskValue), or says in its row why it cannot be kept. */
  #serializeKept(entry: TaskEntry, cache: CacheWrite[]): void {
    const { value, memo } = entry.keep!
    entry.keep = undefined
    const kept = this.#keep(value, memo.cacheKey === undefined ? `${entry.rootId}-${entry.seq}` : `cache-${digest(memo.cacheKey)}`)
    if (typeof kept === 'string') {
      entry.row.r = kept
      if (memo.cacheKey !== undefined) this.#pendingCache.delete(memo.cacheKey)
      return
    }
    if (memo.identity !== undefined) {
      entry.identity = memo.identity
      entry.value = kept
    } else entry.row.r = `it cannot be matched on resume: ${memo.unhashable}`
    const pending = memo.cacheKey === undefined ? undefined : this.#pendingCache.get(memo.cacheKey)
    if (pending && pending.value === value) cache.push({ key: memo.cacheKey!, value: kept, created: pending.created, expires: pending.expires, source: pending.source })
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

  /**
   * Writes what changed since the last write. Never throws: a failed write stops recording and is
   * reported once. Unless `all`, task runs that are only Pending (not started yet) wait until they
   * start or settle: the runs of a big map are then written once each, not once Pending and again
   * when done. (A killed `ptr run` leaves no trace of runs that never started.)
   */
  flush(all = true): void {
    if (this.#failed) return
    // Flow runs are few: their records are built here, the way the JSON report builds them.
    const flows: FlowRunWrite[] = [...this.#dirtyFlows].map((f) => ({
      id: f.info.id,
      rootId: f.rootId,
      record: flowRunRecord(f.info, f.history, f.logs),
      created: f.created,
      file: f.rootId === f.info.id ? this.#file : undefined,
      result: this.#flowValues.get(f.info.id),
    }))
    const cache: CacheWrite[] = []
    const tasks: TaskRunWrite[] = []
    const waiting: TaskEntry[] = []
    for (const t of this.#dirtyTasks) {
      if (!all && t.row.s.length === 1 && !t.settled) {
        waiting.push(t)
        continue
      }
      if (t.keep) this.#serializeKept(t, cache)
      tasks.push(t)
    }
    try {
      this.#store.write(flows, tasks, this.rootIds, cache)
    } catch (error) {
      this.#failed = error as Error
      this.onError?.(this.#failed)
      return
    }
    for (const entry of cache) this.#pendingCache.delete(entry.key)
    for (const flow of flows) this.#flowValues.delete(flow.id)
    for (const task of this.#dirtyTasks) if (task.settled) this.#tasks.delete(task.row.id)
    this.#dirtyTasks.clear()
    for (const task of waiting) this.#dirtyTasks.add(task)
    this.#dirtyFlows.clear()
  }

  /** Writes the rest and stops the timer (the store stays open). */
  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.flush()
  }
}

