import { PtrError } from '../errors.ts'
import type { RunContext } from './context.ts'
import { currentContext } from './context.ts'
import type { PrefectFuture, PrefectFutureList } from './future.ts'
import { definingModule, registerTask } from './registry.ts'
import type { Resolvable, Unmapped } from './resolve.ts'
import type { RetryOptions } from './retry.ts'
import { validateRetryOptions } from './retry.ts'
import type { TaskRunner } from '../runners/task-runner.ts'
import { inlineRunner } from '../runners/task-runner.ts'
import type { PrefectDistributedFuture } from '../queue/distributed-future.ts'
import { delayRun } from '../queue/delay.ts'

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

const TASK = Symbol.for('ptr.task')

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
  delay(...args: ResolvableArgs<Args>): PrefectDistributedFuture<R>
  /** A copy of this task with other options, or with `waitFor` for its next calls. */
  withOptions(options: TaskOptions<Args> & CallOptions): Task<Args, R>
  /** @internal the name of a new run */
  runName(args: readonly unknown[]): string
}
export type AnyTask = Task<any[], any>

export const isTask = (value: unknown): value is AnyTask =>
  typeof value === 'function' && (value as { [TASK]?: unknown })[TASK] === true

const runCounters = new Map<string, number>()

function describe(value: unknown): string {
  return `\`${typeof value === 'string' ? JSON.stringify(value) : String(value)}\` (${typeof value})`
}

function validateOptions(name: string, options: TaskOptions<any[]>): void {
  validateRetryOptions(`task '${name}'`, 'PTR_INVALID_TASK_OPTION', options)
}

/** The task runner that `submit()`/`map()` use from here: the flow's, or the in-place one inside a task. */
function contextRunner(task: AnyTask, method: string): { runner: TaskRunner; context: RunContext } {
  const context = currentContext()
  if (!context?.taskRunner) {
    throw new PtrError(
      `${task.name}.${method}() was called outside a flow; call it inside a flow function, or give it to a runner: runner.${method}(${task.name}, ...)`,
      { code: 'PTR_NO_FLOW_RUN' },
    )
  }
  return { runner: context.taskRunner, context }
}

const taskMethods: ThisType<AnyTask> & Pick<AnyTask, 'submit' | 'map' | 'delay' | 'withOptions' | 'runName'> = {
  submit(...args) {
    return contextRunner(this, 'submit').runner.submit(this, args, this.callOptions)
  },
  map(...args) {
    return contextRunner(this, 'map').runner.map(this, args, this.callOptions)
  },
  delay(...args) {
    return delayRun(this, args)
  },
  withOptions(options) {
    const { waitFor, ...taskOptions } = options
    const merged = { ...this.options, ...taskOptions }
    validateOptions(merged.name ?? this.name, merged)
    return makeTask(this.fn, merged, this.key, waitFor === undefined ? this.callOptions : { waitFor })
  },
  runName(args) {
    const { taskRunName } = this.options
    if (typeof taskRunName === 'function') {
      try {
        return String(taskRunName(...args))
      } catch {
        // A name function that throws on a future argument must not stop the run; fall through.
      }
    } else if (typeof taskRunName === 'string') {
      return taskRunName.replace(/\{(\d+)\}/g, (whole, index: string) => {
        const value = args[Number(index)]
        return value === undefined ? whole : typeof value === 'object' && value !== null ? '…' : String(value)
      })
    }
    const n = runCounters.get(this.key) ?? 0
    runCounters.set(this.key, n + 1)
    return `${this.name}-${n}`
  },
}
Object.setPrototypeOf(taskMethods, Function.prototype)

function makeTask(fn: (...args: any[]) => unknown, options: TaskOptions<any[]>, key: string, callOptions: CallOptions): AnyTask {
  const task = function (this: unknown, ...args: unknown[]) {
    return inlineRunner.submit(task, args, task.callOptions).result()
  } as unknown as AnyTask
  Object.defineProperties(task, {
    [TASK]: { value: true },
    name: { value: options.name ?? (fn.name || 'task') },
    key: { value: key },
    options: { value: Object.freeze({ ...options }) },
    callOptions: { value: Object.freeze({ ...callOptions }) },
    fn: { value: fn },
  })
  Object.setPrototypeOf(task, taskMethods)
  return task
}

/**
 * Defines a task. Define tasks at the top level of a module (and export them) so that thread and
 * process workers, which import the module, can find them.
 *
 * @example
 * export const double = task({ name: 'double', retries: 2 }, async (n: number) => n * 2)
 */
export function task<Args extends unknown[], R>(fn: (...args: Args) => R): Task<Args, Awaited<R>>
export function task<Args extends unknown[], R>(options: TaskOptions<NoInfer<Args>>, fn: (...args: Args) => R): Task<Args, Awaited<R>>
export function task(a: unknown, b?: unknown): AnyTask {
  const [options, fn] = (typeof a === 'function' ? [{}, a] : [a ?? {}, b]) as [TaskOptions<any[]>, (...args: any[]) => unknown]
  if (typeof fn !== 'function') {
    throw new PtrError(`task(): expected a function to run, got ${describe(fn)}; write task({ name }, async (x) => ...)`, {
      code: 'PTR_INVALID_TASK',
      exitCode: 2,
    })
  }
  const name = options.name ?? (fn.name || 'task')
  validateOptions(name, options)
  return registerTask(definingModule(), name, (key) => makeTask(fn, { ...options, name }, key, {}))
}
