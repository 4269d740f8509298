import type { TaskRunMemo } from './result-types.ts'
import type { State } from './states.ts'

/** What renderers and reporters see of a task run. The engine's `TaskRun` implements it. */
export interface TaskRunInfo {
  readonly id: string
  readonly name: string
  readonly taskName: string
  readonly taskKey: string
  readonly flowRunId: string | undefined
  readonly tags: readonly string[]
  /** Index within a `map()` call, if the run came from one. */
  readonly mapIndex: number | undefined
  /** Identifies the `map()` call a run came from, so a view can fold its runs into one row. */
  readonly mapId: string | undefined
  readonly state: State
  /** Attempts started so far (1 on the first run, 2 after one retry, ...). */
  readonly attempt: number
  /** When the run first started Running (epoch ms), if it has. */
  readonly startTime: number | undefined
  /** What the run is known by across runs (caching, resume), when its flow run keeps results. */
  readonly memo?: TaskRunMemo | undefined
  /**
   * The task runs this run waits for, recorded when it is submitted: futures passed in its
   * arguments (at any depth) and in `waitFor`. Undefined when there are none.
   */
  readonly upstreamTaskRunIds?: readonly string[] | undefined
  /**
   * The slot of its task runner that the current attempt holds, as `<runner> <n>` (`thread 2`,
   * `concurrent 1`): read it on a Running state to know where that attempt ran. Undefined when the
   * run holds no slot (waiting, or nested inside another run's worker).
   */
  readonly slot?: string | undefined
}

export interface FlowRunInfo {
  readonly id: string
  readonly name: string
  readonly flowName: string
  readonly parentFlowRunId: string | undefined
  readonly parameters: Readonly<Record<string, unknown>>
  readonly taskRunnerName: string
  /** Tags from the `tags()` contexts around the flow call. */
  readonly tags: readonly string[]
  readonly state: State
  readonly history: readonly State[]
  /** Whether the flow run's value is to be stored (it has a result store, and `persistResult` allows it). */
  readonly persistResult?: boolean
}

export type LogLevel = 'debug' | 'info' | 'warning' | 'error'

export type RunEvent =
  | { readonly kind: 'flow-run-state'; readonly flowRun: FlowRunInfo; readonly state: State }
  | {
      readonly kind: 'task-run-state'
      readonly taskRun: TaskRunInfo
      readonly state: State
      /** The state before this one (undefined for a new run's first state). */
      readonly previous: State | undefined
    }
  | LogEvent

/** A log line of a run: console output inside it, or getRunLogger(). */
export interface LogEvent {
  readonly kind: 'log'
  readonly level: LogLevel
  readonly message: string
  readonly timestamp: number
  readonly taskRunId: string | undefined
  readonly taskRunName: string | undefined
  readonly flowRunId: string | undefined
  /** `console` when the line came from console.log/error inside a run, `logger` from getRunLogger(). */
  readonly source: 'console' | 'logger'
}

export type RunEventListener = (event: RunEvent) => void

/**
 * A minimal synchronous event bus: the engine emits, renderers and reporters listen.
 * Listeners must be cheap; they run on the engine's hot path.
 */
export class EventBus {
  #listeners: RunEventListener[] = []

  get hasListeners(): boolean {
    return this.#listeners.length > 0
  }

  on(listener: RunEventListener): () => void {
    this.#listeners = [...this.#listeners, listener]
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener)
    }
  }

  emit(event: RunEvent): void {
    for (const listener of this.#listeners) listener(event)
  }
}

const EVENTS = Symbol.for('ptr.events')
type WithBus = { [EVENTS]?: EventBus }
/**
 * The process-wide bus. Kept on globalThis so that two copies of ptr's modules (a flow file that
 * resolved the package to another path) still talk to the same listeners.
 */
export const runEvents: EventBus = ((globalThis as WithBus)[EVENTS] ??= new EventBus())

/**
 * Listens to every run event in this process (flow and task run state changes, logs).
 * @returns the function that stops listening.
 */
export const onRunEvent = (listener: RunEventListener): (() => void) => runEvents.on(listener)
