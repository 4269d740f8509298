/**
 * Where concurrency limits live: the queue's store (the SQLite file, or Redis). One interface, two
 * implementations (`sqlite.ts`, `redis.ts`); the waiting, lease renewal and waking of waiters are
 * written once above it (`limits.ts`).
 */

/** One limit, as `ptr concurrency-limit ls|inspect` shows it. */
export interface LimitInfo {
  readonly name: string
  /** Most slots in use at once. */
  readonly limit: number
  /** Slots given back per second by themselves (a rate limit); 0 for a plain concurrency limit. */
  readonly slotDecayPerSecond: number
  /** Slots held now (by live leases), plus decayed slots not yet given back (rounded up). */
  readonly active: number
  readonly holders: readonly SlotHolder[]
  /** Acquisitions waiting for a slot, in every process. */
  readonly waiting: number
  readonly createdAt: number
}

/** A lease on slots of one limit. */
export interface SlotHolder {
  readonly slotId: string
  /** What holds it: a task run (`name (id)`) or the label given to `concurrency()`. */
  readonly holder: string
  /** The process that holds it: `host:pid`. */
  readonly owner: string
  readonly occupy: number
  readonly acquiredAt: number
  readonly leaseUntil: number
}

export interface AcquireRequest {
  /** Stable across the tries of one acquisition: its place in line once it has to wait. */
  readonly waiterId: string
  readonly names: readonly string[]
  readonly occupy: number
  readonly holder: string
  readonly owner: string
  readonly leaseMs: number
  /** `concurrency`: slots held until released; `rate`: slots that decay by themselves (rateLimit). */
  readonly mode: 'concurrency' | 'rate'
}

export type AcquireResult =
  /** Taken; `full`: the names with no slot left now (waiters of those need not ask until one is freed). */
  | { readonly ok: true; readonly slotIds: readonly string[]; readonly full: readonly string[] }
  /** In line; `retryInMs`: when a lease ends or a slot decays (try again then at the latest). */
  | { readonly ok: false; readonly retryInMs: number | undefined }
  /** Names without a limit (never created, or deleted meanwhile): nothing was taken or queued. */
  | { readonly ok: false; readonly missing: readonly string[] }
  /** The request can never be met: `occupy` above a limit, or `rate` on a limit without decay. */
  | { readonly ok: false; readonly impossible: string }

export interface LimitStore {
  /** The store's URL, password hidden. */
  readonly url: string
  /** Creates the limit, or changes its size and decay. */
  create(name: string, limit: number, slotDecayPerSecond: number): Promise<'created' | 'updated'>
  list(): Promise<LimitInfo[]>
  get(name: string): Promise<LimitInfo | undefined>
  /** Frees every slot of the limit (holders keep running, unlimited). False if there is no such limit. */
  reset(name: string): Promise<boolean>
  /** Deletes the limit; its waiters go ahead (nothing limits them any more). */
  delete(name: string): Promise<boolean>
  /**
   * The names that have a limit. Synchronous when the cached set is known to be current (the
   * engine asks for every run with tags); a promise when it must be read.
   */
  limitedNames(): ReadonlySet<string> | Promise<ReadonlySet<string>>
  /** Takes slots of every name at once, or joins the line (oldest first) and says when to try again. */
  tryAcquire(request: AcquireRequest): Promise<AcquireResult>
  /** Puts acquisitions in line (in the order given) without trying them: those known to wait behind an older one. */
  join(requests: readonly AcquireRequest[]): Promise<void>
  /** Leaves the line (an acquisition given up). */
  leave(waiterId: string): Promise<void>
  /** Extends the leases of held slots and of waiters' places in line; returns the slot ids that were gone. */
  renew(slotIds: readonly string[], waiterIds: readonly string[], leaseMs: number): Promise<string[]>
  release(slotIds: readonly string[]): Promise<void>
  /** Calls `listener` when slots may have been freed or limits changed, in any process (until the returned function is called). */
  watch(listener: () => void): () => void
  close(): Promise<void>
}
