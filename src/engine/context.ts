import { formatWithOptions } from 'node:util'
import type { AsyncLocalStorage } from 'node:async_hooks'
import { contextStorage } from './context-storage.ts'
import { PtrError } from '../errors.ts'
import type { LogLevel } from './events.ts'
import { emitRunLog } from './log.ts'
import type { PrefectFuture, PrefectFutureList } from './future.ts'
import type { TaskRunOwner } from './task-run.ts'
import type { CallOptions, MapArgs, ResolvableArgs, Task } from './task-types.ts'

/**
 * What `submit()` and `map()` go to: every `TaskRunner` is one. Declared here, not as the
 * `TaskRunner` class, because that class runs attempts in this context (a type of its own keeps
 * the two modules from importing each other).
 */
export interface TaskSubmitter {
  /** Short kind name: `sequential`, `concurrent`, `thread`, `process`, `inline`, ... */
  readonly name: string
  submit<Args extends unknown[], R>(task: Task<Args, R>, args?: ResolvableArgs<Args>, options?: CallOptions): PrefectFuture<R>
  map<Args extends unknown[], R>(task: Task<Args, R>, args: MapArgs<Args>, options?: CallOptions): PrefectFutureList<R>
}

export interface RunContext {
  /**
   * The flow run this code belongs to, if any; `stateName` is its current state's name (Running,
   * Retrying, ...).
   */
  readonly flowRun: { readonly id: string; readonly name: string; readonly flowName: string; readonly stateName?: string | undefined } | undefined
  /**
   * The task run this code is, if it runs inside a task; `stateName` is its current state's name
   * (Running, or Retrying on a retry). Task workers (`ptr worker serve`) leave it unset.
   */
  readonly taskRun:
    | { readonly id: string; readonly name: string; readonly taskName: string; readonly attempt: number; readonly stateName?: string | undefined }
    | undefined
  /** Aborted when the run times out or is cancelled. Pass it to fetch(), timers, child processes. */
  readonly signal: AbortSignal
  /** Where `submit()` and `map()` called from this code go. */
  readonly taskRunner: TaskSubmitter | undefined
  /** @internal the flow run that task runs started from here report to. */
  readonly owner?: TaskRunOwner | undefined
}

const storage = contextStorage as AsyncLocalStorage<RunContext>

export const runWithContext = <A extends unknown[], T>(context: RunContext, fn: (...args: A) => T, ...args: A): T =>
  storage.run(context, fn, ...args)
export const currentContext = (): RunContext | undefined => storage.getStore()

/**
 * The context of the flow or task run this code is part of: the flow run, the task run (id, name,
 * attempt) and an AbortSignal that fires on timeout or cancellation.
 * @throws when called outside any flow or task run.
 */
export function getRunContext(): RunContext {
  const context = storage.getStore()
  if (!context) {
    throw new PtrError('getRunContext() was called outside a flow or task run; call it from inside a task or flow function.', {
      code: 'PTR_NO_RUN_CONTEXT',
    })
  }
  return context
}

export interface RunLogger {
  debug(...args: unknown[]): void
  info(...args: unknown[]): void
  warning(...args: unknown[]): void
  /** Same as {@link RunLogger.warning}. */
  warn(...args: unknown[]): void
  error(...args: unknown[]): void
}

/**
 * A logger whose lines are attributed to the current task run (or flow run) and shown by the
 * renderer, also when the task runs in a worker thread or child process.
 * @throws when called outside any flow or task run.
 */
export function getRunLogger(): RunLogger {
  const context = getRunContext()
  const log = (level: LogLevel) => (...args: unknown[]) => emitLog(context, level, formatArgs(args), 'logger')
  return { debug: log('debug'), info: log('info'), warning: log('warning'), warn: log('warning'), error: log('error') }
}

export { setLogSink } from './log.ts'
export type { LogSink } from './log.ts'

export function emitLog(context: RunContext, level: LogLevel, message: string, source: 'console' | 'logger'): void {
  emitRunLog({ taskRunId: context.taskRun?.id, taskRunName: context.taskRun?.name, flowRunId: context.flowRun?.id }, level, message, source)
}

export const formatArgs = (args: unknown[]): string => formatWithOptions({ colors: false }, ...args)

const CONSOLE_METHODS = [
  ['log', 'info'],
  ['info', 'info'],
  ['debug', 'debug'],
  ['warn', 'warning'],
  ['error', 'error'],
] as const

/**
 * Routes console output made inside a flow or task run to the run's log (attributed to the run);
 * output from anywhere else passes through. Returns the function that restores the console.
 */
export function captureConsole(): () => void {
  const originals = CONSOLE_METHODS.map(([method]) => [method, console[method]] as const)
  for (const [method, level] of CONSOLE_METHODS) {
    const original = console[method]
    console[method] = (...args: unknown[]) => {
      const context = storage.getStore()
      if (context) emitLog(context, level, formatArgs(args), 'console')
      else original.apply(console, args)
    }
  }
  return () => {
    for (const [method, original] of originals) console[method] = original
  }
}
