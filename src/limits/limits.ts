import { randomUUID } from 'node:crypto'
import os from 'node:os'
import { PtrError, UsageError } from '../errors.ts'
import type { AcquireRequest, LimitStore } from './store.ts'

/** Slots held by one acquisition; give them back with `release()` (once; later calls do nothing). */
export interface HeldSlots {
  readonly slotIds: readonly string[]
  /** Gives the slots back; the promise settles once the store has them (it never rejects). */
  release(): Promise<void>
}

export interface AcquireOptions {
  /** Slots of each name to take. @default 1 */
  occupy?: number
  /** What holds the slots, as `ptr concurrency-limit inspect` shows it. */
  holder?: string
  mode?: 'concurrency' | 'rate'
  /** Names without a limit are an error (`concurrency()`, `rateLimit()`); otherwise they are skipped (tags). @default false */
  strict?: boolean
  /** Gives up waiting: the promise rejects with the signal's reason and the place in line is left. */
  signal?: AbortSignal
  /** Called once if the acquisition has to wait (not called when slots were free at once). */
  onWait?: () => void
}

export class LimitNotFoundError extends UsageError {
  constructor(names: readonly string[], url: string) {
    super(
      `no concurrency limit named ${names.map((n) => `'${n}'`).join(', ')} in ${url}; create it first: ptr concurrency-limit create ${names[0]} 5 (add --slot-decay-per-second N for a rate limit)`,
      'PTR_NO_SUCH_LIMIT',
    )
  }
}

interface Waiter {
  readonly request: AcquireRequest
  readonly strict: boolean
  first: boolean
  /** Arrival in this process. */
  readonly order: number
  /** In the store's line (tried, or joined without a try). */
  joined: boolean
  /** In this process's line (`#waiters`). */
  queued: boolean
  /** The names it was counted under in `#waitingNames` when queued (its request may narrow later, when a limit is deleted). */
  counted: readonly string[]
  resolve(slotIds: readonly string[]): void
  reject(error: unknown): void
  timer: NodeJS.Timeout | undefined
  done: boolean
}

/**
 * The lease of a slot when no setting names one (the `concurrency.slotLeaseSeconds` default): a
 * dead holder's slots are free again after about this long.
 */
export const DEFAULT_SLOT_LEASE_SECONDS = 5

/**
 * Acquisitions against a {@link LimitStore}: waits in line (oldest first across processes), wakes
 * when a slot may have been freed (the store's watch, and timers for lease ends and decay, never a
 * busy poll), and renews the leases of held slots and places in line every third of the lease, so
 * a process that dies gives its slots back after about one lease.
 */
export class Limits {
  readonly store: LimitStore
  readonly leaseMs: number
  readonly owner = `${os.hostname()}:${process.pid}`
  #held = new Map<string, string[]>()
  /** This process's line, in order of arrival. */
  #waiters: Waiter[] = []
  /** How many waiters in `#waiters` want each name. */
  #waitingNames = new Map<string, number>()
  /** Waiters queued here without a try, not yet in the store's line. */
  #unjoined: Waiter[] = []
  /** Acquisitions whose first try is with the store now. */
  #firstTries = new Set<Waiter>()
  #arrivals = 0
  #joinScheduled = false
  #renewTimer: NodeJS.Timeout | undefined
  #unwatch: (() => void) | undefined
  #passing = false
  #passAgain = false
  #closed = false
  #warn: (line: string) => void

  constructor(store: LimitStore, options: { leaseMs?: number; warn?: (line: string) => void } = {}) {
    this.store = store
    this.leaseMs = options.leaseMs ?? DEFAULT_SLOT_LEASE_SECONDS * 1000
    this.#warn = options.warn ?? ((line) => process.stderr.write(`${line}\n`))
  }

  /** Waits for `occupy` slots of every name in `names` and takes them all at once. */
  async acquire(names: readonly string[], options: AcquireOptions = {}): Promise<HeldSlots> {
    const occupy = options.occupy ?? 1
    if (!(Number.isInteger(occupy) && occupy >= 1)) throw new UsageError(`expected \`occupy\` to be an integer from 1 and up, got \`${String(occupy)}\` (${typeof occupy})`, 'PTR_BAD_OCCUPY')
    if (this.#closed) throw new PtrError('the limits of this process were closed', { code: 'PTR_LIMITS_CLOSED' })
    options.signal?.throwIfAborted()
    const request: AcquireRequest = {
      waiterId: randomUUID(),
      names: [...new Set(names)],
      occupy,
      holder: options.holder ?? 'code',
      owner: this.owner,
      leaseMs: this.leaseMs,
      mode: options.mode ?? 'concurrency',
    }
    const slotIds = await new Promise<readonly string[]>((resolve, reject) => {
      const waiter: Waiter = { request, strict: options.strict ?? false, first: true, order: this.#arrivals++, joined: false, queued: false, counted: [], resolve, reject, timer: undefined, done: false }
      const signal = options.signal
      if (signal) {
        const onAbort = () => this.#giveUp(waiter, signal.reason)
        signal.addEventListener('abort', onAbort, { once: true })
        const settle = (fn: (v: never) => void) => (v: never) => {
          signal.removeEventListener('abort', onAbort)
          fn(v)
        }
        waiter.resolve = settle(resolve as (v: never) => void)
        waiter.reject = settle(reject as (v: never) => void)
      }
      // An older waiter of this process wants one of these names: this one would only join the
      // line behind it, so it waits here and asks the store when its turn comes (one write less).
      const shares = (w: Waiter) => w.request.names.some((name) => request.names.includes(name))
      if (request.names.some((name) => this.#waitingNames.has(name)) || [...this.#firstTries].some(shares)) {
        this.#enqueue(waiter, options.onWait)
        this.#unjoined.push(waiter)
        this.#joinSoon()
        return
      }
      this.#firstTries.add(waiter)
      void this.#try(waiter, options.onWait).then((outcome) => {
        this.#firstTries.delete(waiter)
        // Those queued here behind this one may go on now, unless it is in line or took the last slot of their names.
        if (outcome === 'blocked') return
        if ([...this.#waitingNames.keys()].some((name) => !(outcome && outcome.includes(name)))) this.#pass()
      })
    })
    return this.#hold(slotIds)
  }

  #hold(slotIds: readonly string[]): HeldSlots {
    if (slotIds.length === 0) return { slotIds, release: () => Promise.resolve() }
    const key = slotIds[0]!
    this.#held.set(key, [...slotIds])
    this.#renewing()
    let released = false
    return {
      slotIds,
      release: () => {
        if (released) return Promise.resolve()
        released = true
        this.#held.delete(key)
        this.#stopRenewingIfIdle()
        return this.store.release(slotIds).catch((error: unknown) => this.#warn(`ptr: could not give back concurrency slots in ${this.store.url}: ${(error as Error).message}; they free themselves when their lease ends`))
      },
    }
  }

  /**
   * One try. Returns `blocked` when the waiter is (still) in line; when it took its slots, the
   * names that have none left; undefined when it ended otherwise (rejected, given up).
   */
  async #try(waiter: Waiter, onWait?: () => void): Promise<readonly string[] | 'blocked' | undefined> {
    let result
    try {
      result = await this.store.tryAcquire(waiter.request)
    } catch (error) {
      // The store may have put it in line before the answer was lost: leave, so no one waits behind it.
      const wasWaiting = !waiter.done
      this.#finish(waiter)
      if (wasWaiting) void this.store.leave(waiter.request.waiterId).catch(() => undefined)
      waiter.reject(error)
      return
    }
    if (waiter.done) {
      // Given up while the store answered: give back what it took.
      if (result.ok) void this.store.release(result.slotIds).catch(() => undefined)
      else void this.store.leave(waiter.request.waiterId).catch(() => undefined)
      return
    }
    if (result.ok) {
      this.#finish(waiter)
      waiter.resolve(result.slotIds)
      return result.full
    }
    if ('missing' in result) {
      if (waiter.strict && waiter.first) {
        this.#finish(waiter)
        waiter.reject(new LimitNotFoundError(result.missing, this.store.url))
        return
      }
      // Deleted (or never there, for tags): nothing limits these names any more.
      const rest = waiter.request.names.filter((n) => !result.missing.includes(n))
      if (rest.length === 0) {
        this.#finish(waiter)
        waiter.resolve([])
        return
      }
      ;(waiter as { request: AcquireRequest }).request = { ...waiter.request, names: rest }
      // Those arriving later for the deleted names need not wait behind it here.
      if (waiter.queued) {
        this.#uncount(waiter.counted.filter((name) => !rest.includes(name)))
        waiter.counted = rest
      }
      return this.#try(waiter, onWait)
    }
    if ('impossible' in result) {
      this.#finish(waiter)
      if (waiter.joined) void this.store.leave(waiter.request.waiterId).catch(() => undefined)
      waiter.reject(new UsageError(`cannot acquire concurrency slots: ${result.impossible}`, 'PTR_LIMIT_IMPOSSIBLE'))
      return
    }
    waiter.first = false
    waiter.joined = true
    if (!waiter.queued) this.#enqueue(waiter, onWait)
    clearTimeout(waiter.timer)
    // A lease that ends or a slot that decays frees room without anyone saying so.
    waiter.timer = result.retryInMs === undefined ? undefined : setTimeout(() => this.#pass(), result.retryInMs)
    return 'blocked'
  }

  /**
   * Puts the waiters queued here without a try into the store's line, in one write per turn: so
   * they keep their place against other processes, and `inspect` counts them.
   */
  #joinSoon(): void {
    if (this.#joinScheduled) return
    this.#joinScheduled = true
    setImmediate(() => {
      this.#joinScheduled = false
      const joining = this.#unjoined.filter((w) => !w.done && !w.joined)
      this.#unjoined = []
      for (const w of joining) w.joined = true
      if (joining.length > 0) this.store.join(joining.map((w) => w.request)).catch(() => undefined)
    })
  }

  /** Puts the waiter in this process's line, in order of arrival (a first try may come back after later arrivals were queued). */
  #enqueue(waiter: Waiter, onWait: (() => void) | undefined): void {
    let at = this.#waiters.length
    while (at > 0 && this.#waiters[at - 1]!.order > waiter.order) at--
    this.#waiters.splice(at, 0, waiter)
    waiter.queued = true
    waiter.counted = waiter.request.names
    for (const name of waiter.counted) this.#waitingNames.set(name, (this.#waitingNames.get(name) ?? 0) + 1)
    onWait?.()
    this.#unwatch ??= this.store.watch(() => this.#pass())
    this.#renewing()
    // A waiting acquisition keeps the process alive, as a pending sleep would (the store's watch
    // does not).
    this.#renewTimer?.ref()
  }

  /** Tries the waiters again, oldest first, one at a time (one pass at once; a wake during a pass runs another). */
  #pass(): void {
    if (this.#passing) {
      this.#passAgain = true
      return
    }
    this.#passing = true
    void (async () => {
      do {
        this.#passAgain = false
        // A waiter still in line holds up every younger one that wants one of its names (the line
        // is per name): asking the store for those would only cost a transaction each.
        const blocked = new Set<string>()
        // Walks the line by arrival (it may change while a try is out), and stops once every name
        // anyone here waits for is known to be held up: a pass costs a few tries, not the line's length.
        let after = -1
        for (;;) {
          if ([...this.#waitingNames.keys()].every((name) => blocked.has(name))) break
          const waiter = this.#nextAfter(after)
          if (!waiter) break
          after = waiter.order
          if (waiter.done || waiter.request.names.some((name) => blocked.has(name))) continue
          const outcome = await this.#try(waiter)
          if (!waiter.done) for (const name of waiter.request.names) blocked.add(name)
          else if (Array.isArray(outcome)) for (const name of outcome) blocked.add(name)
        }
      } while (this.#passAgain && this.#waiters.length > 0)
      this.#passing = false
    })()
  }

  /** Where the waiter that arrived `order`-th is, or would be, in `#waiters` (sorted by arrival). */
  #indexOf(order: number): number {
    let lo = 0
    let hi = this.#waiters.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#waiters[mid]!.order < order) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** The first waiter in line that arrived after `order`. */
  #nextAfter(order: number): Waiter | undefined {
    return this.#waiters[this.#indexOf(order + 1)]
  }

  #finish(waiter: Waiter): void {
    waiter.done = true
    clearTimeout(waiter.timer)
    if (waiter.queued) {
      waiter.queued = false
      const i = this.#indexOf(waiter.order)
      if (this.#waiters[i] === waiter) this.#waiters.splice(i, 1)
      this.#uncount(waiter.counted)
    }
    if (this.#waiters.length === 0) {
      this.#unwatch?.()
      this.#unwatch = undefined
      this.#renewTimer?.unref()
    }
    this.#stopRenewingIfIdle()
  }

  #uncount(names: readonly string[]): void {
    for (const name of names) {
      const n = this.#waitingNames.get(name)! - 1
      if (n === 0) this.#waitingNames.delete(name)
      else this.#waitingNames.set(name, n)
    }
  }

  #giveUp(waiter: Waiter, reason: unknown): void {
    if (waiter.done) return
    const wasWaiting = waiter.joined || waiter.queued
    this.#finish(waiter)
    if (!wasWaiting) return waiter.reject(reason)
    // Rejected once it has left the line: a caller that gave up is no one's reason to wait.
    void this.store
      .leave(waiter.request.waiterId)
      .catch(() => undefined)
      .then(() => waiter.reject(reason))
  }

  #renewing(): void {
    if (this.#renewTimer) return
    this.#renewTimer = setInterval(() => this.#renew(), Math.max(50, Math.floor(this.leaseMs / 3)))
    this.#renewTimer.unref()
  }

  #stopRenewingIfIdle(): void {
    if (this.#held.size > 0 || this.#waiters.length > 0) return
    clearInterval(this.#renewTimer)
    this.#renewTimer = undefined
  }

  #renew(): void {
    const slotIds = [...this.#held.values()].flat()
    const waiterIds = this.#waiters.filter((w) => w.joined).map((w) => w.request.waiterId)
    this.store.renew(slotIds, waiterIds, this.leaseMs).then(
      (gone) => {
        if (gone.length > 0) this.#warn(`ptr: ${gone.length} concurrency slot(s) held here were freed in ${this.store.url} (reset, deleted, or the lease ran out while this process was stalled)`)
        for (const [key, ids] of this.#held) if (ids.some((id) => gone.includes(id))) this.#held.delete(key)
        this.#stopRenewingIfIdle()
      },
      () => undefined,
    )
  }

  /** Stops waiting (waiters reject with `error`), gives back held slots, closes the store. */
  async close(error: Error = new PtrError('the limits of this process were closed', { code: 'PTR_LIMITS_CLOSED' })): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const waiter of [...this.#waiters]) this.#giveUp(waiter, error)
    const held = [...this.#held.values()].flat()
    this.#held.clear()
    clearInterval(this.#renewTimer)
    this.#unwatch?.()
    if (held.length > 0) await this.store.release(held).catch(() => undefined)
    await this.store.close()
  }
}
