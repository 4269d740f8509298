import type { LogEvent, TaskRunInfo } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
/**
 * The wire between a pool runner (main side) and its workers (src/runners/pool-worker.ts).
 * Only plain data crosses: task keys, arguments, results, error records, log lines and the
 * states of runs nested inside a worker's run.
 */

/** The workerpool method names the worker registers. */
export const METHOD_RUN = 'ptr.run'
export const METHOD_PROBE = 'ptr.probe'

/** One attempt of one task run, as sent to a worker. */
export interface RunRequest {
  /** The task's registry key: `<module file URL>#<name>`. */
  readonly key: string
  readonly args: unknown[]
  readonly taskRun: { readonly id: string; readonly name: string; readonly taskName: string; readonly attempt: number; readonly stateName: string }
  readonly flowRun: { readonly id: string; readonly name: string; readonly flowName: string; readonly stateName: string } | undefined
}

/**
 * What a worker sends back for a batch of requests, one outcome per request, in order. The
 * worker runs a batch one request after another (one run per worker at a time). A runner sends
 * several small runs in one message when their task is known to be quick; see PoolTaskRunner.
 */
export type RunResult =
  /** With `state`, the task returned that state (Completed(), Failed(), ...), and `value` is its result. */
  | { readonly ok: true; readonly value: unknown; readonly state?: StateRecord }
  | { readonly ok: false; readonly error: ErrorRecord }
export type RunOutcome = RunResult & {
  /** How long the run took in the worker, in ms: the runner batches tasks that take under 1 ms. */
  readonly ms: number
}

/** A thrown value made safe to cross: always an Error's parts, never the thrown object itself. */
export interface ErrorRecord {
  readonly name: string
  readonly message: string
  readonly stack: string | undefined
  /** `code` of the error, if it had a string one. */
  readonly code: string | undefined
  /** Why ptr (not the task) failed the run in the worker: the task was not found, or its value could not be sent. */
  readonly ptr?: 'not-found' | 'return-value'
  /** The thrown value when it was not an Error and could be cloned (a string, number, plain object). */
  readonly thrown?: unknown
  readonly hasThrown?: boolean
}

/** Answer to a probe: can this worker find the task with this key? */
export interface ProbeAnswer {
  readonly found: boolean
  /** Why not, when not found: the module failed to load, or it has no such task at top level. */
  readonly reason?: string
}

/** A log line from inside a worker, sent with workerpool's workerEmit (never through stdout). */
export interface LogMessage {
  readonly type: 'ptr.log'
  readonly event: LogEvent
}

/** A state as plain data: no result (it stays in the worker), the error as a record. */
export type StateRecord = Omit<State, 'result' | 'error'> & { readonly error?: ErrorRecord }

/**
 * A state change of a run nested inside a worker's run (a submit or a call from inside a task
 * runs in place, in the worker), so views and reports on the main side see it like any run.
 */
export interface StateMessage {
  readonly type: 'ptr.state'
  readonly taskRun: Omit<TaskRunInfo, 'state'>
  readonly state: StateRecord
  readonly previous: StateRecord | undefined
}

/** The module URL part of a task key. */
export const keyModuleUrl = (key: string): string => key.slice(0, key.lastIndexOf('#'))
