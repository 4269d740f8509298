import { randomUUID } from 'node:crypto'
import { CancelledError, CrashedError, TaskRunTimeoutError, UpstreamTaskRunError, toError } from '../errors.ts'
import type { FlowRunInfo, TaskRunInfo } from './events.ts'
import { runEvents } from './events.ts'
import { PrefectFuture } from './future.ts'
import type { Upstream } from './resolve.ts'
import { collectUpstreams, substituteResults } from './resolve.ts'
import type { State } from './states.ts'
import * as S from './states.ts'
import { isSettled } from './states.ts'
import type { AnyTask } from './task.ts'

/** What a task run reports to the flow run that owns it. */
export interface TaskRunOwner {
  readonly info: FlowRunInfo
  taskRunCreated(run: TaskRun): void
  taskRunSettled(run: TaskRun): void
  taskRunHandled(run: TaskRun): void
}

/**
 * Where a task run's attempts execute. Runners implement it; the engine drives states, retries,
 * timeouts and cancellation around it.
 */
export interface AttemptExecutor {
  /** Waits for a free slot; resolves at once when the runner has no limit. */
  acquire(run: TaskRun): Promise<void> | void
  /** Gives back the run's slot; does nothing if the run holds none. */
  release(run: TaskRun): void
  /** Runs one attempt with resolved `args`; rejects with the task's error, or a CrashedError. */
  execute(run: TaskRun, args: unknown[], signal: AbortSignal): Promise<unknown>
}

let sequence = 0

/** One run of a task: its states, attempts and outcome. Created by `submit()`, `map()` or a direct call. */
export class TaskRun implements TaskRunInfo {
  readonly id: string = randomUUID()
  readonly name: string
  readonly task: AnyTask
  readonly owner: TaskRunOwner | undefined
  readonly mapIndex: number | undefined
  readonly mapId: string | undefined
  state: State
  readonly history: State[]
  attempt = 0
  /** The arguments as given, futures and all. Dropped once the run has started. */
  args: unknown[] | undefined
  readonly waitFor: readonly PrefectFuture[] | undefined
  handled = false
  /** Whether the run holds one of its runner's slots right now. */
  holdsSlot = false
  /** Set when cancellation was asked for; every wait point checks it. */
  cancelError: Error | undefined
  #interrupt: ((error: Error) => void) | undefined
  #controller: AbortController | undefined
  #settled: Promise<State> | undefined
  #resolveSettled: ((state: State) => void) | undefined
  #callbacks: (() => void)[] | undefined
  #future: TaskRunFuture<unknown> | undefined

  constructor(
    task: AnyTask,
    args: unknown[],
    options: { owner: TaskRunOwner | undefined; waitFor?: readonly PrefectFuture[] | undefined; mapIndex?: number; mapId?: string },
  ) {
    this.task = task
    this.args = args
    this.owner = options.owner
    this.waitFor = options.waitFor
    this.mapIndex = options.mapIndex
    this.mapId = options.mapId
    this.name = task.runName(args)
    this.state = S.Pending()
    this.history = [this.state]
    options.owner?.taskRunCreated(this)
    if (runEvents.hasListeners) runEvents.emit({ kind: 'task-run-state', taskRun: this, state: this.state })
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

  setState(state: State): void {
    this.state = state
    this.history.push(state)
    if (runEvents.hasListeners) runEvents.emit({ kind: 'task-run-state', taskRun: this, state })
    if (isSettled(state)) {
      this.args = undefined
      this.#interrupt = undefined
      this.#controller = undefined
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

  /** Asks the run to stop: a waiting run ends Cancelled at once, a running one is aborted. */
  cancel(error: Error): void {
    if (isSettled(this.state) || this.cancelError) return
    this.cancelError = error
    this.#controller?.abort(error)
    this.#interrupt?.(error)
  }

  /** Awaits `promise` unless the run is cancelled (or times out) first. */
  interruptible<T>(promise: Promise<T> | T): Promise<T> {
    if (this.cancelError) return Promise.reject(this.cancelError)
    return new Promise<T>((resolve, reject) => {
      this.#interrupt = reject
      Promise.resolve(promise).then(resolve, reject)
    })
  }

  /** Aborts the current attempt with `error` (a timeout) without cancelling the run. */
  abortAttempt(error: Error): void {
    this.#controller?.abort(error)
    this.#interrupt?.(error)
  }

  newAttemptSignal(): AbortSignal {
    this.#controller = new AbortController()
    if (this.cancelError) this.#controller.abort(this.cancelError)
    return this.#controller.signal
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

function computeRetryDelay(task: AnyTask, attempt: number): number {
  const { retryDelaySeconds, retryJitterFactor } = task.options
  let seconds: number
  if (typeof retryDelaySeconds === 'function') seconds = retryDelaySeconds(attempt)
  else if (Array.isArray(retryDelaySeconds)) seconds = retryDelaySeconds[Math.min(attempt, retryDelaySeconds.length) - 1] ?? 0
  else seconds = (retryDelaySeconds as number | undefined) ?? 0
  if (retryJitterFactor && seconds > 0) {
    // Spread retries over [d·(1−j), d·(1+j)] so runs that failed together do not retry together.
    seconds *= 1 + retryJitterFactor * (2 * Math.random() - 1)
  }
  return Math.max(0, seconds) * 1000
}

async function shouldRetry(run: TaskRun, error: Error): Promise<boolean> {
  const { retries = 0, retryCondition } = run.task.options
  if (run.attempt > retries || run.cancelError) return false
  if (!retryCondition) return true
  try {
    return Boolean(await retryCondition(error, run.attempt))
  } catch {
    return false
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Drives a task run to a settled state: waits for upstreams, resolves futures in its arguments,
 * takes a slot, runs attempts with timeouts and retries. Never rejects.
 */
export async function driveTaskRun(run: TaskRun, executor: AttemptExecutor): Promise<void> {
  try {
    let args = run.args ?? []
    const upstreams: Upstream[] = []
    for (const arg of args) collectUpstreams(arg, upstreams)
    if (run.waitFor) for (const future of run.waitFor) upstreams.push({ future, allowFailure: false })
    if (upstreams.length > 0) {
      await run.interruptible(Promise.all(upstreams.map((u) => u.future.wait())))
      for (const upstream of upstreams) {
        const state = upstream.future.state
        if (state.type === 'Completed' || (upstream.allowFailure && state.type !== 'Cancelled' && state.name !== 'NotReady')) continue
        const cause = state.error
        run.setState(
          S.NotReady(
            new UpstreamTaskRunError(
              `upstream task run ${describeUpstream(upstream.future)} ended ${state.name}${cause ? `: ${cause.message}` : ''}; '${run.name}' did not run`,
              upstream.future.taskRunId,
              cause,
            ),
          ),
        )
        return
      }
      args = substituteResults(args) as unknown[]
    }
    const waiting = executor.acquire(run)
    if (waiting) await run.interruptible(waiting)
    try {
      await runAttempts(run, executor, args)
    } finally {
      executor.release(run)
    }
  } catch (error) {
    if (isSettled(run.state)) return
    if (run.cancelError) run.setState(S.Cancelled(run.cancelError))
    else run.setState(S.Crashed(new CrashedError(`ptr failed while running '${run.name}': ${toError(error).message}`, error)))
  }
}

async function runAttempts(run: TaskRun, executor: AttemptExecutor, args: unknown[]): Promise<void> {
  const { timeoutSeconds } = run.task.options
  for (;;) {
    run.attempt++
    run.setState(S.Running(run.attempt === 1 ? 'Running' : 'Retrying'))
    const signal = run.newAttemptSignal()
    let timer: NodeJS.Timeout | undefined
    if (timeoutSeconds !== undefined) {
      timer = setTimeout(
        () => run.abortAttempt(new TaskRunTimeoutError(`'${run.name}' timed out after ${timeoutSeconds} s`)),
        timeoutSeconds * 1000,
      )
    }
    let error: Error
    try {
      const value = await run.interruptible(executor.execute(run, args, signal))
      run.setState(S.Completed(value))
      return
    } catch (thrown) {
      error = toError(thrown)
    } finally {
      clearTimeout(timer)
    }
    if (run.cancelError) {
      run.setState(S.Cancelled(run.cancelError))
      return
    }
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
    const delay = computeRetryDelay(run.task, run.attempt)
    run.setState(S.AwaitingRetry(delay, error))
    // Give the slot back while waiting, so a retry delay does not hold up other runs.
    executor.release(run)
    if (delay > 0) await run.interruptible(sleep(delay))
    const waiting = executor.acquire(run)
    if (waiting) await run.interruptible(waiting)
  }
}
