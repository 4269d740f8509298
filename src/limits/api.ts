import { currentContext } from '../engine/context.ts'
import { PtrError, UsageError } from '../errors.ts'
import { defaultQueueTarget } from '../queue/open.ts'
import { redactUrl } from '../queue/url.ts'
import { LimitNotFoundError } from './limits.ts'
import type { Limits } from './limits.ts'
import { defaultLimits } from './open.ts'

export interface ConcurrencyOptions {
  /** Slots of the limit to hold while `fn` runs. @default 1 */
  occupy?: number
  /** Most seconds to wait for the slots; then the call rejects with a `ConcurrencySlotTimeoutError`. @default no limit */
  timeoutSeconds?: number
  /** Gives up waiting: the call rejects with the signal's reason. @default the task run's signal inside a task, none outside */
  signal?: AbortSignal
}

export interface RateLimitOptions {
  /** Tokens to take. @default 1 */
  occupy?: number
  /** Most seconds to wait for the tokens; then the call rejects with a `ConcurrencySlotTimeoutError`. @default no limit */
  timeoutSeconds?: number
  /** Gives up waiting: the call rejects with the signal's reason. @default the task run's signal inside a task, none outside */
  signal?: AbortSignal
}

/** `concurrency()` or `rateLimit()` got no slots within its `timeoutSeconds`. */
export class ConcurrencySlotTimeoutError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_SLOT_TIMEOUT' })
  }
}

/**
 * Acquires with the caller's signal (or the task run's) and `timeoutSeconds`, whichever ends first.
 */
async function acquireWithin(limits: Limits, what: string, names: string[], options: { occupy?: number | undefined; timeoutSeconds?: number | undefined; signal?: AbortSignal | undefined }, mode: 'concurrency' | 'rate') {
  const { timeoutSeconds } = options
  if (timeoutSeconds !== undefined && !(typeof timeoutSeconds === 'number' && timeoutSeconds >= 0)) {
    throw new UsageError(`${what}: expected \`timeoutSeconds\` to be a number of seconds from 0 and up, got \`${String(timeoutSeconds)}\` (${typeof timeoutSeconds})`, 'PTR_BAD_ARGUMENT')
  }
  const outer = options.signal ?? contextSignal()
  if (timeoutSeconds === undefined) {
    return limits.acquire(names, { occupy: options.occupy ?? 1, strict: true, mode, holder: holderOf(), ...(outer ? { signal: outer } : {}) })
  }
  const controller = new AbortController()
  const onOuter = () => controller.abort(outer!.reason)
  if (outer?.aborted) onOuter()
  else outer?.addEventListener('abort', onOuter, { once: true })
  const timer = setTimeout(
    () => controller.abort(new ConcurrencySlotTimeoutError(`${what}: no slot of ${names.map((n) => `'${n}'`).join(', ')} within ${timeoutSeconds} s; raise timeoutSeconds, or the limit (ptr concurrency-limit create ${names[0]} N)`)),
    timeoutSeconds * 1000,
  )
  try {
    return await limits.acquire(names, { occupy: options.occupy ?? 1, strict: true, mode, holder: holderOf(), signal: controller.signal })
  } finally {
    clearTimeout(timer)
    outer?.removeEventListener('abort', onOuter)
  }
}

/** The default queue's limits; no queue file yet means no limit of these names (and none is created). */
async function openLimits(names: readonly string[]): Promise<Limits> {
  const limits = await defaultLimits(true)
  if (!limits) throw new LimitNotFoundError(names, redactUrl(defaultQueueTarget().url))
  return limits
}

function namesOf(what: string, names: string | readonly string[]): string[] {
  const list = typeof names === 'string' ? [names] : Array.isArray(names) ? [...names] : undefined
  if (!list || list.length === 0 || list.some((n) => typeof n !== 'string' || n === '')) {
    throw new UsageError(`${what}: expected a limit name or a list of names, got ${JSON.stringify(names)}; write ${what}('warehouse', ...)`, 'PTR_BAD_LIMIT_NAME')
  }
  return list
}

function holderOf(): string {
  const taskRun = currentContext()?.taskRun
  return taskRun ? `${taskRun.name} (${taskRun.id})` : `concurrency() in ${process.argv[1] ?? 'node'}`
}

/** The signal of the task run around the call, if any (a cancelled or timed-out run stops waiting). */
function contextSignal(): AbortSignal | undefined {
  const context = currentContext()
  return context?.taskRun ? context.signal : undefined
}

/**
 * Holds `occupy` slots of the named limit(s) while `fn` runs, across every process using the same
 * store (Prefect's global concurrency limits): waits for them first, oldest first, and gives them
 * back when `fn` settles, however it does. A name without a limit is an error that says how to
 * create one (`ptr concurrency-limit create NAME N`). Returns what `fn` returns.
 *
 * @example
 * await concurrency('warehouse', { occupy: 2 }, async () => load(rows))
 */
export async function concurrency<T>(names: string | readonly string[], options: ConcurrencyOptions, fn: () => T | Promise<T>): Promise<T>
export async function concurrency<T>(names: string | readonly string[], fn: () => T | Promise<T>): Promise<T>
export async function concurrency<T>(
  names: string | readonly string[],
  optionsOrFn: ConcurrencyOptions | (() => T | Promise<T>),
  maybeFn?: () => T | Promise<T>,
): Promise<T> {
  const fn = typeof optionsOrFn === 'function' ? optionsOrFn : maybeFn
  const options = typeof optionsOrFn === 'function' ? {} : (optionsOrFn ?? {})
  const list = namesOf('concurrency', names)
  if (typeof fn !== 'function') throw new UsageError(`concurrency('${list.join("', '")}'): expected a function to run while holding the slots, got ${typeof fn}`, 'PTR_BAD_ARGUMENT')
  const limits = await openLimits(list)
  const held = await acquireWithin(limits, `concurrency('${list.join("', '")}')`, list, options, 'concurrency')
  try {
    return await fn()
  } finally {
    await held.release()
  }
}

/**
 * Waits for `occupy` tokens of a rate limit: a limit created with a slot decay
 * (`ptr concurrency-limit create api 10 --slot-decay-per-second 10` allows bursts of 10 and
 * 10 per second on average), across every process using the same store. Tokens are not given
 * back: they decay. A name without a limit, or a limit without decay, is an error.
 *
 * @example
 * await rateLimit('api')
 */
export async function rateLimit(names: string | readonly string[], options: RateLimitOptions = {}): Promise<void> {
  const list = namesOf('rateLimit', names)
  const limits = await openLimits(list)
  await acquireWithin(limits, `rateLimit('${list.join("', '")}')`, list, options, 'rate')
}
