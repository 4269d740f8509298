import type { FlowRunInfo, LogEvent, RunEvent, TaskRunInfo } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { RunLogs } from '../render/run-history.ts'
import { RunHistory, errorRecord, flowRunRecord } from '../render/run-history.ts'
import type { CachePolicy, ResultStore, StoredResult } from '../engine/result-types.ts'
import type { ResultSettings } from './result-settings.ts'
import { DEFAULT_RESULT_SETTINGS } from './result-settings.ts'
import { decodeResult, encodeResult } from './values.ts'
import { isShortValue } from './value-text.ts'
import type { HistoryStore } from './store.ts'
import type { FlowRunWrite, WriteBatch } from './writer-protocol.ts'
import {
  INLINE_VALUE_BYTES,
  OP_BYTES,
  OP_CACHE,
  OP_CACHED,
  OP_ERROR,
  OP_LOG,
  OP_NOT_KEPT,
  OP_RUNNING,
  OP_STATE,
  OP_STATE_FULL,
  OP_TASK,
  OP_VALUE,
  OP_VALUE_ID,
  SAME,
  STATE_TYPE_CODE,
  stateCode,
} from './writer-protocol.ts'
import { WriterThread } from './writer-thread.ts'

/** How often buffered changes are written (and the heartbeat renewed). */
const FLUSH_MS = 250
/** Ops (writer-protocol.ts) that make a batch be posted at once: about 300 task runs' events. */
const POST_AT_OPS = 8192
/**
 * Ops after which the writer thread is started, ahead of the first batch: a run this busy will
 * post batches soon, and they should not queue up while the thread starts (some 40 ms). A run
 * that ends before (a few dozen task runs) is written without one (see WriterThread).
 */
const WARM_AT_OPS = 512

/** Slots numbered (see #slot); the rest are sent by name. */
const MAX_SLOTS = 256

/**
 * A cache entry of this process not yet written: its value as the run returned it, as the
 * bytes the writer gets (a hit decodes a copy: a later change to the run's object does not leak
 * into it), or the value itself when it has a short form (immutable).
 */
interface PendingCacheEntry {
  bytes: Uint8Array | undefined
  value: unknown
  created: number
  expires: number | undefined
  source: string
  /** The batch that writes it: once the writer has written that one, the store has the entry. */
  batch: number
}


export interface RecorderOptions {
  results?: ResultSettings | undefined
  /** The flow file `ptr run` loaded, kept with root flow runs for `ptr flow-runs retry`. */
  file?: string | undefined
}

interface FlowEntry {
  /** Whether its last state is not settled (see #openFlows). */
  open: boolean
  rootId: string
  created: number
  info: FlowRunInfo
  history: State[]
  logs: RunLogs
}

const iso = (ms: number) => new Date(ms).toISOString()
const NOT_MATCHED = 'it cannot be matched on resume: '
/** Bytes with a buffer of their own: the clone of a view (a small Buffer in Node's pool) copies its whole buffer. */
const ownBuffer = (bytes: Uint8Array): Uint8Array => (bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes))

/**
 * Listens to run events and has every flow run and task run written into the history store, off
 * the flow run's thread: an event only appends a few fields to the current batch (see
 * writer-protocol.ts); the batch goes to the history's writer thread every 250 ms, or at once
 * when it holds about 300 task runs' events, and the writer rebuilds the rows and writes them, on
 * its own connection (a flow run that ends before the first batch goes has its one batch written
 * by close(), on this thread: see WriterThread). The 250 ms write also renews the heartbeat, and `close()` waits until
 * everything is written. Reads (`cached()`) see this process's cache entries before the writer has
 * written them.
 */
export class HistoryRecorder implements ResultStore {
  readonly #store: HistoryStore
  readonly #results: ResultSettings
  readonly #file: string | undefined
  readonly #writer: WriterThread
  #resumeFrom: string | undefined
  /** Where the resumed run's completed task runs are (seq), by identity (read once, at start); their values are read when used. */
  #resumable: Map<string, number> | undefined
  /** Cache entries of this process not yet written, by key: a later run in this process sees them. */
  readonly #pendingCache = new Map<string, PendingCacheEntry>()
  /**
   * The cache entries cached() served, by key: when (the entry's `created`). The row of a run an
   * entry stood in for takes the entry's value (OP_CACHED) rather than a serialization of its own.
   */
  readonly #served = new Map<string, number>()
  /** Flow run values to keep (up to INLINE_VALUE_BYTES), by flow run id, until posted (a later write without one keeps it). */
  readonly #flowValues = new Map<string, Uint8Array>()
  readonly #flows = new Map<string, FlowEntry>()
  readonly #dirtyFlows = new Set<FlowEntry>()
  readonly #roots = new Set<string>()
  /**
   * The place (writer-protocol.ts) of each task run recorded here, by id: what its ops name it
   * by. The ids are the engine's own strings. A run that settled leaves once its batch is posted
   * (until then a late log line of it still reaches its row, as in the writer).
   */
  readonly #places = new Map<string, number>()
  #nextPlace = 0
  /** The ids of the runs that settled in the current batch (see #places). */
  #settled: string[] = []
  /** How many flow runs have not settled: while any is open, the heartbeat is renewed. */
  #openFlows = 0
  /** The batch being gathered: ops as writer-protocol.ts says. */
  #ops: unknown[] = []
  /** What the current batch's state times count from, and the slots it names first (see WriteBatch). */
  #base = Date.now()
  #newSlots: string[] = []
  readonly #slots = new Map<string, number>()
  // The strings last sent in an OP_TASK (the writer keeps them too: see SAME).
  #lastRoot: unknown = SAME
  #lastKey: unknown = SAME
  #lastTaskName: unknown = SAME
  #lastMap: unknown = SAME
  #timer: NodeJS.Timeout | undefined
  /** Whether `#timer` is only the heartbeat's (nothing changed since the last write). */
  #heartbeatOnly = false
  #failed: Error | undefined
  #closed = false
  /** Called once if a write fails; recording stops (the flow run goes on). */
  onError: ((error: Error) => void) | undefined

  constructor(store: HistoryStore, options: RecorderOptions = {}) {
    this.#store = store
    this.#results = options.results ?? DEFAULT_RESULT_SETTINGS
    this.#file = options.file
    this.#writer = new WriterThread(store.file, RunHistory.MAX_LOGS)
    this.#writer.onError = (error) => this.#fail(error)
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
    const seq = this.#resumable?.get(identity)
    if (seq === undefined) return undefined
    const value = this.#decode(() => this.#store.resumedValue(this.#resumeFrom!, seq))
    return value && { value: value.value, from: `flow run ${this.#resumeFrom}` }
  }

  cached(key: string): StoredResult | undefined {
    const pending = this.#pendingCache.get(key)
    if (pending && pending.batch <= this.#writer.applied && this.#writer.failed === undefined) this.#pendingCache.delete(key)
    else if (pending) {
      if (pending.expires !== undefined && pending.expires <= Date.now()) return undefined
      // A copy, as a read from the store would be: the run that wrote it keeps its own object.
      const { bytes } = pending
      const value = bytes === undefined ? { value: pending.value } : this.#decode(() => bytes)
      if (value) this.#served.set(key, pending.created)
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
    if (value) this.#served.set(key, found.created)
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

  /** The root flow runs recorded so far (the run `ptr run` started, first). */
  get rootIds(): string[] {
    return [...this.#roots]
  }

  onEvent = (event: RunEvent): void => {
    if (this.#failed || this.#closed) return
    if (event.kind === 'task-run-state') this.#taskState(event.taskRun, event.state, event.previous)
    else if (event.kind === 'log') this.#log(event)
    else this.#flowState(event.flowRun, event.state)
    // Many runs settle before a timer can fire (a map of no-op runs): post them, not hold them.
    if (this.#ops.length >= POST_AT_OPS) this.#post('none')
    else if (this.#ops.length >= WARM_AT_OPS) this.#writer.warm()
    if (this.#timer === undefined || this.#heartbeatOnly) {
      // A change is written within FLUSH_MS, even when only the (slower) heartbeat timer was set.
      clearTimeout(this.#timer)
      this.#heartbeatOnly = false
      this.#timer = setTimeout(this.#flushSoon, FLUSH_MS).unref()
    }
  }

  #flushSoon = (): void => {
    this.#timer = undefined
    this.#post('started')
    // Keep the heartbeat fresh while any flow run is open, even when nothing changes.
    if (!this.#failed && this.#openFlows > 0) {
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
      entry = { open: false, rootId, created: state.timestamp, info, history: [], logs: { logs: [], logsOmitted: 0 } }
      this.#flows.set(info.id, entry)
    }
    entry.history.push(state)
    const open = !isSettled(state)
    if (open !== entry.open) {
      entry.open = open
      this.#openFlows += open ? 1 : -1
    }
    if (state.type === 'Completed' && info.persistResult) {
      // A flow run's value is kept in its row only, up to INLINE_VALUE_BYTES (a bigger one is not kept): nothing reuses it.
      const bytes = this.#encode(state.result)
      if (typeof bytes !== 'string' && bytes.byteLength <= INLINE_VALUE_BYTES) this.#flowValues.set(info.id, ownBuffer(bytes))
    }
    this.#dirtyFlows.add(entry)
  }

  /** The hot path: a few fields per state, no object (the writer builds the row). */
  #taskState(info: TaskRunInfo, state: State, previous: State | undefined): void {
    const flowRunId = info.flowRunId
    // A task run outside any flow run this process records (a direct call in a script) is not kept.
    if (flowRunId === undefined) return
    const ops = this.#ops
    let place: number | undefined
    if (previous === undefined) {
      const flow = this.#flows.get(flowRunId)
      if (!flow) return
      const { rootId } = flow
      const key = info.taskKey
      const taskName = info.taskName
      const mapId = info.mapId
      place = this.#nextPlace++
      this.#places.set(info.id, place)
      // Arrays are the engine's and never change: the batch's clone copies them.
      ops.push(
        OP_TASK,
        place,
        info.id,
        rootId === this.#lastRoot ? SAME : (this.#lastRoot = rootId),
        flowRunId === rootId ? null : flowRunId,
        info.name,
        key === this.#lastKey ? SAME : (this.#lastKey = key),
        taskName === this.#lastTaskName ? SAME : (this.#lastTaskName = taskName),
        info.tags.length === 0 ? null : info.tags,
        mapId === undefined ? null : mapId === this.#lastMap ? SAME : (this.#lastMap = mapId),
        info.mapIndex ?? null,
        info.upstreamTaskRunIds ?? null,
      )
    } else {
      place = this.#places.get(info.id)
      if (place === undefined) return
    }
    const { type, name, message } = state
    const code = stateCode(STATE_TYPE_CODE[type]!, info.attempt)
    const slot = type === 'Running' && info.slot !== undefined ? this.#slot(info.slot) : undefined
    const time = state.timestamp - this.#base
    if (name !== type || message !== undefined) ops.push(OP_STATE_FULL, place, code, name === type ? SAME : name, time, message ?? null, slot ?? null)
    else if (slot !== undefined) ops.push(OP_RUNNING, place, code, time, slot)
    else ops.push(OP_STATE, place, code, time)
    if (!isSettled(state)) return
    this.#settled.push(info.id)
    if (type !== 'Completed') {
      const record = state.error === undefined ? null : errorRecord(state.error)
      if (record) ops.push(OP_ERROR, place, record)
    } else if (info.memo?.persist) this.#keepTaskValue(info, state, place)
  }

  /**
   * The number the writer knows slot `name` by (a pool has a few, named again and again), or the
   * name itself once MAX_SLOTS are numbered (a concurrent runner names one per run at once).
   */
  #slot(name: string): number | string {
    let n = this.#slots.get(name)
    if (n === undefined) {
      if (this.#slots.size >= MAX_SLOTS) return name
      n = this.#slots.size
      this.#slots.set(name, n)
      this.#newSlots.push(name)
    }
    return n
  }

  /**
   * Has a completed run's value kept for resuming (under its identity) and for the cache (under
   * its key). Values with a short form travel as themselves (the writer encodes them), the rest
   * serialized; a value that cannot be kept has its row say why.
   */
  #keepTaskValue(info: TaskRunInfo, state: State, place: number): void {
    const memo = info.memo!
    const ops = this.#ops
    if (memo.identity === undefined && memo.cacheKey === undefined) {
      ops.push(OP_NOT_KEPT, place, `${NOT_MATCHED}${memo.unhashable ?? 'its arguments have no stable hash'}`)
      return
    }
    const value = state.result
    const note = memo.identity === undefined ? `${NOT_MATCHED}${memo.unhashable}` : null
    const cached = state.name === 'Cached'
    if (cached && memo.cacheKey !== undefined) {
      // Served by the cache (not by the resumed run, which resumed() tries first): the row takes the entry's value.
      const created = this.#served.get(memo.cacheKey)
      if (created !== undefined && !(memo.identity !== undefined && this.#resumable?.has(memo.identity))) {
        this.#served.delete(memo.cacheKey)
        if (note === null) ops.push(OP_CACHED, place, memo.cacheKey, created, memo.identity)
        else ops.push(OP_NOT_KEPT, place, note)
        return
      }
    }
    let kept: Uint8Array | undefined
    // A string travels as itself only when short: a long one goes as bytes, outside the writer's heap (see WRITER_HEAP_MB).
    if (isShortValue(value) && (typeof value !== 'string' || value.length * 3 < Math.min(this.#results.maxBytes, INLINE_VALUE_BYTES))) {
      if (note === null) ops.push(OP_VALUE_ID, place, value, memo.identity!)
      else ops.push(OP_VALUE, place, value, memo.identity ?? null, note)
    } else {
      const bytes = this.#encode(value)
      if (typeof bytes === 'string') {
        ops.push(OP_NOT_KEPT, place, bytes)
        return
      }
      kept = ownBuffer(bytes)
      ops.push(OP_BYTES, place, kept, memo.identity ?? null, note)
    }
    // A run that executed refreshes its cache entry; one that a stored value stood in for does not.
    if (memo.cacheKey !== undefined && !cached) {
      const created = state.timestamp
      const expires = memo.cacheTtlMs === undefined ? undefined : created + memo.cacheTtlMs
      const source = `'${info.name}' of flow run ${this.#flows.get(info.flowRunId!)?.rootId ?? info.flowRunId}`
      ops.push(OP_CACHE, memo.cacheKey, created, expires ?? null, source)
      this.#pendingCache.set(memo.cacheKey, { bytes: kept, value: kept === undefined ? value : undefined, created, expires, source, batch: this.#writer.next })
    }
  }

  /** The value's bytes as the store keeps them, or why it cannot be kept. */
  #encode(value: unknown): Uint8Array | string {
    const bytes = encodeResult(value)
    // "its value is an instance of Point, which would arrive as a plain object, ..."
    if (!(bytes instanceof Uint8Array)) return `its ${bytes.problem}`
    if (bytes.byteLength > this.#results.maxBytes) {
      return `its value is ${bytes.byteLength} bytes serialized, over the results.maxBytes setting (${this.#results.maxBytes})`
    }
    return bytes
  }

  #log(event: LogEvent): void {
    const flowRunId = event.flowRunId
    if (flowRunId === undefined) return
    const flow = this.#flows.get(flowRunId)
    if (!flow) return
    if (event.taskRunId !== undefined) {
      const place = this.#places.get(event.taskRunId)
      if (place !== undefined) this.#ops.push(OP_LOG, place, event.timestamp, event.level, event.message)
      return
    }
    const { logs } = flow
    if (logs.logs.length < RunHistory.MAX_LOGS) logs.logs.push({ timestamp: iso(event.timestamp), level: event.level, message: event.message })
    else logs.logsOmitted++
    this.#dirtyFlows.add(flow)
  }

  /**
   * Posts what changed since the last post to the writer. `unsettled` says which task runs that
   * have not settled it writes (see WriteBatch): at the 250 ms timer those that started, not those
   * only Pending: the runs of a big map are then written once each, not once Pending and again
   * when done. (A killed `ptr run` leaves no trace of runs that never started.)
   */
  #post(unsettled: WriteBatch['unsettled'], last = false): number {
    // Flow runs are few: their records are built here, the way the JSON report builds them.
    const flows: FlowRunWrite[] = [...this.#dirtyFlows].map((f) => ({
      id: f.info.id,
      rootId: f.rootId,
      record: flowRunRecord(f.info, f.history, f.logs),
      created: f.created,
      file: f.rootId === f.info.id ? this.#file : undefined,
      result: this.#flowValues.get(f.info.id),
    }))
    this.#dirtyFlows.clear()
    this.#flowValues.clear()
    const batch = { ops: this.#ops, base: this.#base, slots: this.#newSlots }
    for (const id of this.#settled) this.#places.delete(id)
    this.#settled = []
    this.#ops = []
    this.#newSlots = []
    this.#base = Date.now()
    if (this.#pendingCache.size > 0) {
      const applied = this.#writer.applied
      for (const [key, entry] of this.#pendingCache) if (entry.batch <= applied) this.#pendingCache.delete(key)
    }
    return this.#writer.post({ ...batch, flows, unsettled, last })
  }

  #fail(error: Error): void {
    if (this.#failed) return
    this.#failed = error
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#ops = []
    this.#writer.stop()
    this.onError?.(error)
  }

  /**
   * Writes everything not written yet, and returns once it is (the writer thread then ends; the
   * store stays open). Never throws: a failed write stops recording and is reported once.
   */
  close(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#closed) return
    this.#closed = true
    if (this.#failed || this.#writer.failed) return
    const seq = this.#post('all', true)
    if (this.#writer.wait(seq)) this.#pendingCache.clear()
    this.#writer.stop()
  }
}
