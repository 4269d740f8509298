import type { TaskRunInfo } from './events.ts'
import type { PrefectFuture, PrefectFutureList } from './future.ts'
import type { HookOptions, ResolvedHooks } from './hooks.ts'
import type { AllowFailure, Resolvable, Unmapped } from './resolve.ts'
import type { TaskResultOptions } from './result-types.ts'
import type { RetryOptions } from './retry.ts'
import type { State } from './states.ts'

/**
 * The shape of a task: what \`task()\` returns. Kept apart from task.ts (which builds tasks and needs
 * the runners' base) so task runs, runners and the registry can name tasks without importing it.
 */

export interface TaskOptions<Args extends unknown[] = unknown[]> extends RetryOptions, TaskResultOptions<Args>, HookOptions<Task<Args, any>, TaskRunInfo> {
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

/** What `waitFor` accepts: futures, `allowFailure(...)` of them, and lists of either (plain values are ignored, as in Prefect). */
export type WaitForItem = PrefectFuture | AllowFailure<unknown> | readonly WaitForItem[]

/** Options for one call, given with `task.withOptions({ waitFor, returnState })`. */
export interface CallOptions {
  /**
   * Runs that must end before this one starts; a failed one makes this run NotReady, unless it is
   * wrapped in `allowFailure()`. @default none
   */
  waitFor?: readonly WaitForItem[]
  /**
   * Calls and `submit()` resolve to the run's final State instead of its value, and never throw
   * for a failed run (Prefect's `return_state=True`). @default false
   */
  returnState?: boolean
}

/** Arguments of a call where any value may be a future of it. */
export type ResolvableArgs<Args extends unknown[]> = { [K in keyof Args]: Resolvable<Args[K]> }
/**
 * Arguments of `map()`: an iterable of values per mapped argument (or a future of one, or
 * `allowFailure()` of one), or `unmapped(value)`.
 */
export type MapArgs<Args extends unknown[]> = {
  [K in keyof Args]:
    | Iterable<Resolvable<Args[K]>>
    | PrefectFuture<Iterable<Args[K]>>
    | Unmapped<Resolvable<Args[K]>>
    | (Args[K] extends string ? Args[K] : never)
    | (Error extends Args[K] ? AllowFailure<any> : never)
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
  withOptions(options: TaskOptions<Args> & CallOptions & { returnState: true }): StateTask<Args, R>
  withOptions(options: TaskOptions<Args> & CallOptions & { returnState?: false }): Task<Args, R>
  /** @internal the name of a new run */
  runName(args: readonly unknown[]): string
  /** @internal the task's hooks, or undefined when it has none */
  readonly hooks: ResolvedHooks | undefined
}

/**
 * A task whose calls return final states (`t.withOptions({ returnState: true })`): `await t(x)` and
 * `await t.submit(x)` give the run's State, Completed or not, and never throw for a failed run.
 */
export interface StateTask<Args extends unknown[] = any[], R = unknown> extends Omit<Task<Args, R>, 'submit' | 'withOptions'> {
  /** Runs the task now, in this process, and resolves to its final state. */
  (...args: ResolvableArgs<Args>): Promise<State<R>>
  /** Starts a run on the current flow's task runner and resolves to its final state. */
  submit(...args: ResolvableArgs<Args>): Promise<State<R>>
  withOptions(options: TaskOptions<Args> & CallOptions & { returnState?: true }): StateTask<Args, R>
  withOptions(options: TaskOptions<Args> & CallOptions & { returnState: false }): Task<Args, R>
}
export type AnyTask = Task<any[], any>

export const isTask = (value: unknown): value is AnyTask =>
  typeof value === 'function' && (value as { [TASK]?: unknown })[TASK] === true
