import { mkdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import path from 'node:path'
import type Database from 'better-sqlite3'
import { openDatabase } from '../queue/sqlite-driver.ts'
import { isFinal } from '../engine/states.ts'
import type { ErrorRecord, LogRecord } from '../render/run-history.ts'
import type { StoredTaskRun } from './store.ts'
import { encodePrimitive } from './value-text.ts'
import type { FlowRunWrite, WriteBatch } from './writer-protocol.ts'
import {
  INLINE_VALUE_BYTES,
  OP_BYTES,
  OP_CACHE,
  OP_CACHED,
  OP_ERROR,
  OP_FIELDS,
  OP_LOG,
  OP_NOT_KEPT,
  OP_RUNNING,
  OP_STATE,
  OP_STATE_FULL,
  OP_TASK,
  OP_VALUE,
  OP_VALUE_ID,
  SAME,
  STATE_TYPES,
  resultsDirOf,
} from './writer-protocol.ts'

/** Rows written per transaction: a big batch (close() after a 100,000-run map) keeps the log file small. */
const ROWS_PER_TRANSACTION = 5000
/**
 * Unsettled task runs held in memory (under 1 kB each, with their strings); past this, new ones
 * are written and read back when they change (~15 µs a run on the writer's thread).
 */
const HOLD_LIMIT = 25_000

const q = JSON.stringify
const TYPE_JSON = STATE_TYPES.map((type) => q(type))
/** `["Running","Running",`: the start of a state's JSON whose name is its type. */
const PLAIN_HEAD = TYPE_JSON.map((type) => `[${type},${type},`)
/** The codes of the final types (see isFinal), for the per-state check. */
const FINAL_CODES = new Set(STATE_TYPES.flatMap((type, code) => (isFinal({ type }) ? [code] : [])))

/** A kept value as the writer holds it: its bytes (kept in the row), or the name of the file under `results/` they went to. */
type Kept = Uint8Array | string

/** What few task runs have: an error, logs, or why their value was not kept. */
interface RowExtra {
  e?: ErrorRecord | null
  l?: [number, LogRecord['level'], string][]
  o?: number
  r?: string
}

/**
 * A task run as the writer holds it until it settles: the parts of its stored row (see
 * StoredTaskRun), kept as JSON text where that is smaller than objects: its states are one string.
 */
class TaskRow {
  dirty = true
  settled = false
  /** Its states, as the JSON of the row's `s` array without the brackets. */
  states = ''
  /** How many states it had, and the last one's name (the `state_name` column). */
  count = 0
  last = ''
  attempt = 0
  extra: RowExtra | undefined = undefined
  /** Its identity and kept value (the columns), once it completed and the value was kept: see Kept. */
  identity: string | null = null
  value: Kept | null = null
  /** Whether it leaves memory once written, settled or not (the writer holds too many: see HOLD_LIMIT). */
  spill = false
  constructor(
    readonly id: string,
    readonly rootId: string,
    readonly seq: number,
    readonly name: string,
    /** JSON text of the task key, and of the map id ('' when none): shared by the runs of a map. */
    readonly keyJson: string,
    readonly mapJson: string,
    readonly mapIndex: number | null,
    /** The JSON of the fields few runs have (task name, flow run, tags, upstream), each with its leading comma. */
    readonly rare: string,
  ) {}

  /** A row written before (and let go of: see spill) as it was stored. */
  static stored(text: string, rootId: string, seq: number): TaskRow {
    const s = JSON.parse(text) as StoredTaskRun
    let rare = ''
    if (s.t !== undefined) rare += `,"t":${q(s.t)}`
    if (s.f !== undefined) rare += `,"f":${q(s.f)}`
    if (s.g !== undefined) rare += `,"g":${q(s.g)}`
    if (s.u !== undefined) rare += `,"u":${q(s.u)}`
    const row = new TaskRow(s.id, rootId, seq, s.n, q(s.k), s.m === undefined ? '' : q(s.m), s.i ?? null, rare)
    row.states = q(s.s).slice(1, -1)
    row.count = s.s.length
    row.last = s.s[s.s.length - 1]![1]
    row.attempt = s.a
    if (s.l !== undefined || s.o !== undefined || s.e !== undefined || s.r !== undefined) {
      row.extra = {}
      if (s.l !== undefined) row.extra.l = s.l
      if (s.o !== undefined) row.extra.o = s.o
      if (s.e !== undefined) row.extra.e = s.e
      if (s.r !== undefined) row.extra.r = s.r
    }
    return row
  }

  /** The stored row's JSON text (a StoredTaskRun). */
  json(): string {
    let text = `{"id":${q(this.id)},"n":${q(this.name)},"k":${this.keyJson}${this.rare},"s":[${this.states}],"a":${this.attempt}`
    if (this.mapJson !== '') text += this.mapIndex === null ? `,"m":${this.mapJson}` : `,"m":${this.mapJson},"i":${this.mapIndex}`
    const x = this.extra
    if (x) {
      if (x.e) text += `,"e":${q(x.e)}`
      if (x.l) text += `,"l":${q(x.l)}`
      if (x.o) text += `,"o":${x.o}`
      if (x.r !== undefined) text += `,"r":${q(x.r)}`
    }
    return `${text}}`
  }
}

export interface HistoryWriterOptions {
  /** How many log lines a task run keeps (RunHistory.MAX_LOGS); later ones are counted. */
  maxLogs: number
  /** How many unsettled task runs to hold in memory (see HOLD_LIMIT). @default 25000 */
  holdLimit?: number | undefined
}

/**
 * Applies the recorder's batches to the history file: rebuilds each task run's row from its
 * events, and writes flow runs, changed task runs, cache entries and the heartbeat. It runs in
 * the writer thread (writer-worker.ts), on its own connection, so the flow run's thread only
 * notes events; in-process in tests. The file's tables exist already: HistoryStore.open made them.
 */
export class HistoryWriter {
  readonly #db: Database.Database
  readonly #host = hostname()
  readonly #resultsDir: string
  readonly #maxLogs: number
  readonly #writeFlow: Database.Statement
  readonly #writeTask: Database.Statement
  readonly #writeCache: Database.Statement
  readonly #beat: Database.Statement
  readonly #holdLimit: number
  readonly #readTask: Database.Statement
  readonly #readCache: Database.Statement
  /** The task runs held, by place (writer-protocol.ts), which is their row's seq. */
  readonly #rows = new Map<number, TaskRow>()
  /** Unsettled task runs written and let go of: their places. */
  readonly #spilled = new Set<number>()
  /** The root flow run of the task runs from each seq on (few entries: it changes only with the root). */
  readonly #rootFrom: { seq: number; rootId: string }[] = []
  readonly #dirty = new Set<TaskRow>()
  readonly #roots = new Set<string>()
  // The strings ops send only when they change (see SAME).
  #root = ''
  #keyJson = ''
  #taskName = ''
  #mapJson = ''
  /** The JSON of every slot named so far (see WriteBatch.slots). */
  readonly #slotJson: string[] = []
  /** Called after each transaction: the recorder's close() watches progress through it. */
  onTransaction: (() => void) | undefined

  constructor(file: string, options: HistoryWriterOptions) {
    this.#db = openDatabase(file, { timeout: 10_000 })
    this.#db.pragma('synchronous = NORMAL')
    // A checkpoint syncs the file: every 16 MB of log rather than every 4 MB (the log goes when the last connection closes).
    this.#db.pragma('wal_autocheckpoint = 4000')
    this.#resultsDir = resultsDirOf(file)
    this.#maxLogs = options.maxLogs
    this.#holdLimit = options.holdLimit ?? HOLD_LIMIT
    this.#writeFlow = this.#db.prepare(
      `INSERT INTO flow_runs (id, root_id, parent_id, flow_name, state_type, state_name, record, pid, host, heartbeat, created, ended, file, result)
       VALUES (@id, @rootId, @parentId, @flowName, @stateType, @stateName, @record, @pid, @host, @now, @created, @ended, @file, @result)
       ON CONFLICT (id) DO UPDATE SET state_type = excluded.state_type, state_name = excluded.state_name, record = excluded.record,
         heartbeat = excluded.heartbeat, ended = excluded.ended, result = COALESCE(excluded.result, flow_runs.result)`,
    )
    // Keyed by (root flow run, place): rows of one run append at the end of the table's tree.
    this.#writeTask = this.#db.prepare(
      `INSERT OR REPLACE INTO task_runs (root_id, seq, settled, state_name, row, identity, result, result_file) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    this.#writeCache = this.#db.prepare(`INSERT OR REPLACE INTO cache (key, result, result_file, created, expires, source) VALUES (?, ?, ?, ?, ?, ?)`)
    this.#beat = this.#db.prepare(`UPDATE flow_runs SET heartbeat = ? WHERE root_id = ? AND ended IS NULL`)
    this.#readTask = this.#db.prepare(`SELECT row FROM task_runs WHERE root_id = ? AND seq = ?`).pluck()
    this.#readCache = this.#db.prepare(`SELECT result, result_file AS file, created FROM cache WHERE key = ?`)
  }

  /** Task runs held because they have not settled (or not been written since they changed). */
  get held(): number {
    return this.#rows.size
  }
  /** Unsettled task runs written and let go of (see HOLD_LIMIT). */
  get spilled(): number {
    return this.#spilled.size
  }

  /** Applies one batch and writes what it says to write. Throws when a write fails. */
  apply(batch: WriteBatch): void {
    const cache: unknown[] = []
    for (const slot of batch.slots) this.#slotJson.push(q(slot))
    this.#applyOps(batch.ops, batch.base, cache)
    for (const flow of batch.flows) if (flow.id === flow.rootId) this.#roots.add(flow.id)
    const tasks: TaskRow[] = []
    for (const row of this.#dirty) {
      if (row.settled || row.spill || batch.unsettled === 'all' || (batch.unsettled === 'started' && row.count > 1)) tasks.push(row)
    }
    this.#write(batch.flows, tasks, cache)
    for (const row of tasks) {
      row.dirty = false
      this.#dirty.delete(row)
      if (row.settled) this.#rows.delete(row.seq)
      else if (row.spill) {
        this.#rows.delete(row.seq)
        this.#spilled.add(row.seq)
      }
    }
  }

  close(): void {
    if (this.#db.open) this.#db.close()
  }

  #applyOps(ops: unknown[], base: number, cache: unknown[]): void {
    let value: Kept | undefined
    /** This batch's cache entries (written with its rows), by key: what an OP_CACHED of the batch copies. */
    let entries: Map<unknown, { value: Kept; created: unknown }> | undefined
    for (let at = 0; at < ops.length; at += 1 + OP_FIELDS[ops[at] as number]!) {
      const op = ops[at] as number
      if (op === OP_TASK) {
        this.#newRow(ops, at)
        continue
      }
      if (op === OP_CACHE) {
        // The value of the op before (a run that executed refreshes its entry).
        if (value !== undefined) {
          cache.push(ops[at + 1], value, ops[at + 2], ops[at + 3], ops[at + 4])
          ;(entries ??= new Map()).set(ops[at + 1], { value, created: ops[at + 2] })
        }
        continue
      }
      const row = this.#rows.get(ops[at + 1] as number) ?? this.#revive(ops[at + 1] as number)
      if ((op >= OP_VALUE && op <= OP_NOT_KEPT) || op === OP_CACHED) value = undefined
      // A run outside the flow runs recorded here, or one already settled and written.
      if (!row) continue
      if (!row.dirty) {
        row.dirty = true
        this.#dirty.add(row)
      }
      switch (op) {
        case OP_STATE:
          this.#state(row, ops[at + 2] as number, SAME, base + (ops[at + 3] as number), null, null)
          break
        case OP_RUNNING:
          this.#state(row, ops[at + 2] as number, SAME, base + (ops[at + 3] as number), null, this.#slot(ops[at + 4] as number | string))
          break
        case OP_STATE_FULL: {
          const slot = ops[at + 6] as number | string | null
          this.#state(row, ops[at + 2] as number, ops[at + 3], base + (ops[at + 4] as number), ops[at + 5] as string | null, slot === null ? null : this.#slot(slot))
          break
        }
        case OP_ERROR:
          ;(row.extra ??= {}).e = ops[at + 2] as ErrorRecord
          break
        case OP_VALUE:
        case OP_BYTES:
        case OP_VALUE_ID: {
          // OP_VALUE(_ID) carries only values that have a short form (see isShortValue).
          const bytes = op === OP_BYTES ? (ops[at + 2] as Uint8Array) : encodePrimitive(ops[at + 2])!
          value = this.#value(row, bytes)
          if (value === undefined) break
          if (ops[at + 3] !== null) {
            row.identity = ops[at + 3] as string
            row.value = value
          } else (row.extra ??= {}).r = ops[at + 4] as string
          break
        }
        case OP_NOT_KEPT:
          ;(row.extra ??= {}).r = ops[at + 2] as string
          break
        case OP_CACHED: {
          const kept = this.#cachedValue(ops[at + 2] as string, ops[at + 3] as number, entries)
          if (kept === undefined) (row.extra ??= {}).r = 'the cache entry it was served from was replaced or removed before it was written'
          else {
            row.identity = ops[at + 4] as string
            row.value = kept
          }
          break
        }
        case OP_LOG: {
          const extra = (row.extra ??= {})
          const logs = (extra.l ??= [])
          if (logs.length < this.#maxLogs) logs.push([ops[at + 2] as number, ops[at + 3] as LogRecord['level'], ops[at + 4] as string])
          else extra.o = (extra.o ?? 0) + 1
          break
        }
      }
    }
  }

  /** A spilled row, read back (undefined: not a run of the flow runs recorded here, or one settled and written). */
  #revive(seq: number): TaskRow | undefined {
    if (!this.#spilled.has(seq)) return undefined
    let i = this.#rootFrom.length - 1
    while (this.#rootFrom[i]!.seq > seq) i--
    const { rootId } = this.#rootFrom[i]!
    const row = TaskRow.stored(this.#readTask.get(rootId, seq) as string, rootId, seq)
    this.#spilled.delete(seq)
    this.#rows.set(seq, row)
    row.dirty = false
    row.spill = this.#rows.size > this.#holdLimit
    return row
  }

  #newRow(ops: unknown[], at: number): void {
    const seq = ops[at + 1] as number
    const id = ops[at + 2] as string
    const root = ops[at + 3]
    if (root !== SAME) this.#root = root as string
    const key = ops[at + 6]
    if (key !== SAME) this.#keyJson = q(key)
    const taskName = ops[at + 7]
    if (taskName !== SAME) this.#taskName = taskName as string
    const map = ops[at + 9]
    if (map !== SAME && map !== null) this.#mapJson = q(map)
    // Left out when they can be told from the key and the root (see StoredTaskRun).
    let rare = ''
    if (!this.#keyJson.endsWith(`#${this.#taskName}"`)) rare += `,"t":${q(this.#taskName)}`
    if (ops[at + 4] !== null) rare += `,"f":${q(ops[at + 4])}`
    if (ops[at + 8] !== null) rare += `,"g":${q(ops[at + 8])}`
    if (ops[at + 11] !== null) rare += `,"u":${q(ops[at + 11])}`
    const mapJson = map === null ? '' : this.#mapJson
    if (this.#rootFrom[this.#rootFrom.length - 1]?.rootId !== this.#root) this.#rootFrom.push({ seq, rootId: this.#root })
    const row = new TaskRow(id, this.#root, seq, ops[at + 5] as string, this.#keyJson, mapJson, (ops[at + 10] as number | null) ?? null, rare)
    row.spill = this.#rows.size >= this.#holdLimit
    this.#rows.set(seq, row)
    this.#dirty.add(row)
  }

  /** A slot's JSON: by its number (see WriteBatch.slots), or its name. */
  #slot(slot: number | string): string {
    return typeof slot === 'number' ? this.#slotJson[slot]! : q(slot)
  }

  /** Adds a state to the row; `slotJson` is the JSON of its slot, if it names one. */
  #state(row: TaskRow, code: number, name: unknown, timestamp: number, message: string | null, slotJson: string | null): void {
    const type = code & 7
    let text = name === SAME ? `${PLAIN_HEAD[type]}${timestamp}` : `[${TYPE_JSON[type]},${q(name)},${timestamp}`
    if (slotJson !== null) text += `,${message === null ? 'null' : q(message)},${slotJson}]`
    else text += message === null ? ']' : `,${q(message)}]`
    // Joined, not concatenated: a concatenation is a tree of strings (V8's cons strings), which a
    // held row would keep for its life; a join is one flat string, about a third of the memory.
    row.states = row.states === '' ? [text].join('') : [row.states, text].join(',')
    row.last = name === SAME ? STATE_TYPES[type]! : (name as string)
    row.count++
    row.attempt = code >> 3
    row.settled = FINAL_CODES.has(type) || name === 'NotReady'
  }

  /** The value of cache entry `key` if it is still the one written at `created` (this batch's entries first). */
  #cachedValue(key: string, created: number, entries: Map<unknown, { value: Kept; created: unknown }> | undefined): Kept | undefined {
    const mine = entries?.get(key)
    if (mine) return mine.created === created ? mine.value : undefined
    const row = this.#readCache.get(key) as { result: Uint8Array | null; file: string | null; created: number } | undefined
    if (!row || row.created !== created) return undefined
    return row.result ?? row.file ?? undefined
  }

  /**
   * Keeps a run's value: in its row up to INLINE_VALUE_BYTES, else in a file of its own (never
   * rewritten: a cache entry may name it too). Undefined (and the row says why) if that fails.
   */
  #value(row: TaskRow, bytes: Uint8Array): Kept | undefined {
    if (bytes.byteLength <= INLINE_VALUE_BYTES) return bytes
    try {
      mkdirSync(this.#resultsDir, { recursive: true })
      const name = `${row.rootId}-${row.seq}.bin`
      writeFileSync(path.join(this.#resultsDir, name), bytes)
      return name
    } catch (error) {
      ;(row.extra ??= {}).r = `its value could not be written: ${(error as Error).message}`
      return undefined
    }
  }

  #write(flows: readonly FlowRunWrite[], tasks: readonly TaskRow[], cache: readonly unknown[]): void {
    const now = Date.now()
    const writeFlows = () => {
      for (const { id, rootId, record, created, file, result } of flows) {
        const ended = isFinal(record.state) ? (record.endTime ? Date.parse(record.endTime) : now) : null
        this.#writeFlow.run({
          id,
          rootId,
          parentId: record.parentFlowRunId,
          flowName: record.flowName,
          stateType: record.state.type,
          stateName: record.state.name,
          record: JSON.stringify(record),
          pid: process.pid,
          host: this.#host,
          now,
          created,
          ended,
          file: file ?? null,
          result: result ?? null,
        })
      }
      for (let i = 0; i < cache.length; i += 5) {
        const value = cache[i + 1] as Kept
        this.#writeCache.run(cache[i], typeof value === 'string' ? null : value, typeof value === 'string' ? value : null, cache[i + 2], cache[i + 3], cache[i + 4])
      }
      for (const rootId of this.#roots) this.#beat.run(now, rootId)
    }
    const writeTasks = (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const row = tasks[i]!
        const value = row.value
        this.#writeTask.run(row.rootId, row.seq, row.settled ? 1 : 0, row.last, row.json(), row.identity, typeof value === 'string' ? null : value, typeof value === 'string' ? value : null)
      }
    }
    // Flow runs, cache entries and the heartbeat go with the first task rows; a long list of rows is split.
    this.#db.transaction(() => {
      writeFlows()
      writeTasks(0, Math.min(tasks.length, ROWS_PER_TRANSACTION))
    })()
    this.onTransaction?.()
    for (let from = ROWS_PER_TRANSACTION; from < tasks.length; from += ROWS_PER_TRANSACTION) {
      this.#db.transaction(() => writeTasks(from, Math.min(tasks.length, from + ROWS_PER_TRANSACTION)))()
      this.onTransaction?.()
    }
  }
}
