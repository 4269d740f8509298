import { inspect } from 'node:util'

/**
 * ptr's error hierarchy. Every error a user can cause is a {@link PtrError}: it carries a code,
 * the exit code the CLI uses for it, and a message that says what, where and what to do.
 * Anything else reaching the CLI is a bug and is printed with its stack.
 */
export const ExitCode = {
  Completed: 0,
  Failed: 1,
  Usage: 2,
  Sigint: 130,
  Sigterm: 143,
} as const
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

export class PtrError extends Error {
  readonly code: string
  readonly exitCode: number
  /** False when another attempt would fail the same way (a value that cannot cross, a task not found): no retries. */
  readonly retryable: boolean
  constructor(message: string, options: { code: string; exitCode?: number; cause?: unknown; retryable?: boolean }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = options.code
    this.exitCode = options.exitCode ?? ExitCode.Failed
    this.retryable = options.retryable ?? true
  }
}

/** A mistake in how ptr was called or configured: one line, exit 2. */
export class UsageError extends PtrError {
  constructor(message: string, code = 'PTR_USAGE', cause?: unknown) {
    super(message, { code, exitCode: ExitCode.Usage, cause })
  }
}

/** `task.map()` got iterables of different lengths. */
export class MappingLengthMismatchError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_MAPPING_LENGTH_MISMATCH' })
  }
}

/** `task.map()` got no iterable argument at all. */
export class MappingMissingIterableError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_MAPPING_MISSING_ITERABLE' })
  }
}

/** Also true for errors from another copy of ptr's modules (a CJS-scoped flow file loads one). */
export const isPtrError = (error: unknown): error is PtrError =>
  error instanceof PtrError ||
  (error instanceof Error &&
    typeof (error as { code?: unknown }).code === 'string' &&
    ((error as unknown as { code: string }).code.startsWith('PTR_')) &&
    typeof (error as { exitCode?: unknown }).exitCode === 'number')

/** A task run's upstream (an argument or `waitFor`) did not complete, so the run never started. */
export class UpstreamTaskRunError extends PtrError {
  readonly upstreamTaskRunId: string
  constructor(message: string, upstreamTaskRunId: string, cause: unknown) {
    super(message, { code: 'PTR_UPSTREAM_NOT_COMPLETED', cause })
    this.upstreamTaskRunId = upstreamTaskRunId
  }
}

/** A task run went past its `timeoutSeconds`. */
export class TaskRunTimeoutError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_TIMED_OUT' })
  }
}

/** A task run was cancelled (Ctrl-C, SIGTERM, `cancelAll()`). */
export class CancelledError extends PtrError {
  constructor(message = 'cancelled') {
    super(message, { code: 'PTR_CANCELLED' })
  }
}

/** The infrastructure under a task run died: its worker exited, ran out of memory or was killed. */
export class CrashedError extends PtrError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'PTR_CRASHED', cause })
  }
}

/** A task that a pool worker cannot find: fails its run before any attempt. */
export class TaskNotFoundInWorkerError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_TASK_NOT_FOUND', retryable: false })
  }
}

/** An argument or return value that cannot cross into or out of a pool worker. */
export class NotCloneableError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_NOT_CLONEABLE', retryable: false })
  }
}

/** `future.result({ timeout })` ran out of time before the run finished. */
export class FlowRunTimeoutError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_FLOW_TIMED_OUT' })
  }
}

export class FutureTimeoutError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_FUTURE_TIMEOUT' })
  }
}

/** The flow run failed because of task runs that failed and that nothing handled. */
export class UnhandledTaskFailureError extends PtrError {
  constructor(message: string, cause: unknown) {
    super(message, { code: 'PTR_UNHANDLED_TASK_FAILURE', cause })
  }
}

/**
 * Turns anything a task threw into a readable Error: `throw 'x'`, `throw 42`, `throw { code: 1 }`,
 * `throw undefined` all arrive as an Error whose message shows what was thrown.
 */
export function toError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown
  if (thrown !== null && typeof thrown === 'object' && typeof (thrown as { message?: unknown }).message === 'string') {
    // An Error from another realm (vm context, worker) or an error-like object: keep its message.
    const error = new Error((thrown as { message: string }).message)
    const name = (thrown as { name?: unknown }).name
    if (typeof name === 'string') error.name = name
    return Object.assign(error, { thrown })
  }
  const shown = typeof thrown === 'string' ? thrown : inspect(thrown, { depth: 3, breakLength: Infinity })
  return Object.assign(new Error(`non-Error thrown: ${shown}`), { thrown })
}

/**
 * How an attempt that ended with `error` is spoken of: "crashed" (its worker or process died),
 * "timed out", or "failed". By the error's name, so it also holds for a rebuilt or recorded error.
 */
export function attemptEnded(error: { readonly name?: string } | undefined): 'crashed' | 'timed out' | 'failed' {
  return error?.name === 'CrashedError' ? 'crashed' : error?.name === 'TaskRunTimeoutError' ? 'timed out' : 'failed'
}
