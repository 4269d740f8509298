import { randomUUID } from 'node:crypto'
import { watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import type Database from 'better-sqlite3'
import { openDatabase } from '../queue/sqlite-driver.ts'
import { UsageError } from '../errors.ts'
import type { AcquireRequest, AcquireResult, LimitInfo, LimitStore, SlotHolder } from './store.ts'

/**
 * Tables of the limits, in the queue's file. Created on the first `create`, after the queue's own
 * schema (the queue refuses a new file that holds other tables).
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS limits (
  name TEXT PRIMARY KEY,
  slots INTEGER NOT NULL,
  decay REAL NOT NULL DEFAULT 0,
  decayed REAL NOT NULL DEFAULT 0,
  decayed_at INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS limit_slots (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  occupy INTEGER NOT NULL,
  holder TEXT NOT NULL,
  owner TEXT NOT NULL,
  acquired_at INTEGER NOT NULL,
  lease_until INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS limit_slots_name ON limit_slots(name);
CREATE INDEX IF NOT EXISTS limit_slots_lease ON limit_slots(lease_until);
CREATE TABLE IF NOT EXISTS limit_waiters (
  id TEXT NOT NULL,
  name TEXT NOT NULL,
  seq INTEGER NOT NULL,
  lease_until INTEGER NOT NULL,
  PRIMARY KEY (id, name)
);
CREATE INDEX IF NOT EXISTS limit_waiters_line ON limit_waiters(name, seq);
CREATE TABLE IF NOT EXISTS limit_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO limit_meta (k, v) VALUES ('version', 0), ('seq', 0);
`

type LimitRow = { name: string; slots: number; decay: number; decayed: number; decayed_at: number; created_at: number }

/** Decayed slots still counted at `now`. */
const decayedAt = (row: LimitRow, now: number): number => (row.decay > 0 ? Math.max(0, row.decayed - (row.decay * (now - row.decayed_at)) / 1000) : 0)

/**
 * Limits in the SQLite queue file, shared by the processes of one machine. Every acquisition is one
 * `BEGIN IMMEDIATE` transaction (atomic across processes): expired leases are dropped, the line
 * (oldest first, per name) and the free slots are checked, and the slots taken or the place in line
 * kept. Other processes' releases are noticed through a watch on the WAL file and a version row.
 */
export class SqliteLimitStore implements LimitStore {
  readonly url: string
  readonly #file: string
  readonly #db: Database.Database
  readonly #prepareQueue: () => Promise<void>
  #ready = false
  #stmts: ReturnType<SqliteLimitStore['prepareStatements']> | undefined
  readonly #dataVersion: Database.Statement
  /** Prepared once: asked on every call while the tables are not there yet. */
  #tablesThere: Database.Statement | undefined
  #names: { dataVersion: number; names: ReadonlySet<string> } | undefined
  #namesThisTurn = false
  #listeners = new Set<() => void>()
  #watcher: FSWatcher | undefined
  #poll: NodeJS.Timeout | undefined
  #seenVersion = -1
  #checkScheduled = false

  /** `prepareQueue` sets up the queue's own schema in a new file before the limits' tables go in. */
  constructor(file: string, options: { url: string; prepareQueue: () => Promise<void> }) {
    this.#file = file
    this.url = options.url
    this.#prepareQueue = options.prepareQueue
    try {
      this.#db = openDatabase(file, { timeout: 10_000, fileMustExist: file !== ':memory:' })
      this.#db.pragma('journal_mode = WAL')
      this.#db.pragma('synchronous = NORMAL')
    } catch (error) {
      if (error instanceof UsageError) throw error
      throw new UsageError(`cannot open the limits in queue file ${file}: ${(error as Error).message}; check that the path is a ptr queue file you can read and write`, 'PTR_BAD_QUEUE_FILE', error)
    }
    this.#dataVersion = this.#db.prepare('PRAGMA data_version').pluck()
    this.#immediate = this.#db.transaction((fn: () => unknown) => fn()).immediate
    this.#useTablesIfThere()
  }

  #useTablesIfThere(): boolean {
    if (this.#ready) return true
    this.#tablesThere ??= this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'limit_meta'`)
    const there = this.#tablesThere.get() !== undefined
    if (there) {
      this.#stmts = this.prepareStatements()
      this.#ready = true
    }
    return there
  }

  async #ensureTables(): Promise<void> {
    if (this.#useTablesIfThere()) return
    if ((this.#db.pragma('user_version', { simple: true }) as number) === 0) await this.#prepareQueue()
    this.#db.transaction(() => this.#db.exec(SCHEMA)).immediate()
    this.#useTablesIfThere()
  }

  /** @internal */
  prepareStatements() {
    const db = this.#db
    return {
      limit: db.prepare(`SELECT * FROM limits WHERE name = ?`),
      limits: db.prepare(`SELECT * FROM limits ORDER BY name`),
      names: db.prepare(`SELECT name FROM limits`).pluck(),
      upsert: db.prepare(
        `INSERT INTO limits (name, slots, decay, created_at) VALUES (@name, @slots, @decay, @now)
         ON CONFLICT(name) DO UPDATE SET slots = excluded.slots, decay = excluded.decay`,
      ),
      deleteLimit: db.prepare(`DELETE FROM limits WHERE name = ?`),
      deleteSlotsOf: db.prepare(`DELETE FROM limit_slots WHERE name = ?`),
      deleteWaitersOf: db.prepare(`DELETE FROM limit_waiters WHERE name = ?`),
      resetDecay: db.prepare(`UPDATE limits SET decayed = 0, decayed_at = @now WHERE name = @name`),
      setDecayed: db.prepare(`UPDATE limits SET decayed = @decayed, decayed_at = @now WHERE name = @name`),
      expireSlots: db.prepare(`DELETE FROM limit_slots WHERE lease_until < ?`),
      expireWaiters: db.prepare(`DELETE FROM limit_waiters WHERE lease_until < ?`),
      used: db.prepare(`SELECT coalesce(sum(occupy), 0) AS used, min(lease_until) AS next FROM limit_slots WHERE name = ?`),
      holders: db.prepare(`SELECT * FROM limit_slots WHERE name = ? ORDER BY acquired_at`),
      waiting: db.prepare(`SELECT count(*) FROM limit_waiters WHERE name = ? AND lease_until >= ?`).pluck(),
      mySeq: db.prepare(`SELECT seq FROM limit_waiters WHERE id = ? LIMIT 1`).pluck(),
      older: db.prepare(`SELECT min(lease_until) FROM limit_waiters WHERE name = ? AND seq < ?`).pluck(),
      bumpSeq: db.prepare(`UPDATE limit_meta SET v = v + 1 WHERE k = 'seq' RETURNING v`).pluck(),
      bumpVersion: db.prepare(`UPDATE limit_meta SET v = v + 1 WHERE k = 'version' RETURNING v`).pluck(),
      version: db.prepare(`SELECT v FROM limit_meta WHERE k = 'version'`).pluck(),
      joinLine: db.prepare(`INSERT OR REPLACE INTO limit_waiters (id, name, seq, lease_until) VALUES (?, ?, ?, ?)`),
      leaveLine: db.prepare(`DELETE FROM limit_waiters WHERE id = ?`),
      renewWaiter: db.prepare(`UPDATE limit_waiters SET lease_until = ? WHERE id = ?`),
      take: db.prepare(`INSERT INTO limit_slots (id, name, occupy, holder, owner, acquired_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      renewSlot: db.prepare(`UPDATE limit_slots SET lease_until = ? WHERE id = ?`),
      release: db.prepare(`DELETE FROM limit_slots WHERE id = ?`),
    }
  }

  /** Runs `fn` in one BEGIN IMMEDIATE transaction (the write lock first: no SQLITE_BUSY half-way). */
  #tx<T>(fn: () => T): T {
    return this.#immediate(fn) as T
  }
  readonly #immediate: (fn: () => unknown) => unknown

  async create(name: string, limit: number, slotDecayPerSecond: number): Promise<'created' | 'updated'> {
    await this.#ensureTables()
    const s = this.#stmts!
    const created = this.#tx(() => {
      const existed = s.limit.get(name) !== undefined
      s.upsert.run({ name, slots: limit, decay: slotDecayPerSecond, now: Date.now() })
      s.bumpVersion.get()
      return !existed
    })
    this.#names = undefined
    return created ? 'created' : 'updated'
  }

  async list(): Promise<LimitInfo[]> {
    if (!this.#useTablesIfThere()) return []
    return this.#db.transaction(() => (this.#stmts!.limits.all() as LimitRow[]).map((row) => this.#info(row)))()
  }

  async get(name: string): Promise<LimitInfo | undefined> {
    if (!this.#useTablesIfThere()) return undefined
    const row = this.#stmts!.limit.get(name) as LimitRow | undefined
    return row && this.#info(row)
  }

  #info(row: LimitRow): LimitInfo {
    const s = this.#stmts!
    const now = Date.now()
    const holders = (s.holders.all(row.name) as { id: string; holder: string; owner: string; occupy: number; acquired_at: number; lease_until: number }[])
      .filter((h) => h.lease_until >= now)
      .map((h): SlotHolder => ({ slotId: h.id, holder: h.holder, owner: h.owner, occupy: h.occupy, acquiredAt: h.acquired_at, leaseUntil: h.lease_until }))
    const held = holders.reduce((sum, h) => sum + h.occupy, 0)
    return {
      name: row.name,
      limit: row.slots,
      slotDecayPerSecond: row.decay,
      active: held + Math.ceil(decayedAt(row, now) - 1e-9),
      holders,
      waiting: s.waiting.get(row.name, now) as number,
      createdAt: row.created_at,
    }
  }

  async reset(name: string): Promise<boolean> {
    if (!this.#useTablesIfThere()) return false
    const s = this.#stmts!
    return this.#tx(() => {
      if (!s.limit.get(name)) return false
      s.deleteSlotsOf.run(name)
      s.resetDecay.run({ name, now: Date.now() })
      s.bumpVersion.get()
      return true
    })
  }

  async delete(name: string): Promise<boolean> {
    if (!this.#useTablesIfThere()) return false
    const s = this.#stmts!
    const deleted = this.#tx(() => {
      if (s.deleteLimit.run(name).changes === 0) return false
      s.deleteSlotsOf.run(name)
      s.deleteWaitersOf.run(name)
      s.bumpVersion.get()
      return true
    })
    this.#names = undefined
    return deleted
  }

  limitedNames(): ReadonlySet<string> {
    // Looked at once per turn of the event loop at most (a map of 10,000 tagged runs asks 10,000
    // times in one turn): data_version changes when another connection commits to the file; this
    // connection's own changes to the limits drop the cache where they are made.
    if (this.#names && this.#namesThisTurn) return this.#names.names
    this.#namesThisTurn = true
    setImmediate(() => (this.#namesThisTurn = false)).unref()
    const dataVersion = this.#dataVersion.get() as number
    if (this.#names?.dataVersion === dataVersion) return this.#names.names
    const names: ReadonlySet<string> = this.#useTablesIfThere() ? new Set(this.#stmts!.names.all() as string[]) : new Set()
    this.#names = { dataVersion, names }
    return names
  }

  async tryAcquire(request: AcquireRequest): Promise<AcquireResult> {
    if (!this.#useTablesIfThere()) return { ok: false, missing: [...request.names] }
    const s = this.#stmts!
    return this.#tx((): AcquireResult => {
      const now = Date.now()
      s.expireSlots.run(now)
      s.expireWaiters.run(now)
      const rows: LimitRow[] = []
      const missing: string[] = []
      for (const name of request.names) {
        const row = s.limit.get(name) as LimitRow | undefined
        if (row) rows.push(row)
        else missing.push(name)
      }
      if (missing.length > 0) {
        if (s.leaveLine.run(request.waiterId).changes > 0) s.bumpVersion.get()
        return { ok: false, missing }
      }
      const seq = (s.mySeq.get(request.waiterId) as number | undefined) ?? Number.MAX_SAFE_INTEGER
      let blocked = false
      let retryInMs: number | undefined
      const soonest = (ms: number) => (retryInMs = retryInMs === undefined ? ms : Math.min(retryInMs, ms))
      const decayed: number[] = []
      const full: string[] = []
      for (const row of rows) {
        if (request.occupy > row.slots) return { ok: false, impossible: `it asks for ${request.occupy} slots of '${row.name}', which has ${row.slots}` }
        if (request.mode === 'rate' && !(row.decay > 0)) {
          return { ok: false, impossible: `'${row.name}' has no slot decay, so rateLimit() would wait forever; create it with --slot-decay-per-second` }
        }
        const d = decayedAt(row, now)
        decayed.push(d)
        const olderUntil = s.older.get(row.name, seq) as number | null
        if (olderUntil !== null) {
          blocked = true
          // An older waiter whose process died leaves the line when its lease ends, and nobody
          // says so: try again then.
          soonest(Math.max(1, olderUntil - now + 1))
        }
        const { used, next } = s.used.get(row.name) as { used: number; next: number | null }
        const over = used + d + request.occupy - row.slots
        if (over > -1 + 1e-9) full.push(row.name)
        if (over > 1e-9) {
          blocked = true
          if (next !== null) soonest(Math.max(1, next - now + 1))
          if (row.decay > 0 && d > 0) soonest(Math.max(1, Math.ceil((Math.min(over, d) * 1000) / row.decay)))
        }
      }
      if (blocked) {
        const leaseUntil = now + request.leaseMs
        if (seq === Number.MAX_SAFE_INTEGER) {
          const mine = s.bumpSeq.get() as number
          for (const name of request.names) s.joinLine.run(request.waiterId, name, mine, leaseUntil)
        } else {
          s.renewWaiter.run(leaseUntil, request.waiterId)
        }
        return { ok: false, retryInMs }
      }
      const slotIds: string[] = []
      rows.forEach((row, i) => {
        if (request.mode === 'rate') {
          s.setDecayed.run({ name: row.name, decayed: decayed[i]! + request.occupy, now })
        } else {
          const id = randomUUID()
          s.take.run(id, row.name, request.occupy, request.holder, request.owner, now, now + request.leaseMs)
          slotIds.push(id)
        }
      })
      // Those in line behind this one may fit now that it has left.
      if (seq !== Number.MAX_SAFE_INTEGER) {
        s.leaveLine.run(request.waiterId)
        s.bumpVersion.get()
      }
      return { ok: true, slotIds, full }
    })
  }

  async join(requests: readonly AcquireRequest[]): Promise<void> {
    if (requests.length === 0 || !this.#useTablesIfThere()) return
    const s = this.#stmts!
    this.#tx(() => {
      const now = Date.now()
      for (const request of requests) {
        if (s.mySeq.get(request.waiterId) !== undefined) continue
        const seq = s.bumpSeq.get() as number
        for (const name of request.names) s.joinLine.run(request.waiterId, name, seq, now + request.leaseMs)
      }
    })
  }

  async leave(waiterId: string): Promise<void> {
    if (!this.#useTablesIfThere()) return
    const s = this.#stmts!
    this.#tx(() => {
      if (s.leaveLine.run(waiterId).changes > 0) this.#seenVersion = s.bumpVersion.get() as number
    })
    this.#changed()
  }

  async renew(slotIds: readonly string[], waiterIds: readonly string[], leaseMs: number): Promise<string[]> {
    if (!this.#useTablesIfThere()) return [...slotIds]
    const s = this.#stmts!
    return this.#tx(() => {
      const until = Date.now() + leaseMs
      const gone: string[] = []
      for (const id of slotIds) if (s.renewSlot.run(until, id).changes === 0) gone.push(id)
      for (const id of waiterIds) s.renewWaiter.run(until, id)
      return gone
    })
  }

  async release(slotIds: readonly string[]): Promise<void> {
    if (slotIds.length === 0 || !this.#useTablesIfThere()) return
    const s = this.#stmts!
    this.#tx(() => {
      for (const id of slotIds) s.release.run(id)
      // This process's waiters hear of it at once (below): the file watch need not tell them again.
      this.#seenVersion = s.bumpVersion.get() as number
    })
    this.#changed()
  }

  /** This process changed something: its own waiters may go on (the file watch is for other processes). */
  #changed(): void {
    for (const listener of this.#listeners) listener()
  }

  watch(listener: () => void): () => void {
    this.#listeners.add(listener)
    if (this.#listeners.size === 1) this.#startWatching()
    return () => {
      this.#listeners.delete(listener)
      if (this.#listeners.size === 0) this.#stopWatching()
    }
  }

  #startWatching(): void {
    if (this.#file !== ':memory:') {
      try {
        this.#watcher = watch(`${this.#file}-wal`, { persistent: false }, () => this.#scheduleCheck())
        this.#watcher.on('error', () => undefined)
      } catch {
        // No WAL file yet, or no file watching here: the poll below still notices.
      }
    }
    // In case the watch misses an event (or cannot watch): a slow look at the version row.
    this.#poll = setInterval(() => this.#scheduleCheck(), 250)
    this.#poll.unref()
  }

  #stopWatching(): void {
    this.#watcher?.close()
    this.#watcher = undefined
    clearInterval(this.#poll)
    this.#poll = undefined
  }

  #scheduleCheck(): void {
    if (this.#checkScheduled) return
    this.#checkScheduled = true
    setImmediate(() => {
      this.#checkScheduled = false
      if (!this.#db.open || !this.#useTablesIfThere()) return
      let version: number
      try {
        version = this.#stmts!.version.get() as number
      } catch {
        return
      }
      if (version === this.#seenVersion) return
      this.#seenVersion = version
      this.#changed()
    })
  }

  async close(): Promise<void> {
    this.#stopWatching()
    this.#listeners.clear()
    if (this.#db.open) this.#db.close()
  }
}
