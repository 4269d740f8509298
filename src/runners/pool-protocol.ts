import type { LogEvent, TaskRunInfo } from '../engine/events.ts'
import type { ErrorRecord } from '../engine/error-wire.ts'
import type { State } from '../engine/states.ts'
/**
 * The wire between a pool runner (main side) and its workers (src/runners/pool-worker.ts).
 * Only plain data crosses: task keys, arguments, results, error records (src/engine/error-wire.ts),
 * log lines and the
 * states of runs nested inside a worker's run.
 */

/** The workerpool method names the worker registers. */
export const METHOD_RUN = 'ptr.run'
export const METHOD_PROBE = 'ptr.probe'
/** Imports the run's bundles in a worker started early, before any task of theirs is asked for. */
export const METHOD_PRELOAD = 'ptr.preload'

/** One attempt of one task run, as sent to a worker. */
export interface RunRequest {
  /** The task's registry key: `<module file URL>#<name>`. */
  readonly key: string
  readonly args: unknown[]
  readonly taskRun: { readonly id: string; readonly name: string; readonly taskName: string; readonly attempt: number; readonly stateName: string }
  readonly flowRun: { readonly id: string; readonly name: string; readonly flowName: string; readonly stateName: string } | undefined
}

/**
 * What a worker sends back for requests, one outcome per request, in order: for a batch, the first
 * ones as OutcomesMessage events while it runs, the rest as the result.
 * The worker runs a batch one request after another (one run per worker at a time). A runner sends
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

/**
 * Outcomes of a batch's next runs, in order, sent as an event while the batch goes on (see
 * `METHOD_RUN`); `exiting` when the worker is exiting (a run called process.exit).
 */
export interface OutcomesMessage {
  readonly type: 'ptr.outcomes'
  readonly outcomes: RunOutcome[]
  readonly exiting: boolean
}

/** How often, at most, a worker sends the outcomes of the batch it is running (ms). */
export const OUTCOMES_EVERY_MS = 5

/**
 * How long a run stopped by a timeout or a cancellation has, after its signal aborts inside the
 * worker, to end (kill what it spawned, close what it opened) before its worker is terminated.
 */
export const ABORT_GRACE_MS = 500

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
