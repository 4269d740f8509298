import { randomUUID } from 'node:crypto'
import { CancelledError, CrashedError, TaskRunTimeoutError, UpstreamTaskRunError, toError } from '../errors.ts'
import type { FlowRunInfo, TaskRunInfo } from './events.ts'
import { runEvents } from './events.ts'
import { PrefectFuture } from './future.ts'
import type { Upstream } from './resolve.ts'
import { collectUpstreams, substituteResults } from './resolve.ts'
import { retryDelayMs, withTimeLimit } from './retry.ts'
import type { State } from './states.ts'
import * as S from './states.ts'
import { isSettled } from './states.ts'
import type { AnyTask } from './task-types.ts'

/**
 * A random UUID as a flat string. `crypto.randomUUID()` builds its result by concatenation, which
 * V8 keeps as a tree of ~14 cons strings (≈450 bytes per id): flattening it once saves that for
 * every run a 100,000-run map keeps.
 */
export function newRunId(): string {
  const id = randomUUID()
  id.charCodeAt(0)
  return id
}

/** What a task run reports to the flow run that owns it. */
export interface TaskRunOwner {
  readonly info: FlowRunInfo
  /** Set once runs started under this owner must not run (its flow run was cancelled or timed out): they end Cancelled at once. */
  readonly stopped?: Error | undefined
  taskRunCreated(run: TaskRun): void
  taskRunSettled(run: TaskRun): void
  taskRunHandled(run: TaskRun): void
}

/**
 * Where a task run's attempts execute. Runners implement it; the engine drives states, retries,
 * timeouts and cancellation around it.
 */
export interface AttemptExecutor {
  /** Waits for a free slot; returns nothing when one was free at once. */
  acquire(run: TaskRun): Promise<void> | void
  /** Gives back the run's slot; does nothing if the run holds none. */
  release(run: TaskRun): void
  /**
   * Runs one attempt with resolved `args`; rejects with the task's error, or a CrashedError when
   * the infrastructure under it died. `run.signal` aborts on timeout or cancellation.
   */
  execute(run: TaskRun, args: unknown[]): Promise<unknown>
  /** Called once when the run has settled. */
  runSettled(run: TaskRun): void
  /**
   * True when attempts wait somewhere else before they run (a task-worker queue): the run is then
   * Scheduled when handed over, and `execute` moves it to Running when a worker starts it.
   */
  readonly marksRunning?: boolean
}

/** One run of a task: its state, attempts and outcome. Created by `submit()`, `map()` or a direct call. */
export class TaskRun implements TaskRunInfo {
  readonly id: string = newRunId()
  readonly name: string
  readonly task: AnyTask
  readonly owner: TaskRunOwner | undefined
  readonly executor: AttemptExecutor
  readonly mapIndex: number | undefined
  readonly mapId: string | undefined
  state: State
  attempt = 0
  startTime: number | undefined
  /** The arguments as given, futures and all. Dropped once the run has settled. */
  args: unknown[] | undefined
  readonly waitFor: readonly PrefectFuture[] | undefined
  handled = false
  /** Whether the run holds one of its executor's slots right now. */
  holdsSlot = false
  /** Set when cancellation was asked for. */
  cancelError: Error | undefined
  /** Why the current attempt was aborted (timeout or cancellation), if it was. */
  #abortReason: Error | undefined
  /** Created only when someone reads `signal`: most tasks never do, and AbortControllers are costly. */
  #controller: AbortController | undefined
  #settled: Promise<State> | undefined
  #resolveSettled: ((state: State) => void) | undefined
  #callbacks: (() => void)[] | undefined
  #future: TaskRunFuture<unknown> | undefined

  constructor(
    task: AnyTask,
    args: unknown[],
    executor: AttemptExecutor,
    options: { owner: TaskRunOwner | undefined; waitFor?: readonly PrefectFuture[] | undefined; mapIndex?: number; mapId?: string },
  ) {
    this.task = task
    this.args = args
    this.executor = executor
    this.owner = options.owner
    this.waitFor = options.waitFor
    this.mapIndex = options.mapIndex
    this.mapId = options.mapId
    this.name = task.runName(args)
    this.state = S.Pending()
    options.owner?.taskRunCreated(this)
    if (runEvents.hasListeners) runEvents.emit({ kind: 'task-run-state', taskRun: this, state: this.state, previous: undefined })
  }

  get taskName(): string {
    return this.task.name
  }
  get taskKey(): string {
    return this.task.key
  }
  get tags(): readonly string[] {
    return this.task.options.tags ?? []
  }
  get flowRunId(): string | undefined {
    return this.owner?.info.id
  }
  get future(): TaskRunFuture<unknown> {
    return (this.#future ??= new TaskRunFuture(this))
  }

  /** The current attempt's signal: aborted on timeout or cancellation. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#abortReason) this.#controller.abort(this.#abortReason)
    }
    return this.#controller.signal
  }

  /** Moves the run to `state`. A settled run never changes again; later calls are ignored. */
  setState(state: State): void {
    const previous = this.state
    if (isSettled(previous)) return
    this.state = state
    if (state.type === 'Running' && this.startTime === undefined) this.startTime = state.timestamp
    if (runEvents.hasListeners) runEvents.emit({ kind: 'task-run-state', taskRun: this, state, previous })
    if (isSettled(state)) {
      this.args = undefined
      this.#controller = undefined
      this.executor.release(this)
      this.executor.runSettled(this)
      this.#resolveSettled?.(state)
      if (this.#callbacks) for (const callback of this.#callbacks) callback()
      this.#callbacks = undefined
      this.owner?.taskRunSettled(this)
    }
  }

  settled(): Promise<State> {
    if (isSettled(this.state)) return Promise.resolve(this.state)
    return (this.#settled ??= new Promise((resolve) => (this.#resolveSettled = resolve)))
  }

  onSettled(callback: () => void): void {
    if (isSettled(this.state)) callback()
    else (this.#callbacks ??= []).push(callback)
  }

  markHandled(): void {
    if (this.handled) return
    this.handled = true
    this.owner?.taskRunHandled(this)
  }

  /**
   * Stops the run: it ends Cancelled at once, whatever it was doing, and its slot is freed.
   * A running attempt sees its signal abort; pool runners terminate its worker.
   */
  cancel(error: Error): void {
    if (isSettled(this.state) || this.cancelError) return
    this.cancelError = error
    this.abortAttempt(error)
    this.setState(S.Cancelled(error))
  }

  /** Aborts the current attempt's signal with `error` (a timeout or a cancellation). */
  abortAttempt(error: Error): void {
    this.#abortReason = error
    this.#controller?.abort(error)
  }

  newAttempt(): void {
    this.attempt++
    this.#abortReason = undefined
    this.#controller = undefined
  }
}

/** The future of a task run in this process. */
export class TaskRunFuture<R> extends PrefectFuture<R> {
  readonly #run: TaskRun
  constructor(run: TaskRun) {
    super()
    this.#run = run
  }
  get taskRunId(): string {
    return this.#run.id
  }
  get state(): State<R> {
    return this.#run.state as State<R>
  }
  /** The run's name, as shown in the run's output. */
  get taskRunName(): string {
    return this.#run.name
  }
  protected settled(): Promise<State<R>> {
    return this.#run.settled() as Promise<State<R>>
  }
  protected markHandled(): void {
    this.#run.markHandled()
  }
  addDoneCallback(callback: (future: this) => void): void {
    this.#run.onSettled(() => callback(this))
  }
}

function describeUpstream(future: PrefectFuture): string {
  const name = (future as { taskRunName?: string }).taskRunName
  return name ? `'${name}' (${future.taskRunId})` : future.taskRunId
}

async function shouldRetry(run: TaskRun, error: Error): Promise<boolean> {
  const { retries = 0 } = run.task.options
  if (run.attempt > retries || run.cancelError) return false
  return retryAllowed(run.task, error, run.attempt)
}

/**
 * Whether failed attempt `attempt` of `task` may be retried, retries left aside: not when the
 * error says another attempt would fail the same way (a value that cannot cross), nor when the
 * task's `retryCondition` says no (or throws). Task workers decide with it too.
 */
export async function retryAllowed(task: AnyTask, error: Error, attempt: number): Promise<boolean> {
  if ((error as { retryable?: unknown }).retryable === false) return false
  const { retryCondition } = task.options
  if (!retryCondition) return true
  try {
    return Boolean(await retryCondition(error, attempt))
  } catch {
    return false
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Drives a task run to a settled state: waits for upstreams, resolves futures in its arguments,
 * takes a slot, runs attempts with timeouts and retries. Never rejects. Cancellation settles the
 * run from outside (see `TaskRun.cancel`), so after every await a settled run just stops here.
 * One coroutine per run, and no await where nothing needs waiting for: it is the hot path.
 */
export async function driveTaskRun(run: TaskRun): Promise<void> {
  const executor = run.executor
  try {
    let args = run.args ?? []
    let upstreams: Upstream[] | undefined
    for (const arg of args) if (typeof arg === 'object' && arg !== null) collectUpstreams(arg, (upstreams ??= []))
    if (run.waitFor) for (const future of run.waitFor) (upstreams ??= []).push({ future, allowFailure: false })
    if (upstreams && upstreams.length > 0) {
      await Promise.all(upstreams.map((u) => u.future.wait()))
      if (isSettled(run.state)) return
      const blocked = upstreams.find(
        ({ future: { state }, allowFailure }) =>
          !(state.type === 'Completed' || (allowFailure && state.type !== 'Cancelled' && state.name !== 'NotReady')),
      )
      if (blocked) {
        const { state } = blocked.future
        run.setState(
          S.NotReady(
            new UpstreamTaskRunError(
              `upstream task run ${describeUpstream(blocked.future)} ended ${state.name}${state.error ? `: ${state.error.message}` : ''}; '${run.name}' did not run`,
              blocked.future.taskRunId,
              state.error,
            ),
          ),
        )
        return
      }
      // Passing a failure on through allowFailure() is handling it: it no longer fails the flow.
      for (const upstream of upstreams) if (upstream.allowFailure) upstream.future.outcome(upstream.future.state, { raiseOnFailure: false })
      args = substituteResults(args) as unknown[]
    }
    const { timeoutSeconds } = run.task.options
    for (;;) {
      const waiting = executor.acquire(run)
      if (waiting) await waiting
      if (isSettled(run.state)) return
      run.newAttempt()
      run.setState(executor.marksRunning ? S.makeState('Scheduled') : S.Running(run.attempt === 1 ? 'Running' : 'Retrying'))
      let error: Error
      try {
        const value = await (timeoutSeconds === undefined ? executor.execute(run, args) : attemptWithTimeout(run, args, timeoutSeconds))
        run.setState(S.Completed(value))
        return
      } catch (thrown) {
        error = toError(thrown)
      }
      if (isSettled(run.state)) return
      const failure =
        error instanceof TaskRunTimeoutError
          ? S.Failed(error, 'TimedOut')
          : error instanceof CrashedError
            ? S.Crashed(error)
            : error instanceof CancelledError
              ? S.Cancelled(error)
              : S.Failed(error)
      if (failure.type === 'Cancelled' || !(await shouldRetry(run, error))) {
        run.setState(failure)
        return
      }
      const delay = retryDelayMs(run.task.options, run.attempt)
      run.setState(S.AwaitingRetry(delay, error))
      // Give the slot back while waiting, so a retry delay does not hold up other runs.
      executor.release(run)
      if (delay > 0) await sleep(delay)
      if (isSettled(run.state)) return
    }
  } catch (error) {
    run.setState(S.Crashed(new CrashedError(`ptr failed while running '${run.name}': ${toError(error).message}`, error)))
  } finally {
    executor.release(run)
  }
}

/** Runs one attempt against the deadline: past it, the attempt's signal aborts and the run times out. */
function attemptWithTimeout(run: TaskRun, args: unknown[], timeoutSeconds: number): Promise<unknown> {
  return withTimeLimit(run.executor.execute(run, args), timeoutSeconds, () => {
    const error = new TaskRunTimeoutError(`'${run.name}' timed out after ${timeoutSeconds} s`)
    run.abortAttempt(error)
    return error
  })
}
