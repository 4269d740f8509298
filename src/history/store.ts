import { mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import path from 'node:path'
import type Database from 'better-sqlite3'
import { openDatabase } from '../queue/sqlite-driver.ts'
import { UsageError } from '../errors.ts'
import type { State } from '../engine/states.ts'
import { isFinal } from '../engine/states.ts'
import type { ErrorRecord, FlowRunRecord, LogRecord, StateRecord, TaskRunRecord } from '../render/run-history.ts'
import { resultsDirOf } from './writer-protocol.ts'

/**
 * The local run history: every flow run and task run `ptr run` started on this machine, in one
 * SQLite file under `localDir` (`.ptr/history.db`), shared by concurrent processes (WAL).
 * Each run is stored as the record the JSON report has for it (docs/report.schema.json), next to
 * the columns that lists and filters need. A run's value is v8-serialized bytes (values.ts),
 * inline in its row when small, else in a file under `<localDir>/results/`. This module reads
 * (and creates the tables); the runs are written by the writer thread (writer.ts).
 */

const SCHEMA_VERSION = 2
/** A flow run whose process has not written for this long is stale even if its pid is alive (pid reuse). */
const STALE_AFTER_MS = 60 * 60 * 1000
/**
 * A results file that no row names and is older than this is left over (its run was pruned while
 * a cache entry named it, and the entry was replaced since; a write whose row never landed), and
 * prune removes it. A younger one may be a write whose row is not committed yet.
 */
const LEFT_OVER_AFTER_MS = 60 * 60 * 1000

/** A flow run as the history keeps it, with what the report records do not say. */
export interface StoredFlowRun {
  id: string
  rootId: string
  record: FlowRunRecord
  pid: number
  host: string
  /** Epoch ms of the process's last write: how stale runs are found. */
  heartbeat: number
  created: number
  ended: number | null
}

/**
 * A task run as stored: compact, because one is written per run on the engine's hot path; {@link
 * taskRunRecord} turns it into the report's record.
 */
export interface StoredTaskRun {
  id: string
  /**
   * Name, task name, task key, flow run id. The task name is left out when the key ends in
   * `#<task name>` (it always does for tasks defined with `task()`), and the flow run id when it is
   * the root flow run's: a row is written per run, so every byte counts.
   */
  n: string
  t?: string
  k: string
  f?: string
  /** states: [type, name, epoch ms, message?, slot?] (slot on Running states; a missing message is null then) */
  s: [State['type'], string, number, (string | null)?, string?][]
  /** attempts */
  a: number
  /** tags, map id and index, error, logs ([epoch ms, level, message]) and logs omitted, when there are any */
  g?: string[]
  m?: string
  i?: number | undefined
  e?: ErrorRecord | undefined
  l?: [number, LogRecord['level'], string][]
  o?: number
  /** Why the run's value was not stored (it cannot be serialized, or it is too big), when it was not. */
  r?: string
  /** upstream task run ids, when there are any */
  u?: string[]
}

const iso = (ms: number) => new Date(ms).toISOString()

/** The report's record (docs/report.schema.json) of a stored task run. */
export function taskRunRecord(row: StoredTaskRun, rootId: string): TaskRunRecord {
  const stateHistory: StateRecord[] = row.s.map(([type, name, at, message, slot]) => {
    const state: StateRecord = { type, name, timestamp: iso(at) }
    if (message !== undefined && message !== null) state.message = message
    if (slot !== undefined) state.slot = slot
    return state
  })
  const last = row.s[row.s.length - 1]!
  const started = row.s.find((s) => s[0] === 'Running')?.[2]
  const ended = isFinal({ type: last[0] }) ? last[2] : undefined
  return {
    id: row.id,
    name: row.n,
    taskName: row.t ?? row.k.slice(row.k.lastIndexOf('#') + 1),
    taskKey: row.k,
    flowRunId: row.f ?? rootId,
    tags: row.g ?? [],
    mapIndex: row.i ?? null,
    mapId: row.m ?? null,
    upstreamTaskRunIds: row.u ?? [],
    state: stateHistory[stateHistory.length - 1]!,
    stateHistory,
    attempts: row.a,
    startTime: started === undefined ? null : iso(started),
    endTime: ended === undefined ? (last[1] === 'NotReady' ? iso(last[2]) : null) : iso(ended),
    durationSeconds: started === undefined || ended === undefined ? null : (ended - started) / 1000,
    error: row.e ?? null,
    logs: (row.l ?? []).map(([at, level, message]) => ({ timestamp: iso(at), level, message })),
    logsOmitted: row.o ?? 0,
    ...(row.r === undefined ? {} : { resultNotStored: row.r }),
  }
}

export interface FlowRunFilter {
  flowName?: string | undefined
  stateName?: string | undefined
  limit?: number | undefined
}

/** A root flow run as `ptr flow-runs list` shows it. */
export interface FlowRunSummary {
  id: string
  record: FlowRunRecord
  /** Task runs of the flow run and its subflows, by state name. */
  counts: Record<string, number>
  taskRuns: number
}


function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class HistoryStore {
  readonly file: string
  readonly #db: Database.Database
  readonly #host = hostname()
  readonly #readCache: Database.Statement
  readonly #readKept: Database.Statement
  /** Where values too big for a row go: `<localDir>/results/`. */
  readonly resultsDir: string

  private constructor(file: string, db: Database.Database) {
    this.file = file
    this.#db = db
    this.resultsDir = resultsDirOf(file)
    this.#readCache = db.prepare(`SELECT result, result_file AS file, created, source FROM cache WHERE key = ? AND (expires IS NULL OR expires > ?)`)
    this.#readKept = db.prepare(`SELECT result, result_file AS file FROM task_runs WHERE root_id = ? AND seq = ?`)
  }

  /** Opens (creating if needed) the history file, and marks the runs of dead `ptr run`s Crashed. */
  static open(file: string): HistoryStore {
    let db: Database.Database
    let opened: Database.Database | undefined
    try {
      mkdirSync(path.dirname(file), { recursive: true })
      db = opened = openDatabase(file, { timeout: 10_000 })
      db.pragma('journal_mode = WAL')
      db.pragma('synchronous = NORMAL')
    } catch (error) {
      opened?.close()
      if (error instanceof UsageError) throw error
      throw new UsageError(
        `cannot open the run history ${file}: ${(error as Error).message}; fix the folder's permissions, set localDir elsewhere, or turn the history off with PREFECT_HISTORY=false`,
        'PTR_HISTORY_OPEN',
      )
    }
    // Whatever fails from here (a damaged file, one locked past the timeout, a read-only one) closes the connection.
    try {
      const tables = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((t) => t.name)
      if (tables.length > 0 && !tables.includes('flow_runs')) {
        throw new UsageError(`${file} is not a ptr run history (it holds other tables: ${tables.join(', ')}); move it away or set localDir elsewhere`, 'PTR_HISTORY_FOREIGN')
      }
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS flow_runs (
          id TEXT PRIMARY KEY, root_id TEXT NOT NULL, parent_id TEXT, flow_name TEXT NOT NULL,
          state_type TEXT NOT NULL, state_name TEXT NOT NULL, record TEXT NOT NULL,
          pid INTEGER NOT NULL, host TEXT NOT NULL, heartbeat INTEGER NOT NULL, created INTEGER NOT NULL, ended INTEGER,
          file TEXT, result BLOB);
        CREATE INDEX IF NOT EXISTS flow_runs_root ON flow_runs (root_id);
        CREATE INDEX IF NOT EXISTS flow_runs_created ON flow_runs (created);
        CREATE TABLE IF NOT EXISTS task_runs (
          root_id TEXT NOT NULL, seq INTEGER NOT NULL, settled INTEGER NOT NULL, state_name TEXT NOT NULL, row TEXT NOT NULL,
          identity TEXT, result BLOB, result_file TEXT,
          PRIMARY KEY (root_id, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS cache (
          key TEXT PRIMARY KEY, result BLOB, result_file TEXT, created INTEGER NOT NULL, expires INTEGER, source TEXT NOT NULL);
        INSERT OR IGNORE INTO meta (k, v) VALUES ('schema', '${SCHEMA_VERSION}');
      `)
      const version = Number((db.prepare(`SELECT v FROM meta WHERE k = 'schema'`).get() as { v: string }).v)
      if (version > SCHEMA_VERSION) {
        throw new UsageError(`${file} was written by a newer ptr (history schema ${version}, this one reads ${SCHEMA_VERSION}); upgrade ptr or set localDir elsewhere`, 'PTR_HISTORY_SCHEMA')
      }
      if (version < 2) {
        // Schema 1 had no results: add their columns (old runs have none, and cannot be resumed).
        db.transaction(() => {
          const columns = (table: string) => (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name)
          const tasks = columns('task_runs')
          for (const [name, type] of [['identity', 'TEXT'], ['result', 'BLOB'], ['result_file', 'TEXT']]) if (!tasks.includes(name!)) db.exec(`ALTER TABLE task_runs ADD COLUMN ${name} ${type}`)
          const flows = columns('flow_runs')
          for (const [name, type] of [['file', 'TEXT'], ['result', 'BLOB']]) if (!flows.includes(name!)) db.exec(`ALTER TABLE flow_runs ADD COLUMN ${name} ${type}`)
          db.prepare(`UPDATE meta SET v = ? WHERE k = 'schema'`).run(String(SCHEMA_VERSION))
        }).immediate()
      }
      // What prune asks of results files (after the migration above: schema 1 had no result_file).
      db.exec(`CREATE INDEX IF NOT EXISTS task_runs_file ON task_runs (result_file) WHERE result_file IS NOT NULL`)
      const store = new HistoryStore(file, db)
      store.markStale()
      return store
    } catch (error) {
      db.close()
      if (error instanceof UsageError) throw error
      throw new UsageError(
        `cannot use the run history ${file}: ${(error as Error).message}; if another program holds it, try again; else move it away (ptr starts a new one), set localDir elsewhere, or turn the history off with PREFECT_HISTORY=false`,
        'PTR_HISTORY_OPEN',
      )
    }
  }

  /** The bytes of a stored value (a file that has gone is an error the caller reports). */
  readValue(value: { result: Uint8Array | null; file: string | null }): Uint8Array {
    if (value.result !== null) return value.result
    return readFileSync(path.join(this.resultsDir, value.file!))
  }

  /** The cache entry under `key` unless it expired at `now`. */
  cached(key: string, now = Date.now()): { bytes: Uint8Array; created: number; source: string } | undefined {
    const row = this.#readCache.get(key, now) as { result: Uint8Array | null; file: string | null; created: number; source: string } | undefined
    if (!row) return undefined
    return { bytes: this.readValue(row), created: row.created, source: row.source }
  }

  /**
   * The completed task runs under root flow run `rootId` (its subflows' too) that kept a value,
   * by identity: their place (seq), which {@link resumedValue} reads the value by when a flow run
   * that resumes it reuses one (the values stay on disk until then).
   */
  resumable(rootId: string): Map<string, number> {
    const rows = this.#db
      .prepare(`SELECT identity, seq FROM task_runs WHERE root_id = ? AND identity IS NOT NULL AND (result IS NOT NULL OR result_file IS NOT NULL)`)
      .all(rootId) as { identity: string; seq: number }[]
    return new Map(rows.map((r) => [r.identity, r.seq]))
  }

  /** The bytes task run `seq` of root flow run `rootId` kept (an error if it kept none, or its file has gone). */
  resumedValue(rootId: string, seq: number): Uint8Array {
    const row = this.#readKept.get(rootId, seq) as { result: Uint8Array | null; file: string | null } | undefined
    if (!row || (row.result === null && row.file === null)) throw new Error(`task run ${seq} of flow run ${rootId} kept no value`)
    return this.readValue(row)
  }

  /**
   * The newest root flow run of `flowName` that ended without completing (what `ptr run --resume`
   * resumes). One still running in another `ptr run` is not a candidate; one whose process died
   * was marked Crashed (ended) when the store was opened.
   */
  latestUnfinished(flowName: string): { id: string; record: FlowRunRecord } | undefined {
    const row = this.#db
      .prepare(
        `SELECT id, record FROM flow_runs WHERE parent_id IS NULL AND flow_name = ? AND ended IS NOT NULL AND state_type != 'Completed' ORDER BY created DESC, rowid DESC LIMIT 1`,
      )
      .get(flowName) as { id: string; record: string } | undefined
    return row && { id: row.id, record: JSON.parse(row.record) as FlowRunRecord }
  }

  /** A flow run's file and record (what `ptr flow-runs retry` reruns), its root flow run, and when it ended (null: it has not). */
  flowRun(id: string): { id: string; rootId: string; file: string | null; record: FlowRunRecord; parentId: string | null; ended: number | null } | undefined {
    const row = this.#db.prepare(`SELECT id, root_id AS rootId, file, record, parent_id AS parentId, ended FROM flow_runs WHERE id = ?`).get(id) as
      | { id: string; rootId: string; file: string | null; record: string; parentId: string | null; ended: number | null }
      | undefined
    return row && { ...row, record: JSON.parse(row.record) as FlowRunRecord }
  }

  /**
   * Flow runs left unfinished by a `ptr run` on this machine that is gone (its pid no longer runs,
   * or it has not written for an hour) end Crashed, with their unfinished task runs.
   * @returns the ids of the root flow runs marked.
   */
  markStale(now = Date.now()): string[] {
    const open = this.#db.prepare(`SELECT id, root_id AS rootId, pid, host, heartbeat FROM flow_runs WHERE ended IS NULL`).all() as {
      id: string
      rootId: string
      pid: number
      host: string
      heartbeat: number
    }[]
    const stale = open.filter((r) => r.host === this.#host && (!pidAlive(r.pid) || now - r.heartbeat > STALE_AFTER_MS))
    if (stale.length === 0) return []
    const why = (pid: number) => `the ptr process (pid ${pid}) ended before this run did`
    const error = (pid: number): ErrorRecord => ({ name: 'CrashedError', message: `${why(pid)}; it was found stale and marked Crashed` })
    const readFlow = this.#db.prepare(`SELECT record FROM flow_runs WHERE id = ?`)
    const openTasks = this.#db.prepare(`SELECT seq, row FROM task_runs WHERE root_id = ? AND settled = 0`)
    const setFlow = this.#db.prepare(`UPDATE flow_runs SET state_type = 'Crashed', state_name = 'Crashed', record = ?, ended = ? WHERE id = ?`)
    const setTask = this.#db.prepare(`UPDATE task_runs SET settled = 1, state_name = 'Crashed', row = ? WHERE root_id = ? AND seq = ?`)
    this.#db.transaction(() => {
      for (const run of stale) {
        const record = JSON.parse((readFlow.get(run.id) as { record: string }).record) as FlowRunRecord
        const state: StateRecord = { type: 'Crashed', name: 'Crashed', timestamp: iso(run.heartbeat), message: why(run.pid) }
        record.state = state
        record.stateHistory.push(state)
        record.endTime = state.timestamp
        // It ran until its last heartbeat, as far as anyone can tell.
        if (record.startTime !== null) record.durationSeconds = (run.heartbeat - Date.parse(record.startTime)) / 1000
        record.error = error(run.pid)
        setFlow.run(JSON.stringify(record), run.heartbeat, run.id)
        if (run.id !== run.rootId) continue
        for (const task of openTasks.all(run.id) as { seq: number; row: string }[]) {
          const row = JSON.parse(task.row) as StoredTaskRun
          row.s.push(['Crashed', 'Crashed', run.heartbeat, why(run.pid)])
          row.e = error(run.pid)
          setTask.run(JSON.stringify(row), run.id, task.seq)
        }
      }
    })()
    return [...new Set(stale.map((r) => r.rootId))]
  }

  /** The values kept of root flow run `rootId` and its subflow runs (bytes: see values.ts), by flow run id. */
  flowResults(rootId: string): Map<string, Uint8Array> {
    const rows = this.#db.prepare(`SELECT id, result FROM flow_runs WHERE root_id = ? AND result IS NOT NULL`).all(rootId) as { id: string; result: Uint8Array }[]
    return new Map(rows.map((r) => [r.id, r.result]))
  }

  /** Every state name a recorded root flow run is in. */
  stateNames(): string[] {
    return this.#db.prepare(`SELECT DISTINCT state_name FROM flow_runs WHERE parent_id IS NULL`).pluck().all() as string[]
  }

  /** Root flow runs (not subflows), newest first. */
  list(filter: FlowRunFilter = {}): FlowRunSummary[] {
    const where = ['parent_id IS NULL']
    const params: unknown[] = []
    if (filter.flowName !== undefined) {
      where.push('flow_name = ?')
      params.push(filter.flowName)
    }
    if (filter.stateName !== undefined) {
      where.push('(state_name = ? COLLATE NOCASE OR state_type = ? COLLATE NOCASE)')
      params.push(filter.stateName, filter.stateName)
    }
    const rows = this.#db
      .prepare(`SELECT id, record FROM flow_runs WHERE ${where.join(' AND ')} ORDER BY created DESC, rowid DESC LIMIT ?`)
      .all(...params, filter.limit ?? 50) as { id: string; record: string }[]
    const countRuns = this.#db.prepare(`SELECT state_name AS name, count(*) AS n FROM task_runs WHERE root_id = ? GROUP BY state_name`)
    return rows.map(({ id, record }) => {
      const counts: Record<string, number> = {}
      let taskRuns = 0
      for (const { name, n } of countRuns.all(id) as { name: string; n: number }[]) {
        counts[name] = n
        taskRuns += n
      }
      return { id, record: JSON.parse(record) as FlowRunRecord, counts, taskRuns }
    })
  }

  /** The root flow run whose id is `idOrPrefix` or starts with it (at least 4 characters). */
  resolveId(idOrPrefix: string): string {
    const text = idOrPrefix.trim().toLowerCase()
    if (text.length < 4) throw new UsageError(`flow run id '${idOrPrefix}' is too short; give at least 4 characters of it (ptr flow-runs list shows them)`, 'PTR_BAD_ID')
    const rows = this.#db.prepare(`SELECT id FROM flow_runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 3`).all(text, `${text}\uffff`) as { id: string }[]
    if (rows.length === 0) throw new UsageError(`no flow run '${idOrPrefix}' in the history ${this.file}; ptr flow-runs list shows the recorded ones`, 'PTR_NO_SUCH_RUN')
    if (rows.length > 1) throw new UsageError(`flow run id '${idOrPrefix}' is ambiguous (${rows.map((r) => r.id.slice(0, 13)).join(', ')}, ...); give more of it`, 'PTR_BAD_ID')
    return rows[0]!.id
  }

  /** A flow run with its subflow runs (the run itself first) and every task run under it, in creation order. */
  get(id: string): { flowRuns: FlowRunRecord[]; taskRuns: TaskRunRecord[] } | undefined {
    const root = (this.#db.prepare(`SELECT root_id AS rootId FROM flow_runs WHERE id = ?`).get(id) as { rootId: string } | undefined)?.rootId
    if (root === undefined) return undefined
    const flows = (this.#db.prepare(`SELECT id, record FROM flow_runs WHERE root_id = ? ORDER BY created, rowid`).all(root) as { id: string; record: string }[]).sort(
      (a, b) => (a.id === id ? -1 : b.id === id ? 1 : 0),
    )
    const tasks = this.#db.prepare(`SELECT row FROM task_runs WHERE root_id = ? ORDER BY seq`).all(root) as { row: string }[]
    return { flowRuns: flows.map((f) => JSON.parse(f.record) as FlowRunRecord), taskRuns: tasks.map((t) => taskRunRecord(JSON.parse(t.row) as StoredTaskRun, root)) }
  }

  /**
   * Deletes root flow runs that ended before `before` (epoch ms), with their subflows and task
   * runs, and the cache entries expired at `now`. Their result files go once that is committed
   * (a prune that fails leaves every row's file in place); a file that cannot be deleted stays
   * behind, named by no row. Files that no row names and are over an hour old go too (see
   * LEFT_OVER_AFTER_MS).
   */
  prune(before: number, now = Date.now()): number {
    const unused = new Set<string>()
    const pruned = this.#db.transaction(() => {
      const roots = (this.#db.prepare(`SELECT id FROM flow_runs WHERE parent_id IS NULL AND ended IS NOT NULL AND ended < ?`).all(before) as { id: string }[]).map((r) => r.id)
      const files = this.#db.prepare(`SELECT result_file FROM task_runs WHERE root_id = ? AND result_file IS NOT NULL`).pluck()
      const dropTasks = this.#db.prepare(`DELETE FROM task_runs WHERE root_id = ?`)
      const dropFlows = this.#db.prepare(`DELETE FROM flow_runs WHERE root_id = ?`)
      for (const id of roots) {
        for (const file of files.all(id) as string[]) unused.add(file)
        dropTasks.run(id)
        dropFlows.run(id)
      }
      // Expired cache entries go too.
      for (const file of this.#db.prepare(`SELECT result_file FROM cache WHERE expires <= ? AND result_file IS NOT NULL`).pluck().all(now) as string[]) unused.add(file)
      this.#db.prepare(`DELETE FROM cache WHERE expires <= ?`).run(now)
      // A file another row (a cache entry, a later run) still names stays.
      if (unused.size > 0) {
        const names = JSON.stringify([...unused])
        const named = this.#db
          .prepare(
            `SELECT result_file FROM task_runs WHERE result_file IN (SELECT value FROM json_each(?)) UNION SELECT result_file FROM cache WHERE result_file IN (SELECT value FROM json_each(?))`,
          )
          .pluck()
          .all(names, names) as string[]
        for (const file of named) unused.delete(file)
      }
      return roots.length
    })()
    for (const file of unused) this.#remove(file)
    this.#removeLeftOvers(now)
    return pruned
  }

  /** Removes the results files older than LEFT_OVER_AFTER_MS that no row names. */
  #removeLeftOvers(now: number): void {
    let files: string[]
    try {
      files = readdirSync(this.resultsDir)
    } catch {
      return
    }
    const named = new Set(
      this.#db.prepare(`SELECT result_file FROM task_runs WHERE result_file IS NOT NULL UNION SELECT result_file FROM cache WHERE result_file IS NOT NULL`).pluck().all() as string[],
    )
    for (const file of files) {
      if (!file.endsWith('.bin') || named.has(file)) continue
      try {
        if (statSync(path.join(this.resultsDir, file)).mtimeMs < now - LEFT_OVER_AFTER_MS) this.#remove(file)
      } catch {
        // Gone meanwhile (another prune).
      }
    }
  }

  #remove(file: string): void {
    try {
      rmSync(path.join(this.resultsDir, file), { force: true })
    } catch {
      // Left over (a folder in its place, no permission): no row names it any more.
    }
  }

  close(): void {
    if (this.#db.open) this.#db.close()
  }
}
