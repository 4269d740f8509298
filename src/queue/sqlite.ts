import { existsSync, mkdirSync, statSync, watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import path from 'node:path'
import type Database from 'better-sqlite3'
import { UsageError } from '../errors.ts'
import type {
  ClaimedRun,
  HistoryEntry,
  Lease,
  ListFilter,
  LogLine,
  NewRun,
  QueueBackend,
  QueueBackendOptions,
  QueueHealth,
  QueueRunState,
  RenewOutcome,
  RunRecord,
  StoredError,
} from './backend.ts'
import type { RunOutcome, WaitOptions } from './backend.ts'
import { isFinalQueueState } from './backend.ts'
import { openDatabase } from './sqlite-driver.ts'
import { RunWaiters } from './waiters.ts'

/** 1: the first; 2: runs.cancel_reason. */
const SCHEMA_VERSION = 2

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY,
  task TEXT NOT NULL,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  state_name TEXT NOT NULL,
  args BLOB NOT NULL,
  result BLOB,
  error TEXT,
  retries INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  lost INTEGER NOT NULL DEFAULT 0,
  worker TEXT,
  token TEXT,
  lease_until INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  cancel_reason TEXT,
  created_at INTEGER NOT NULL,
  available_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  seq INTEGER,
  history TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_due ON runs(available_at) WHERE state = 'Scheduled';
CREATE INDEX IF NOT EXISTS runs_lease ON runs(lease_until) WHERE state = 'Running';
CREATE INDEX IF NOT EXISTS runs_seq ON runs(seq) WHERE seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS logs (
  run_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL,
  attempt INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('seq', 0);
`

type Row = {
  id: string
  task: string
  name: string
  state: QueueRunState
  state_name: string
  args: Buffer
  result: Buffer | null
  error: string | null
  retries: number
  attempts: number
  failures: number
  lost: number
  worker: string | null
  lease_until: number | null
  created_at: number
  available_at: number
  started_at: number | null
  ended_at: number | null
  history: string
}

const FINAL_SQL = `('Completed','Failed','Crashed','Cancelled')`
/** Appends one entry to the run's JSON history; `@now`, `@entry_state`, `@entry_name`, `@message` bound. */
const HISTORY = (worker: string) =>
  `history = json_insert(history, '$[#]', json_object('at', @now, 'state', @entry_state, 'name', @entry_name, 'worker', ${worker}, 'message', @message))`

function toRecord(row: Row): RunRecord {
  return {
    id: row.id,
    task: row.task,
    name: row.name,
    state: row.state,
    stateName: row.state_name,
    attempts: row.attempts,
    failures: row.failures,
    lostLeases: row.lost,
    retries: row.retries,
    worker: row.worker ?? undefined,
    createdAt: row.created_at,
    availableAt: row.available_at,
    startedAt: row.started_at ?? undefined,
    endedAt: row.ended_at ?? undefined,
    leaseUntil: row.lease_until ?? undefined,
    args: row.args,
    result: row.result ?? undefined,
    error: row.error ? (JSON.parse(row.error) as StoredError) : undefined,
    history: (JSON.parse(row.history) as HistoryEntry[]).map((h) => {
      // json_object keeps nulls; drop them so records read the same from every backend.
      const entry: HistoryEntry = { at: h.at, state: h.state, name: h.name }
      if (h.worker != null) entry.worker = h.worker
      if (h.message != null) entry.message = h.message
      return entry
    }),
  }
}

function describeOpenError(file: string, error: unknown): UsageError {
  const code = (error as { code?: string }).code ?? ''
  const message = error instanceof Error ? error.message : String(error)
  if (code.startsWith('SQLITE_READONLY')) return readOnlyError(file, error)
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new UsageError(`queue file ${file} is not a ptr queue (${message}); point --queue at another file, or move this one away`, 'PTR_BAD_QUEUE_FILE', error)
  }
  return new UsageError(`cannot open queue file ${file}: ${message}; check that the path is a file you can read and write`, 'PTR_BAD_QUEUE_FILE', error)
}

const readOnlyError = (file: string, cause?: unknown) =>
  new UsageError(`queue file ${file} is read-only; make it (and its folder) writable for this user, or point --queue at another file`, 'PTR_QUEUE_FILE_READONLY', cause)

const deletedError = (file: string) =>
  new UsageError(
    `queue file ${file} was deleted or replaced while ptr had it open; stop every worker and submitter of this queue (runs written to the deleted file are gone), then start them again on a fresh file`,
    'PTR_QUEUE_FILE_GONE',
  )

/** SQLite errors after which the file cannot be used any more (as opposed to a busy lock or a bad statement). */
const FILE_FAULT = /^SQLITE_(READONLY|IOERR|CANTOPEN|CORRUPT|NOTADB|FULL)/

/**
 * The embedded queue: one SQLite file in WAL mode, shared by every worker and submitter process on
 * the machine. Claims are a single `UPDATE … RETURNING` (atomic across processes); writes of one
 * event-loop turn are batched into one `BEGIN IMMEDIATE` transaction. Other processes' commits are
 * noticed through a file watch on the WAL (≈1 ms), with `PRAGMA data_version` as the check and a
 * 100 ms fallback poll in case the watch misses events.
 */
export class SqliteQueueBackend implements QueueBackend {
  readonly url: string
  readonly file: string
  readonly leaseMs: number
  readonly maxLostLeases: number
  readonly #db: Database.Database
  readonly #stmts: ReturnType<SqliteQueueBackend['prepare']>
  #pending: { op: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = []
  #flushScheduled = false
  #txSeq: number | undefined
  #lastSeq: number
  #dataVersion: number
  readonly #waiters = new RunWaiters()
  #workListeners = new Set<() => void>()
  #watcher: FSWatcher | undefined
  #fallback: NodeJS.Timeout | undefined
  #sweeper: NodeJS.Timeout | undefined
  #changeScheduled = false
  #recheck = 0
  #closed = false
  /** The file's identity when opened: a different one (or none) at the path means it was deleted or replaced. */
  #identity: { dev: number; ino: number } | undefined
  #fileCheck: NodeJS.Timeout | undefined
  /** Set once the file cannot be used any more; every call then fails with it. */
  #fault: UsageError | undefined
  #faultListeners = new Set<(error: Error) => void>()

  constructor(file: string, options: QueueBackendOptions & { url?: string } = {}) {
    this.file = file
    this.url = options.url ?? `sqlite:${file}`
    this.leaseMs = options.leaseMs ?? 10_000
    this.maxLostLeases = options.maxLostLeases ?? 3
    try {
      if (file !== ':memory:') {
        mkdirSync(path.dirname(file), { recursive: true })
        // The log of a deleted queue, still used by a process that has the deleted file open: a
        // new file beside it would mix with that log (disk I/O errors, lost runs).
        if (!existsSync(file) && existsSync(`${file}-wal`)) throw deletedError(file)
      }
      this.#db = openDatabase(file, { timeout: 10_000 })
    } catch (error) {
      if (error instanceof UsageError) throw error
      throw describeOpenError(file, error)
    }
    try {
      this.#db.pragma('journal_mode = WAL')
      this.#db.pragma('synchronous = NORMAL')
      const version = this.#db.pragma('user_version', { simple: true }) as number
      if (version > SCHEMA_VERSION) {
        throw new UsageError(`queue file ${file} was written by a newer ptr (schema ${version}); upgrade ptr or use another file`, 'PTR_BAD_QUEUE_FILE')
      }
      if (version < SCHEMA_VERSION) {
        this.#db.transaction(() => {
          // Read again under the write lock: another process may have migrated it meanwhile.
          const now = this.#db.pragma('user_version', { simple: true }) as number
          if (now === SCHEMA_VERSION) return
          if (now === 0) {
            // A new queue starts from an empty file: tables of something else mean the wrong file.
            const tables = (this.#db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).pluck().all() as string[])
            if (tables.length > 0) {
              throw new UsageError(
                `queue file ${file} is not a ptr queue: it holds other tables (${tables.slice(0, 3).join(', ')}${tables.length > 3 ? ', ...' : ''}); point --queue at another file, or move this one away`,
                'PTR_BAD_QUEUE_FILE',
              )
            }
          }
          if (now === 1) this.#db.exec(`ALTER TABLE runs ADD COLUMN cancel_reason TEXT`)
          this.#db.exec(SCHEMA)
          this.#db.pragma(`user_version = ${SCHEMA_VERSION}`)
        }).immediate()
      }
      this.#stmts = this.prepare()
      // SQLite opens a file it may not write read-only without a word: find out now, not at the first claim.
      this.#db.transaction(() => this.#db.prepare(`UPDATE meta SET v = v WHERE k = 'seq'`).run()).immediate()
      if (file !== ':memory:') {
        const { dev, ino } = statSync(file)
        this.#identity = { dev, ino }
      }
    } catch (error) {
      this.#db.close()
      if (error instanceof UsageError) throw error
      throw describeOpenError(file, error)
    }
    this.#lastSeq = (this.#stmts.seq.get() as { v: number }).v
    this.#dataVersion = this.#readDataVersion()
  }

  /** @internal */
  prepare() {
    const db = this.#db
    return {
      seq: db.prepare(`SELECT v FROM meta WHERE k = 'seq'`),
      bumpSeq: db.prepare(`UPDATE meta SET v = v + 1 WHERE k = 'seq' RETURNING v`),
      insert: db.prepare(
        `INSERT OR IGNORE INTO runs (id, task, name, state, state_name, args, retries, created_at, available_at, history)
         VALUES (@id, @task, @name, 'Scheduled', 'Scheduled', @args, @retries, @now, @available_at,
                 json_array(json_object('at', @now, 'state', 'Scheduled', 'name', 'Scheduled')))`,
      ),
      anyDue: db.prepare(`SELECT 1 FROM runs WHERE state = 'Scheduled' AND available_at <= @now AND task IN (SELECT value FROM json_each(@tasks)) LIMIT 1`),
      nextDue: db.prepare(`SELECT min(available_at) AS at FROM runs WHERE state = 'Scheduled' AND task IN (SELECT value FROM json_each(@tasks))`),
      claim: db.prepare(
        `UPDATE runs SET state = 'Running',
           state_name = CASE WHEN attempts > 0 THEN 'Retrying' ELSE 'Running' END,
           worker = @worker, token = @worker || '#' || (attempts + 1), attempts = attempts + 1,
           lease_until = @lease_until, started_at = coalesce(started_at, @now), seq = @seq,
           history = json_insert(history, '$[#]', json_object('at', @now, 'state', 'Running',
             'name', CASE WHEN attempts > 0 THEN 'Retrying' ELSE 'Running' END, 'worker', @worker))
         WHERE rowid IN (SELECT rowid FROM runs WHERE state = 'Scheduled' AND available_at <= @now
                         AND task IN (SELECT value FROM json_each(@tasks)) ORDER BY available_at LIMIT @max)
         RETURNING id, task, name, args, attempts, failures, retries, token`,
      ),
      renew: db.prepare(`UPDATE runs SET lease_until = @lease_until WHERE id = @id AND token = @token AND state = 'Running' RETURNING cancel_requested`),
      complete: db.prepare(
        `UPDATE runs SET state = 'Completed', state_name = 'Completed', result = @result, ended_at = @now, lease_until = NULL, seq = @seq,
           ${HISTORY('worker')}
         WHERE id = @id AND token = @token AND state = 'Running'`,
      ),
      end: db.prepare(
        `UPDATE runs SET state = @entry_state, state_name = @entry_name, error = @error, ended_at = @now, lease_until = NULL, seq = @seq,
           failures = failures + @failed, ${HISTORY('worker')}
         WHERE id = @id AND token = @token AND state = 'Running'`,
      ),
      requeue: db.prepare(
        `UPDATE runs SET state = 'Scheduled', state_name = @entry_name, error = coalesce(@error, error), lease_until = NULL, token = NULL,
           available_at = @available_at, failures = failures + @failed, ${HISTORY('worker')}
         WHERE id = @id AND token = @token AND state = 'Running'`,
      ),
      cancelScheduled: db.prepare(
        `UPDATE runs SET state = 'Cancelled', state_name = 'Cancelled', error = @error, ended_at = @now, seq = @seq, ${HISTORY('NULL')}
         WHERE id = @id AND state = 'Scheduled'`,
      ),
      requestCancel: db.prepare(`UPDATE runs SET cancel_requested = 1, cancel_reason = @error WHERE id = @id AND state = 'Running'`),
      // A run asked to cancel ends Cancelled instead of going back to the queue (handed back, retried, or its lease expired).
      endCancelRequested: db.prepare(
        `UPDATE runs SET state = 'Cancelled', state_name = 'Cancelled', error = cancel_reason, ended_at = @now, lease_until = NULL, token = NULL, seq = @seq,
           history = json_insert(history, '$[#]', json_object('at', @now, 'state', 'Cancelled', 'name', 'Cancelled', 'worker', worker,
             'message', json_extract(cancel_reason, '$.message')))
         WHERE id = @id AND token = @token AND state = 'Running' AND cancel_requested = 1`,
      ),
      cancelExpired: db.prepare(
        `UPDATE runs SET state = 'Cancelled', state_name = 'Cancelled', error = cancel_reason, ended_at = @now, lease_until = NULL, token = NULL, seq = @seq,
           history = json_insert(history, '$[#]', json_object('at', @now, 'state', 'Cancelled', 'name', 'Cancelled', 'worker', worker,
             'message', json_extract(cancel_reason, '$.message')))
         WHERE state = 'Running' AND lease_until < @now AND cancel_requested = 1 RETURNING id`,
      ),
      anyExpired: db.prepare(`SELECT 1 FROM runs WHERE state = 'Running' AND lease_until < @now LIMIT 1`),
      crashExpired: db.prepare(
        `UPDATE runs SET state = 'Crashed', state_name = 'Crashed', ended_at = @now, lease_until = NULL, token = NULL, seq = @seq, lost = lost + 1,
           error = json_object('name', 'CrashedError', 'code', 'PTR_CRASHED', 'message',
             'run lost its worker ' || (lost + 1) || ' times (last: ' || coalesce(worker, '?') || ', lease expired); the task may be killing its workers'),
           history = json_insert(history, '$[#]', json_object('at', @now, 'state', 'Crashed', 'name', 'Crashed', 'worker', worker,
             'message', 'lease expired ' || (lost + 1) || ' times; giving up'))
         WHERE state = 'Running' AND lease_until < @now AND lost + 1 >= @max_lost RETURNING id`,
      ),
      requeueExpired: db.prepare(
        `UPDATE runs SET state = 'Scheduled', state_name = 'Scheduled', lease_until = NULL, token = NULL, lost = lost + 1, available_at = @now,
           history = json_insert(history, '$[#]', json_object('at', @now, 'state', 'Scheduled', 'name', 'Scheduled', 'worker', worker,
             'message', 'lease expired: worker ' || coalesce(worker, '?') || ' stopped renewing it'))
         WHERE state = 'Running' AND lease_until < @now RETURNING id`,
      ),
      get: db.prepare(`SELECT * FROM runs WHERE id = ?`),
      changed: db.prepare(`SELECT id, seq FROM runs WHERE seq > ? ORDER BY seq`),
      list: db.prepare(
        `SELECT * FROM runs WHERE (@state IS NULL OR state = @state) AND (@task IS NULL OR task = @task) ORDER BY created_at DESC, rowid DESC LIMIT @limit`,
      ),
      insertLog: db.prepare(`INSERT INTO logs (run_id, at, level, message, attempt) VALUES (?, ?, ?, ?, ?)`),
      logs: db.prepare(`SELECT at, level, message, attempt FROM logs WHERE run_id = ? ORDER BY rowid`),
      pruneLogs: db.prepare(`DELETE FROM logs WHERE run_id IN (SELECT id FROM runs WHERE state IN ${FINAL_SQL} AND ended_at < ?)`),
      prune: db.prepare(`DELETE FROM runs WHERE state IN ${FINAL_SQL} AND ended_at < ?`),
    }
  }

  // ---- writes, batched per event-loop turn into one IMMEDIATE transaction ----

  #write<T>(op: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new Error(`queue ${this.url} is closed`))
    if (this.#fault) return Promise.reject(this.#fault)
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ op, resolve: resolve as (v: unknown) => void, reject })
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        setImmediate(() => this.#flush())
      }
    })
  }

  #flush(): void {
    this.#flushScheduled = false
    const batch = this.#pending
    this.#pending = []
    if (batch.length === 0) return
    const outcomes: { ok: boolean; value: unknown }[] = []
    try {
      this.#db
        .transaction(() => {
          this.#txSeq = undefined
          for (const { op } of batch) {
            try {
              outcomes.push({ ok: true, value: op() })
            } catch (error) {
              outcomes.push({ ok: false, value: error })
            }
          }
        })
        .immediate()
    } catch (error) {
      const fault = this.#faultFrom(error)
      for (const { reject } of batch) reject(fault ?? error)
      return
    } finally {
      this.#txSeq = undefined
    }
    // Committed, but to the file at the path? If it was deleted, these writes went to a copy
    // nobody else will read: they are not acknowledged.
    if (this.#verifyFile()) {
      for (const { reject } of batch) reject(this.#fault)
      return
    }
    batch.forEach(({ resolve, reject }, i) => {
      const outcome = outcomes[i]!
      if (outcome.ok) resolve(outcome.value)
      else reject(this.#faultFrom(outcome.value) ?? outcome.value)
    })
    this.#changed(true)
  }

  /** The change number of the current transaction (one per transaction, taken on first use): runs that end or start get it. */
  #seq(): number {
    return (this.#txSeq ??= (this.#stmts.bumpSeq.get() as { v: number }).v)
  }

  enqueue(runs: readonly NewRun[]): Promise<void> {
    return this.#write(() => {
      const now = Date.now()
      for (const run of runs) {
        this.#stmts.insert.run({
          id: run.id,
          task: run.task,
          name: run.name,
          args: run.args,
          retries: run.retries ?? 0,
          now,
          available_at: run.availableAt ?? now,
        })
      }
    })
  }

  async claim(workerId: string, tasks: readonly string[], max: number): Promise<ClaimedRun[]> {
    if (max <= 0 || tasks.length === 0 || this.#closed) return []
    const now = Date.now()
    const taskList = JSON.stringify(tasks)
    // A read first: most wake-ups find nothing, and a read takes no write lock.
    if (!this.#read(() => this.#stmts.anyDue.get({ now, tasks: taskList }))) return []
    // In the write batch: after writes asked for before it (a worker's last report, so a run's end
    // is recorded no later than the next start), and with a change number, so whoever waits for
    // the claimed runs hears they started.
    const rows = (await this.#write(() => this.#stmts.claim.all({ worker: workerId, lease_until: now + this.leaseMs, now, tasks: taskList, max, seq: this.#seq() }))) as {
      id: string
      task: string
      name: string
      args: Buffer
      attempts: number
      failures: number
      retries: number
      token: string
    }[]
    return rows.map((r) => ({ runId: r.id, token: r.token, task: r.task, name: r.name, args: r.args, attempt: r.attempts, failures: r.failures, retries: r.retries }))
  }

  /** When the next run of `tasks` becomes due (epoch ms), if any is scheduled. */
  nextDue(tasks: readonly string[]): number | undefined {
    const row = this.#stmts.nextDue.get({ tasks: JSON.stringify(tasks) }) as { at: number | null }
    return row.at ?? undefined
  }

  watchWork(tasks: readonly string[], onWork: () => void): () => void {
    let timer: NodeJS.Timeout | undefined
    // Runs scheduled for later (retry delays) need a timer: no write happens when they fall due.
    const listener = () => {
      clearTimeout(timer)
      if (this.#fault) return
      let due: number | undefined
      if (!this.#closed) this.#quietly(() => (due = this.nextDue(tasks)))
      if (due !== undefined && due > Date.now()) timer = setTimeout(listener, Math.min(due - Date.now(), 1000) + 1)
      onWork()
    }
    this.#workListeners.add(listener)
    this.#ensureWatching()
    this.#sweeper ??= setInterval(() => void this.recoverExpired().catch(() => undefined), Math.max(20, Math.floor(this.leaseMs / 4)))
    setImmediate(listener)
    return () => {
      clearTimeout(timer)
      this.#workListeners.delete(listener)
      if (this.#workListeners.size === 0) {
        clearInterval(this.#sweeper)
        this.#sweeper = undefined
      }
      this.#maybeStopWatching()
    }
  }

  renew(leases: readonly Lease[]): Promise<RenewOutcome[]> {
    if (leases.length === 0) return Promise.resolve([])
    return this.#write(() => {
      const until = Date.now() + this.leaseMs
      return leases.map((lease) => {
        const row = this.#stmts.renew.get({ id: lease.runId, token: lease.token, lease_until: until }) as { cancel_requested: number } | undefined
        return row === undefined ? 'lost' : row.cancel_requested ? 'cancelled' : 'ok'
      })
    })
  }

  complete(lease: Lease, result: Uint8Array): Promise<boolean> {
    return this.#write(() => {
      const info = this.#stmts.complete.run({
        id: lease.runId,
        token: lease.token,
        result,
        now: Date.now(),
        seq: this.#seq(),
        entry_state: 'Completed',
        entry_name: 'Completed',
        message: null,
      })
      return info.changes > 0
    })
  }

  #end(lease: Lease, state: QueueRunState, name: string, error: StoredError, failed: number): Promise<boolean> {
    return this.#write(() => {
      const info = this.#stmts.end.run({
        id: lease.runId,
        token: lease.token,
        error: JSON.stringify(error),
        now: Date.now(),
        seq: this.#seq(),
        entry_state: state,
        entry_name: name,
        message: error.message,
        failed,
      })
      return info.changes > 0
    })
  }

  fail(lease: Lease, error: StoredError, name = 'Failed'): Promise<boolean> {
    return this.#end(lease, 'Failed', name, error, 1)
  }

  crash(lease: Lease, error: StoredError): Promise<boolean> {
    return this.#end(lease, 'Crashed', 'Crashed', error, 0)
  }

  cancelled(lease: Lease, error: StoredError): Promise<boolean> {
    return this.#end(lease, 'Cancelled', 'Cancelled', error, 0)
  }

  #requeue(lease: Lease, name: string, error: StoredError | undefined, message: string, delayMs: number, failed: number): Promise<boolean> {
    return this.#write(() => {
      const now = Date.now()
      if (this.#stmts.endCancelRequested.run({ id: lease.runId, token: lease.token, now, seq: this.#seq() }).changes > 0) return true
      const info = this.#stmts.requeue.run({
        id: lease.runId,
        token: lease.token,
        error: error ? JSON.stringify(error) : null,
        now,
        available_at: now + Math.max(0, delayMs),
        entry_state: 'Scheduled',
        entry_name: name,
        message,
        failed,
      })
      return info.changes > 0
    })
  }

  retry(lease: Lease, error: StoredError, delayMs: number): Promise<boolean> {
    return this.#requeue(lease, 'AwaitingRetry', error, `${error.message}; retrying in ${(delayMs / 1000).toFixed(1)} s`, delayMs, 1)
  }

  release(lease: Lease, reason: string): Promise<boolean> {
    return this.#requeue(lease, 'Scheduled', undefined, reason, 0, 0)
  }

  async cancel(runId: string, reason: string): Promise<RunRecord | undefined> {
    await this.#write(() => {
      const error = JSON.stringify({ name: 'CancelledError', message: reason, code: 'PTR_CANCELLED' })
      const info = this.#stmts.cancelScheduled.run({ id: runId, error, now: Date.now(), seq: this.#seq(), entry_state: 'Cancelled', entry_name: 'Cancelled', message: reason })
      if (info.changes === 0) this.#stmts.requestCancel.run({ id: runId, error })
    })
    return this.get(runId)
  }

  recoverExpired(): Promise<number> {
    if (this.#closed) return Promise.resolve(0)
    try {
      if (!this.#read(() => this.#stmts.anyExpired.get({ now: Date.now() }))) return Promise.resolve(0)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.#write(() => {
      const now = Date.now()
      const cancelled = this.#stmts.cancelExpired.all({ now, seq: this.#seq() }).length
      const crashed = cancelled + this.#stmts.crashExpired.all({ now, seq: this.#seq(), max_lost: this.maxLostLeases }).length
      return crashed + this.#stmts.requeueExpired.all({ now }).length
    })
  }

  // ---- reads ----

  async get(runId: string): Promise<RunRecord | undefined> {
    return this.getSync(runId)
  }

  getSync(runId: string): RunRecord | undefined {
    const row = this.#read(() => this.#stmts.get.get(runId)) as Row | undefined
    return row && toRecord(row)
  }

  waitForEnd(runId: string, options: WaitOptions = {}): Promise<RunOutcome> {
    if (options.signal?.aborted) return Promise.reject(options.signal.reason)
    // Read and register in one synchronous step, so no end can slip between them.
    const now = this.getSync(runId)
    if (now && isFinalQueueState(now.state)) return Promise.resolve(now)
    const ended = this.#waiters.add(runId, options, () => this.#maybeStopWatching())
    if (now?.state === 'Running') this.#waiters.running(runId, now.attempts)
    this.#ensureWatching()
    return ended
  }

  async list(filter: ListFilter = {}): Promise<RunRecord[]> {
    const rows = this.#read(() => this.#stmts.list.all({ state: filter.state ?? null, task: filter.task ?? null, limit: filter.limit ?? 100 })) as Row[]
    return rows.map(toRecord)
  }

  appendLogs(runId: string, lines: readonly LogLine[]): Promise<void> {
    if (lines.length === 0) return Promise.resolve()
    return this.#write(() => {
      for (const line of lines) this.#stmts.insertLog.run(runId, line.at, line.level, line.message, line.attempt)
    })
  }

  async logs(runId: string): Promise<LogLine[]> {
    return this.#read(() => this.#stmts.logs.all(runId)) as LogLine[]
  }

  prune(endedBefore: number): Promise<number> {
    return this.#write(() => {
      this.#stmts.pruneLogs.run(endedBefore)
      return this.#stmts.prune.run(endedBefore).changes
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    if (this.#pending.length > 0) this.#flush()
    this.#closed = true
    this.#workListeners.clear()
    clearInterval(this.#sweeper)
    this.#stopWatching()
    this.#waiters.rejectAll(new Error(`queue ${this.url} was closed while waiting for a run`))
    this.#db.close()
  }

  // ---- the file itself: deleted, replaced, read-only ----

  /** Whether the queue can be used (a worker's /health). */
  health(): QueueHealth {
    if (!this.#fault && !this.#closed) this.#verifyFile()
    return this.#fault ? { ok: false, reason: this.#fault.message } : { ok: true }
  }

  onFault(listener: (error: Error) => void): () => void {
    if (this.#fault) {
      const fault = this.#fault
      queueMicrotask(() => listener(fault))
      return () => undefined
    }
    this.#faultListeners.add(listener)
    return () => this.#faultListeners.delete(listener)
  }

  /** Checks that the path still names the file opened; sets the fault if not. Returns whether the queue is faulted. */
  #verifyFile(): boolean {
    if (this.#fault) return true
    if (!this.#identity) return false
    let now: { dev: number; ino: number } | undefined
    try {
      now = statSync(this.file)
    } catch {
      now = undefined
    }
    if (!now || now.dev !== this.#identity.dev || now.ino !== this.#identity.ino) this.#setFault(deletedError(this.file))
    return this.#fault !== undefined
  }

  /** The fault an SQLite error means, if it means the file is unusable (set as the queue's fault). */
  #faultFrom(error: unknown): UsageError | undefined {
    if (this.#fault) return this.#fault
    const code = String((error as { code?: unknown })?.code ?? '')
    if (this.#verifyFile() || !FILE_FAULT.test(code)) return this.#fault
    this.#setFault(
      code.startsWith('SQLITE_READONLY')
        ? readOnlyError(this.file, error)
        : new UsageError(`queue file ${this.file} cannot be used: ${(error as Error).message}; check the disk and the file, then restart the workers`, 'PTR_QUEUE_FILE_FAILED', error),
    )
    return this.#fault
  }

  #setFault(fault: UsageError): void {
    if (this.#fault) return
    this.#fault = fault
    this.#stopWatching()
    clearInterval(this.#sweeper)
    this.#sweeper = undefined
    this.#waiters.rejectAll(fault)
    for (const listener of this.#faultListeners) listener(fault)
    this.#faultListeners.clear()
  }

  /** Runs a read; an error that means the file is unusable becomes the queue's fault. */
  #read<T>(read: () => T): T {
    if (this.#fault) throw this.#fault
    try {
      return read()
    } catch (error) {
      throw this.#faultFrom(error) ?? error
    }
  }

  /** For reads on timers: nobody to reject, so a fault is set (and heard by onFault) and other errors are dropped. */
  #quietly(run: () => void): void {
    try {
      this.#read(run)
    } catch {
      // Set as the fault (if it is one) by #read.
    }
  }

  // ---- noticing changes ----

  #readDataVersion(): number {
    return this.#db.pragma('data_version', { simple: true }) as number
  }

  #ensureWatching(): void {
    if (this.#closed) return
    if (!this.#watcher && this.file !== ':memory:') {
      const base = path.basename(this.file)
      try {
        this.#watcher = watch(path.dirname(this.file), (_event, name) => {
          if (name === null || String(name).startsWith(base)) this.#scheduleChange(true)
        })
        this.#watcher.on('error', () => undefined)
      } catch {
        // No file watching here (some network filesystems): the fallback poll still notices.
      }
    }
    this.#fallback ??= setInterval(() => this.#scheduleChange(), 100)
    // A deleted or replaced file makes no error by itself: look at the path now and then.
    if (this.#identity && !this.#fileCheck) {
      this.#fileCheck = setInterval(() => this.#verifyFile(), 1000)
      this.#fileCheck.unref()
    }
    // Stay alive while someone waits; an idle client must not hold the process open.
    this.#watcher?.ref()
    this.#fallback.ref()
  }

  #maybeStopWatching(): void {
    if (this.#waiters.size === 0 && this.#workListeners.size === 0) this.#stopWatching()
  }

  #stopWatching(): void {
    this.#watcher?.close()
    this.#watcher = undefined
    clearInterval(this.#fallback)
    this.#fallback = undefined
    clearInterval(this.#fileCheck)
    this.#fileCheck = undefined
  }

  /**
   * `fromWatch`: the WAL file was written. The writer publishes its commit in the shared index
   * just after that write, so a check right away can miss it: look again shortly after.
   */
  #scheduleChange(fromWatch = false): void {
    if (fromWatch) this.#recheck = 2
    if (this.#changeScheduled || this.#closed) return
    this.#changeScheduled = true
    setImmediate(() => this.#check())
  }

  #check(): void {
    this.#changeScheduled = false
    if (this.#closed || this.#fault) return
    let version = this.#dataVersion
    this.#quietly(() => (version = this.#readDataVersion()))
    if (this.#fault) return
    // Our own commits do not move data_version; those are handled right after the flush.
    if (version === this.#dataVersion) {
      if (this.#recheck > 0 && !this.#changeScheduled) {
        this.#changeScheduled = true
        setTimeout(() => this.#check(), 3 - this.#recheck--)
      }
      return
    }
    this.#recheck = 0
    this.#dataVersion = version
    this.#changed(false)
  }

  #changed(local: boolean): void {
    this.#quietly(() => this.#changedNow(local))
  }

  #changedNow(_local: boolean): void {
    if (this.#closed || this.#fault) return
    for (const listener of this.#workListeners) listener()
    if (this.#waiters.size === 0) {
      // Nobody waits: just move the cursor on (cheaply, without reading the ended runs).
      this.#lastSeq = (this.#stmts.seq.get() as { v: number }).v
      return
    }
    const changed = this.#stmts.changed.all(this.#lastSeq) as { id: string; seq: number }[]
    for (const { id, seq } of changed) {
      if (seq > this.#lastSeq) this.#lastSeq = seq
      if (!this.#waiters.has(id)) continue
      const record = this.getSync(id)!
      if (isFinalQueueState(record.state)) this.#waiters.resolve(record)
      else if (record.state === 'Running') this.#waiters.running(id, record.attempts)
    }
    this.#maybeStopWatching()
  }
}
