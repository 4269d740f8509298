import { PtrError } from '../errors.ts'

/** Retries and a time limit: what tasks and flows both accept. */
export interface RetryOptions {
  /** Extra attempts after a failure (or crash, or timeout). @default 0 */
  retries?: number
  /**
   * Seconds to wait before each retry: one number for all, a list (its last value repeats for
   * later retries) or a function of the attempt that failed (1 for the first). @default 0
   */
  retryDelaySeconds?: number | readonly number[] | ((attempt: number) => number)
  /** Spreads each retry delay randomly over ±factor of itself (0.5 → 50%–150%). @default 0 */
  retryJitterFactor?: number
  /** An attempt ends TimedOut past this many seconds, even if the code ignores its signal. @default no limit */
  timeoutSeconds?: number
}

function describe(value: unknown): string {
  return `\`${typeof value === 'string' ? JSON.stringify(value) : String(value)}\` (${typeof value})`
}

/** Checks the options of the task or flow `what` (e.g. `task 'fetch'`); a bad one is an exit-2 error naming it. */
export function validateRetryOptions(what: string, code: string, options: RetryOptions): void {
  const fail = (expected: string, value: unknown) => {
    throw new PtrError(`${what}: expected ${expected}, got ${describe(value)}`, { code, exitCode: 2 })
  }
  const { retries, retryDelaySeconds: delay, retryJitterFactor: jitter, timeoutSeconds } = options
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0)) fail('`retries` to be an integer from 0 and up', retries)
  if (delay !== undefined && typeof delay !== 'function') {
    const list = Array.isArray(delay) ? delay : [delay]
    for (const d of list) if (!(typeof d === 'number' && d >= 0 && Number.isFinite(d))) fail('`retryDelaySeconds` to be seconds from 0 and up', d)
  }
  if (jitter !== undefined && !(typeof jitter === 'number' && jitter >= 0 && jitter <= 1)) fail('`retryJitterFactor` to be a number from 0 to 1', jitter)
  if (timeoutSeconds !== undefined && !(typeof timeoutSeconds === 'number' && timeoutSeconds > 0)) fail('`timeoutSeconds` to be a number above 0', timeoutSeconds)
}

/** Default retry options, overridden by a task's or flow's own `retries` / `retryDelaySeconds`. */
export interface RetryDefaults {
  readonly taskRetries?: number | undefined
  readonly taskRetryDelaySeconds?: number | readonly number[] | undefined
  readonly flowRetries?: number | undefined
  readonly flowRetryDelaySeconds?: number | readonly number[] | undefined
}

/**
 * `options` with `retries` and `retryDelaySeconds` filled in from defaults (settings) where the
 * options set none; `retries` is always a number.
 */
export function withRetryDefaults<O extends RetryOptions>(
  options: O,
  retries: number | undefined,
  retryDelaySeconds: RetryOptions['retryDelaySeconds'] | undefined,
): O & { retries: number } {
  if (options.retries !== undefined && (options.retryDelaySeconds !== undefined || retryDelaySeconds === undefined)) return options as O & { retries: number }
  const filled = { ...options, retries: options.retries ?? retries ?? 0 }
  if (filled.retryDelaySeconds === undefined && retryDelaySeconds !== undefined) filled.retryDelaySeconds = retryDelaySeconds
  return filled
}

/** Milliseconds to wait before the retry that follows failed attempt `attempt` (1 for the first). */
export function retryDelayMs(options: RetryOptions, attempt: number): number {
  const { retryDelaySeconds, retryJitterFactor } = options
  let seconds: number
  if (typeof retryDelaySeconds === 'function') seconds = retryDelaySeconds(attempt)
  else if (Array.isArray(retryDelaySeconds)) seconds = retryDelaySeconds[Math.min(attempt, retryDelaySeconds.length) - 1] ?? 0
  else seconds = (retryDelaySeconds as number | undefined) ?? 0
  if (retryJitterFactor && seconds > 0) {
    // Spread retries over [d·(1−j), d·(1+j)] so runs that failed together do not retry together.
    seconds *= 1 + retryJitterFactor * (2 * Math.random() - 1)
  }
  return Math.max(0, seconds) * 1000
}

/**
 * `work`'s outcome, or, past `seconds`, the error `onTimeout()` returns (it may also stop the work:
 * abort a signal, cancel runs). The timer is cleared as soon as `work` settles.
 */
export function withTimeLimit<T>(work: Promise<T>, seconds: number | undefined, onTimeout: () => Error): Promise<T> {
  if (seconds === undefined) return work
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), seconds * 1000)
    work.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
