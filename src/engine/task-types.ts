import type { PrefectFuture, PrefectFutureList } from './future.ts'
import type { Resolvable, Unmapped } from './resolve.ts'
import type { RetryOptions } from './retry.ts'

/**
 * The shape of a task: what \`task()\` returns. Kept apart from task.ts (which builds tasks and needs
 * the runners' base) so task runs, runners and the registry can name tasks without importing it.
 */

export interface TaskOptions<Args extends unknown[] = unknown[]> extends RetryOptions {
  /** The task's name, shown in output and used in its key. @default the function's name */
  name?: string
  description?: string
  /** Retry only when this returns true for the error. @default retry on every error */
  retryCondition?: (error: Error, attempt: number) => boolean | Promise<boolean>
  tags?: readonly string[]
  /**
   * Name for each run: a function of the arguments, or a string where `{0}`, `{1}`, ... stand for
   * the arguments. @default `<name>-<n>`
   */
  taskRunName?: string | ((...args: Args) => string)
}

/** Options for one call, given with `task.withOptions({ waitFor })`. */
export interface CallOptions {
  /** Runs that must end before this one starts; a failed one makes this run NotReady. */
  waitFor?: readonly PrefectFuture[]
}

/** Arguments of a call where any value may be a future of it. */
export type ResolvableArgs<Args extends unknown[]> = { [K in keyof Args]: Resolvable<Args[K]> }
/** Arguments of `map()`: an iterable of values per mapped argument, or `unmapped(value)`. */
export type MapArgs<Args extends unknown[]> = {
  [K in keyof Args]: Iterable<Resolvable<Args[K]>> | Unmapped<Resolvable<Args[K]>> | (Args[K] extends string ? Args[K] : never)
}

export const TASK: unique symbol = Symbol.for('ptr.task') as never

export interface Task<Args extends unknown[] = any[], R = unknown> {
  /** Runs the task now, in this process, as a tracked task run; returns its value or throws. */
  (...args: ResolvableArgs<Args>): Promise<R>
  readonly [TASK]: true
  readonly name: string
  /** Identifies the task in every worker: `<module URL>#<name>`. */
  readonly key: string
  readonly options: Readonly<TaskOptions<Args>>
  readonly callOptions: Readonly<CallOptions>
  readonly fn: (...args: Args) => R | Promise<R>
  /** Starts a run on the current flow's task runner and returns its future at once. */
  submit(...args: ResolvableArgs<Args>): PrefectFuture<R>
  /** One run per element of the iterable arguments (zipped, in input order). */
  map(...args: MapArgs<Args>): PrefectFutureList<R>
  /**
   * Puts one run on the task-worker queue (`ptr worker serve`) and returns its future at once;
   * works inside or outside a flow. See docs/task-workers.md.
   */
  delay(...args: ResolvableArgs<Args>): PrefectFuture<R>
  /** A copy of this task with other options, or with `waitFor` for its next calls. */
  withOptions(options: TaskOptions<Args> & CallOptions): Task<Args, R>
  /** @internal the name of a new run */
  runName(args: readonly unknown[]): string
}
export type AnyTask = Task<any[], any>

export const isTask = (value: unknown): value is AnyTask =>
  typeof value === 'function' && (value as { [TASK]?: unknown })[TASK] === true
