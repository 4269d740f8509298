import { existsSync } from 'node:fs'
import { UsageError } from '../errors.ts'
import { defaultQueueTarget, openQueue } from '../queue/open.ts'
import { parseQueueUrl, redactUrl } from '../queue/url.ts'
import { DEFAULT_SLOT_LEASE_SECONDS, Limits } from './limits.ts'
import type { LimitStore } from './store.ts'

/**
 * Opens the limits of the store a queue URL names: the SQLite file's tables, or Redis keys.
 * `mustExist`: a SQLite file that is not there yet yields `undefined` (so nothing is limited)
 * instead of being created.
 */
export async function openLimitStore(url: string, options: { source?: string; mustExist?: boolean } = {}): Promise<LimitStore | undefined> {
  const parsed = parseQueueUrl(url, options.source)
  if (parsed.kind === 'sqlite') {
    if (options.mustExist && parsed.path !== ':memory:' && !existsSync(parsed.path)) return undefined
    if (parsed.path !== ':memory:' && !existsSync(parsed.path)) await prepareQueue(url, options.source)
    const { SqliteLimitStore } = await import('./sqlite.ts')
    return new SqliteLimitStore(parsed.path, { url: redactUrl(url), prepareQueue: () => prepareQueue(url, options.source) })
  }
  const { RedisLimitStore } = await import('./redis.ts')
  return RedisLimitStore.connect(parsed.url, { db: parsed.db, ...(options.source === undefined ? {} : { source: options.source }) })
}

/** A new SQLite file gets the queue's schema first: the queue refuses a fresh file that holds other tables. */
async function prepareQueue(url: string, source: string | undefined): Promise<void> {
  const queue = await openQueue(url, source === undefined ? {} : { source })
  await queue.close()
}

/** The slot lease from `PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS` (library use without the CLI). */
export function slotLeaseMsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS
  if (raw === undefined || raw.trim() === '') return DEFAULT_SLOT_LEASE_SECONDS * 1000
  const seconds = Number(raw)
  if (!(seconds > 0)) throw new UsageError(`PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS must be a number of seconds above 0, got '${raw}'`, 'PTR_BAD_SETTING')
  return Math.round(seconds * 1000)
}

const DEFAULT_LIMITS = Symbol.for('ptr.defaultLimits')
interface DefaultLimits {
  leaseMs: number | undefined
  /** The URL the open limits belong to. */
  url: string | undefined
  limits: Limits | undefined
  opening: Promise<Limits | undefined> | undefined
  /** A queue URL whose SQLite file was found missing in this turn of the event loop. */
  noFile: string | undefined
}
type WithLimits = { [DEFAULT_LIMITS]?: DefaultLimits }
const slot: DefaultLimits = ((globalThis as WithLimits)[DEFAULT_LIMITS] ??= { leaseMs: undefined, url: undefined, limits: undefined, opening: undefined, noFile: undefined })

/** Sets the slot lease the process's limits use (`ptr run` and `ptr worker serve` pass the setting). */
export function setSlotLease(leaseMs: number | undefined): void {
  slot.leaseMs = leaseMs
  if (slot.limits && leaseMs !== undefined) (slot.limits as { leaseMs: number }).leaseMs = leaseMs
}

/**
 * The limits of the process's default queue (the queue `ptr run` and task workers use), opened on
 * first use and again when the default queue changes. `mustExist`: undefined while the SQLite file
 * does not exist (nothing can be limited yet), without creating it.
 */
export function defaultLimits(mustExist = false): Limits | Promise<Limits | undefined> | undefined {
  const { url, source } = defaultQueueTarget()
  if (slot.url !== url) {
    const old = slot.limits
    slot.limits = undefined
    slot.opening = undefined
    slot.url = url
    void old?.close()
  }
  if (slot.limits) return slot.limits
  if (slot.opening) return slot.opening
  if (mustExist) {
    // Looked at once per turn at most: a map of 10,000 tagged runs asks 10,000 times in one turn.
    if (slot.noFile === url) return undefined
    const parsed = parseQueueUrl(url, source)
    if (parsed.kind === 'sqlite' && parsed.path !== ':memory:' && !existsSync(parsed.path)) {
      slot.noFile = url
      setImmediate(() => (slot.noFile = undefined)).unref()
      return undefined
    }
  }
  const opening = openLimitStore(url, { source, mustExist }).then((store) => {
    if (slot.opening !== opening) {
      void store?.close()
      return slot.limits
    }
    slot.opening = undefined
    if (!store) return undefined
    slot.limits = new Limits(store, { leaseMs: slot.leaseMs ?? slotLeaseMsFromEnv() })
    return slot.limits
  })
  slot.opening = opening
  opening.catch(() => {
    if (slot.opening === opening) slot.opening = undefined
  })
  return opening
}

/** Closes the process's default limits (gives back held slots). */
export async function closeDefaultLimits(): Promise<void> {
  const limits = slot.limits
  slot.limits = undefined
  slot.opening = undefined
  slot.url = undefined
  await limits?.close()
}
