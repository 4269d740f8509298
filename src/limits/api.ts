import { currentContext } from '../engine/context.ts'
import { PtrError, UsageError } from '../errors.ts'
import type { Limits } from './limits.ts'
import { defaultLimits } from './open.ts'

export interface ConcurrencyOptions {
  /** Slots of the limit to hold while `fn` runs. @default 1 */
  occupy?: number
  /** Gives up waiting: the call rejects with the signal's reason. @default the task run's signal inside a task, none outside */
  signal?: AbortSignal
}

export interface RateLimitOptions {
  /** Tokens to take. @default 1 */
  occupy?: number
  /** Gives up waiting: the call rejects with the signal's reason. @default the task run's signal inside a task, none outside */
  signal?: AbortSignal
}

async function openLimits(): Promise<Limits> {
  const limits = await defaultLimits()
  if (!limits) throw new PtrError('the limit store could not be opened', { code: 'PTR_NO_LIMIT_STORE' })
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
  const limits = await openLimits()
  const signal = options.signal ?? contextSignal()
  const held = await limits.acquire(list, {
    occupy: options.occupy ?? 1,
    strict: true,
    holder: holderOf(),
    ...(signal ? { signal } : {}),
  })
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
  const limits = await openLimits()
  const signal = options.signal ?? contextSignal()
  await limits.acquire(list, { occupy: options.occupy ?? 1, strict: true, mode: 'rate', holder: holderOf(), ...(signal ? { signal } : {}) })
}
