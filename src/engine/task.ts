import { PtrError } from '../errors.ts'
import type { RunContext } from './context.ts'
import { currentContext } from './context.ts'
import type { TaskSubmitter } from './context.ts'
import { provider } from './providers.ts'
import { definingModule, registerTask } from './registry.ts'
import { validateRetryOptions } from './retry.ts'
import { validateResultOptions } from './results.ts'
import { inlineRunner } from './task-runner.ts'
import { TASK } from './task-types.ts'
import type { AnyTask, CallOptions, StateTask, Task, TaskOptions } from './task-types.ts'
import type { PrefectFuture } from './future.ts'
import type { ResolvedHooks } from './hooks.ts'
import { resolveHooks } from './hooks.ts'
import type { ValueOf } from './state-values.ts'
import { asStateValue } from './state-values.ts'
import type { State } from './states.ts'

const runCounters = new Map<string, number>()

function describe(value: unknown): string {
  return `\`${typeof value === 'string' ? JSON.stringify(value) : String(value)}\` (${typeof value})`
}

/** Checks a task's options; returns its hooks (undefined when it has none). */
function validateOptions(name: string, options: TaskOptions<any[]>): ResolvedHooks | undefined {
  validateRetryOptions(`task '${name}'`, 'PTR_INVALID_TASK_OPTION', options)
  validateResultOptions(`task '${name}'`, 'PTR_INVALID_TASK_OPTION', options)
  return resolveHooks(`task '${name}'`, 'PTR_INVALID_TASK_OPTION', options)
}

/** Resolves to the run's final state, counting a failure as handled (its caller looked at it). */
function finalState(future: PrefectFuture): Promise<State> {
  return future.wait().then((state) => {
    future.outcome(state, { raiseOnFailure: false })
    return asStateValue(state)
  })
}

/** The task runner that `submit()`/`map()` use from here: the flow's, or the in-place one inside a task. */
function contextRunner(task: AnyTask, method: string): { runner: TaskSubmitter; context: RunContext } {
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
    const future = contextRunner(this, 'submit').runner.submit(this, args, this.callOptions)
    return (this.callOptions.returnState ? finalState(future) : future) as PrefectFuture
  },
  map(...args) {
    return contextRunner(this, 'map').runner.map(this, args, this.callOptions)
  },
  delay(...args) {
    return provider('delay')(this, args) as ReturnType<AnyTask['delay']>
  },
  withOptions(options: TaskOptions<any[]> & CallOptions) {
    const { waitFor, returnState, ...taskOptions } = options
    const merged = { ...this.options, ...taskOptions }
    const hooks = validateOptions(merged.name ?? this.name, merged)
    const callOptions: CallOptions = { ...this.callOptions }
    if (waitFor !== undefined) callOptions.waitFor = waitFor
    if (returnState !== undefined) callOptions.returnState = returnState
    return makeTask(this.fn, merged, this.key, callOptions, hooks) as AnyTask & StateTask
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

function makeTask(fn: (...args: any[]) => unknown, options: TaskOptions<any[]>, key: string, callOptions: CallOptions, hooks: ResolvedHooks | undefined): AnyTask {
  const task = function (this: unknown, ...args: unknown[]) {
    const future = inlineRunner.submit(task, args, task.callOptions)
    return task.callOptions.returnState ? finalState(future) : future.result()
  } as unknown as AnyTask
  Object.defineProperties(task, {
    [TASK]: { value: true },
    name: { value: options.name ?? (fn.name || 'task') },
    key: { value: key },
    options: { value: Object.freeze({ ...options }) },
    callOptions: { value: Object.freeze({ ...callOptions }) },
    fn: { value: fn },
    hooks: { value: hooks },
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
export function task<Args extends unknown[], R>(fn: (...args: Args) => R): Task<Args, ValueOf<Awaited<R>>>
export function task<Args extends unknown[], R>(options: TaskOptions<NoInfer<Args>>, fn: (...args: Args) => R): Task<Args, ValueOf<Awaited<R>>>
export function task(a: unknown, b?: unknown): AnyTask {
  const [options, fn] = (typeof a === 'function' ? [{}, a] : [a ?? {}, b]) as [TaskOptions<any[]>, (...args: any[]) => unknown]
  if (typeof fn !== 'function') {
    throw new PtrError(`task(): expected a function to run, got ${describe(fn)}; write task({ name }, async (x) => ...)`, {
      code: 'PTR_INVALID_TASK',
      exitCode: 2,
    })
  }
  const name = options.name ?? (fn.name || 'task')
  const hooks = validateOptions(name, options)
  return registerTask(definingModule(), name, (key) => makeTask(fn, { ...options, name }, key, {}, hooks))
}
