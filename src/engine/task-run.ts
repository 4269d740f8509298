import { randomFillSync } from 'node:crypto'
import { CancelledError, CrashedError, TaskRunTimeoutError, UpstreamTaskRunError, attemptEnded, toError } from '../errors.ts'
import type { FlowRunInfo, TaskRunInfo } from './events.ts'
import { runEvents } from './events.ts'
import { PrefectFuture } from './future.ts'
import { callHooks } from './hooks.ts'
import { emitRunLog } from './log.ts'
import { tagSlotsProvider } from './provided.ts'
import type { TagSlots } from './provided.ts'
import type { Upstream } from './resolve.ts'
import { collectUpstreams, substituteResults } from './resolve.ts'
import type { RetryDefaults, RetryOptions } from './retry.ts'
import { retryDelayMs, withRetryDefaults, withTimeLimit } from './retry.ts'
import type { State } from './states.ts'
import * as S from './states.ts'
import { isSettled } from './states.ts'
import { adoptState, isStateValue } from './state-values.ts'
import { contextTags } from './tags.ts'
import { contextStorage } from './context-storage.ts'
import type { AnyTask, WaitForItem } from './task-types.ts'
import type { MemoOwner, TaskRunMemo } from './result-types.ts'
import { memoize, storedOutcome } from './results.ts'

/** Random bytes for run ids, drawn from the system's CSPRNG 256 ids at a time. */
let idBytes = Buffer.alloc(0)
let idOffset = 0
const idText = Buffer.allocUnsafe(36)
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1')

/**
 * A random (version 4) UUID, written into a buffer and read out as one flat string.
 * `crypto.randomUUID()` builds its result by concatenation: a tree of ~14 strings (≈450 bytes)
 * for every run of a 100,000-run map, kept or thrown away.
 */
export function newRunId(): string {
  if (idOffset === idBytes.length) {
    idBytes = randomFillSync(Buffer.allocUnsafe(16 * 256))
    idOffset = 0
  }
  let at = 0
  for (let i = 0; i < 16; i++) {
    let byte = idBytes[idOffset + i]!
    if (i === 6) byte = (byte & 0x0f) | 0x40
    else if (i === 8) byte = (byte & 0x3f) | 0x80
    if (i === 4 || i === 6 || i === 8 || i === 10) idText[at++] = 0x2d
    idText[at++] = HEX_DIGITS[byte >> 4]!
    idText[at++] = HEX_DIGITS[byte & 15]!
  }
  idOffset += 16
  return idText.toString('latin1', 0, 36)
}

/** Slot names by runner kind and index (`thread 2`), made once: Running events read them. */
const slotNames = new Map<string, string[]>()
function slotName(kind: string, index: number): string {
  // An unbounded runner may open thousands of slots: only the first ones are kept.
  if (index >= 1024) return `${kind} ${index + 1}`
  let names = slotNames.get(kind)
  if (!names) slotNames.set(kind, (names = []))
  return (names[index] ??= `${kind} ${index + 1}`)
}

/** A task run's state that few runs need (see `TaskRun.#rare`). */
interface RareRunState {
  cancelError?: Error | undefined
  /** Why the current attempt was aborted (timeout or cancellation), if it was. */
  abortReason?: Error | undefined
  /** Created only when someone reads `signal`: most tasks never do, and AbortControllers are costly. */
  controller?: AbortController | undefined
  settled?: Promise<State> | undefined
  resolveSettled?: ((state: State) => void) | undefined
  /** Set while the hooks of the final state run: the run takes no other state meanwhile. */
  ending?: boolean
}

/** What `AttemptExecutor.executeThen` calls when the attempt has ended. */
export type AttemptEnded = (run: TaskRun, failed: boolean, valueOrError: unknown) => void

/** What `TaskRun.onSettled` calls, with the run's future. */
type SettledCallback = (future: TaskRunFuture<unknown>) => void

/** What a task run reports to the flow run that owns it. */
export interface TaskRunOwner {
  readonly info: FlowRunInfo
  /** Set once runs started under this owner must not run (its flow run was cancelled or timed out): they end Cancelled at once. */
  readonly stopped?: Error | undefined
  /** Retry options for task runs whose task sets none (settings). */
  readonly retryDefaults?: RetryDefaults | undefined
  taskRunCreated(run: TaskRun): void
  taskRunSettled(run: TaskRun): void
  taskRunHandled(run: TaskRun): void
  /** Keeps the owner open, as a run would, until the returned function is called (a map() waiting for a future). */
  hold?(): () => void
  /** Set when the flow run keeps results (caching, resume): see src/engine/results.ts. */
  readonly memo?: MemoOwner | undefined
}

/**
 * Where a task run's attempts execute. Runners implement it; the engine drives states, retries,
 * timeouts and cancellation around it.
 */
export interface AttemptExecutor {
  /**
   * Takes a slot for `run`: true when one was free (the run holds it now). Otherwise the run waits
   * in FIFO order, as its `waker` and a place in a queue (no promise of its own), and `then(run)`
   * is called once it holds a slot, synchronously from whatever freed one: `then` must not run the
   * attempt in place. A run that settles while it waits is woken once, to see that it has.
   */
  acquire(run: TaskRun, then: (run: TaskRun) => void): boolean
  /** Gives back the run's slot; does nothing if the run holds none. */
  release(run: TaskRun): void
  /** The runner's kind (`thread`, `concurrent`, ...): names its slots. */
  readonly name?: string
  /**
   * Runs one attempt with resolved `args`; rejects with the task's error, or a CrashedError when
   * the infrastructure under it died. `run.signal` aborts on timeout or cancellation.
   */
  execute(run: TaskRun, args: unknown[]): Promise<unknown>
  /**
   * Runs one attempt as `execute` does, and calls `ended` when it has ended, with its value or
   * (`failed`) its error: no promise of its own where the runner can settle the run directly (a
   * pool settles a batch's runs from one message).
   */
  executeThen(run: TaskRun, args: unknown[], ended: AttemptEnded): void
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
  /** The run context it was created in (a flow run's, or a task run's; see context.ts): its driving goes on in it. */
  readonly context: object | undefined
  readonly executor: AttemptExecutor
  readonly mapIndex: number | undefined
  readonly mapId: string | undefined
  state: State
  attempt = 0
  startTime: number | undefined
  /** The arguments as given, futures and all. Dropped once the run has settled. */
  args: unknown[] | undefined
  handled = false
  /** Whether the run holds one of its executor's slots right now. */
  holdsSlot = false
  /** Which of its executor's slots it holds or shares (0-based), if any: see `slot`. */
  slotIndex: number | undefined
  /** Set while the run waits for its executor (see `AttemptExecutor.acquire`): what to call when it may go on. */
  waker: ((run: TaskRun) => void) | undefined
  /** Ids of the runs whose futures it was given (arguments and `waitFor`), set when it is created. */
  readonly upstreamTaskRunIds: readonly string[] | undefined
  /** What few runs need (cancellation, a signal, a settled() promise, hooks running): one object, made when first needed. */
  #rare: RareRunState | undefined
  /** The futures and allowFailure() wrappers in `args` and `waitFor`, found once when the run is created; see {@link takeInputs}. */
  #inputs: RunInputs | undefined
  /** What the run is known by across runs (caching, resume); set before its first attempt when its flow run keeps results. */
  memo: TaskRunMemo | undefined
  #callbacks: SettledCallback | SettledCallback[] | undefined
  #future: TaskRunFuture<unknown> | undefined
  /** Tags from `tags()` contexts around the run's creation, merged with the task's; unset when none. */
  #tags: readonly string[] | undefined

  /**
   * `mappedFrom`: runs it depends on beyond the futures in `args` and `waitFor` (the future a
   * map() iterated). Positional, not an options object: a map creates one run per item.
   */
  constructor(
    task: AnyTask,
    args: unknown[],
    executor: AttemptExecutor,
    context: { readonly owner?: TaskRunOwner | undefined } | undefined,
    waitFor: readonly WaitForItem[] | undefined,
    mapIndex: number | undefined,
    mapId: string | undefined,
    mappedFrom: readonly string[] | undefined,
  ) {
    this.task = task
    this.args = args
    this.executor = executor
    this.context = context
    this.owner = context?.owner
    this.mapIndex = mapIndex
    this.mapId = mapId
    this.name = task.runName(args)
    this.#inputs = findUpstreams(args, waitFor)
    this.upstreamTaskRunIds = upstreamIds(this.#inputs?.upstreams, mappedFrom)
    const inherited = contextTags()
    if (inherited !== undefined) this.#tags = [...new Set([...inherited, ...(task.options.tags ?? [])])]
    this.state = S.Pending()
    this.owner?.taskRunCreated(this)
    if (runEvents.hasListeners) runEvents.emit({ kind: 'task-run-state', taskRun: this, state: this.state, previous: undefined })
  }

  get taskName(): string {
    return this.task.name
  }
  get taskKey(): string {
    return this.task.key
  }
  get tags(): readonly string[] {
    return this.#tags ?? this.task.options.tags ?? []
  }
  /** Set when cancellation was asked for. */
  get cancelError(): Error | undefined {
    return this.#rare?.cancelError
  }
  get flowRunId(): string | undefined {
    return this.owner?.info.id
  }
  get future(): TaskRunFuture<unknown> {
    return (this.#future ??= new TaskRunFuture(this))
  }
  /** What {@link driveTaskRun} must wait for and substitute before the run starts (given once). */
  takeInputs(): RunInputs | undefined {
    const inputs = this.#inputs
    this.#inputs = undefined
    return inputs
  }

  /** The slot the current attempt holds, named after the runner: `thread 2`. */
  get slot(): string | undefined {
    return this.slotIndex === undefined ? undefined : slotName(this.executor.name ?? 'runner', this.slotIndex)
  }

  /** The current attempt's signal: aborted on timeout or cancellation. */
  get signal(): AbortSignal {
    const rare = (this.#rare ??= {})
    if (!rare.controller) {
      rare.controller = new AbortController()
      if (rare.abortReason) rare.controller.abort(rare.abortReason)
    }
    return rare.controller.signal
  }

  /**
   * Moves the run to `state`. A settled run never changes again; later calls are ignored.
   * With hooks for `state`, returns the promise of their end: a final state takes effect (the run
   * settles) once its hooks have run; Running takes effect first, and the attempt waits for them.
   */
  setState(state: State): Promise<void> | undefined {
    if (isSettled(this.state) || this.#rare?.ending) return undefined
    const hooks = this.task.hooks
    if (hooks !== undefined) {
      const settles = isSettled(state)
      if (!settles) this.#apply(state)
      const called = callHooks(hooks, state, this.task, this.#info(state), this.#logTarget(), this.name)
      if (called) {
        if (!settles) return called
        const rare = (this.#rare ??= {})
        rare.ending = true
        return called.then(() => {
          rare.ending = false
          this.#apply(state)
        })
      }
      if (!settles) return undefined
    }
    this.#apply(state)
    return undefined
  }

  /** What a hook is given: the run's info, as it is in `state`. */
  #info(state: State): TaskRunInfo {
    const { id, name, taskName, taskKey, flowRunId, tags, mapIndex, mapId, attempt, startTime, upstreamTaskRunIds, slot } = this
    return { id, name, taskName, taskKey, flowRunId, tags, mapIndex, mapId, attempt, startTime: startTime ?? (state.type === 'Running' ? state.timestamp : undefined), state, upstreamTaskRunIds, slot }
  }

  #logTarget() {
    return { taskRunId: this.id, taskRunName: this.name, flowRunId: this.flowRunId }
  }

  /** Logs, against this run, an error thrown by user code the engine calls (a done callback). */
  logError(what: string, thrown: unknown): void {
    const error = toError(thrown)
    emitRunLog(this.#logTarget(), 'error', `${what} of '${this.name}' failed: ${error.name}: ${error.message}`, 'logger')
  }

  #apply(state: State): void {
    const previous = this.state
    this.state = state
    if (state.type === 'Running' && this.startTime === undefined) this.startTime = state.timestamp
    if (runEvents.hasListeners) runEvents.emit({ kind: 'task-run-state', taskRun: this, state, previous })
    if (isSettled(state)) {
      this.args = undefined
      // Listeners (the history) have read it with this state; a settled run never needs it again.
      this.memo = undefined
      const rare = this.#rare
      if (rare) rare.controller = undefined
      this.executor.release(this)
      this.executor.runSettled(this)
      // A run that waited for a slot stops waiting: its driver sees it has settled.
      const waker = this.waker
      this.waker = undefined
      waker?.(this)
      rare?.resolveSettled?.(state)
      const callbacks = this.#callbacks
      this.#callbacks = undefined
      if (typeof callbacks === 'function') this.#callSafely(callbacks)
      else if (callbacks) for (const callback of callbacks) this.#callSafely(callback)
      this.owner?.taskRunSettled(this)
    }
  }

  settled(): Promise<State> {
    if (isSettled(this.state)) return Promise.resolve(this.state)
    const rare = (this.#rare ??= {})
    return (rare.settled ??= new Promise((resolve) => (rare.resolveSettled = resolve)))
  }

  /** Calls `callback` with the run's future once the run has settled (at once if it has). */
  onSettled(callback: SettledCallback): void {
    if (isSettled(this.state)) this.#callSafely(callback)
    else if (this.#callbacks === undefined) this.#callbacks = callback
    // Most runs have one callback (their list's result()): an array only for more.
    else if (typeof this.#callbacks === 'function') this.#callbacks = [this.#callbacks, callback]
    else this.#callbacks.push(callback)
  }

  /** A done callback that throws is logged against the run; the others still run (as in Prefect). */
  #callSafely(callback: SettledCallback): void {
    try {
      callback(this.future)
    } catch (error) {
      this.logError('a done callback', error)
    }
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
    ;(this.#rare ??= {}).cancelError = error
    this.abortAttempt(error)
    this.setState(S.Cancelled(error))
  }

  /** Aborts the current attempt's signal with `error` (a timeout or a cancellation). */
  abortAttempt(error: Error): void {
    const rare = (this.#rare ??= {})
    rare.abortReason = error
    rare.controller?.abort(error)
  }

  newAttempt(): void {
    this.attempt++
    const rare = this.#rare
    if (rare) {
      rare.abortReason = undefined
      rare.controller = undefined
    }
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
    // The run calls it with its future, this one: no wrapper per callback.
    this.#run.onSettled(callback as SettledCallback)
  }
}

/** The futures in a run's arguments and `waitFor`, and whether its arguments hold allowFailure() wrappers to unwrap. */
interface RunInputs {
  readonly upstreams: Upstream[]
  readonly wrapped: boolean
}

/** A run's inputs (see RunInputs); undefined when there is nothing to wait for or unwrap. Cheap for primitive arguments, the common case of a large map(). */
function findUpstreams(args: readonly unknown[], waitFor: readonly WaitForItem[] | undefined): RunInputs | undefined {
  let upstreams: Upstream[] | undefined
  let wrapped = false
  for (const arg of args) if (typeof arg === 'object' && arg !== null && collectUpstreams(arg, (upstreams ??= []))) wrapped = true
  // waitFor takes futures, allowFailure() of them and lists of either; plain values are ignored (as in Prefect).
  if (waitFor) collectUpstreams(waitFor, (upstreams ??= []))
  return upstreams && (upstreams.length > 0 || wrapped) ? { upstreams, wrapped } : undefined
}

/** The ids of the runs behind `upstreams`, each once, with those of the future a map() iterated; undefined when none. */
function upstreamIds(upstreams: readonly Upstream[] | undefined, mappedFrom: readonly string[] | undefined): readonly string[] | undefined {
  // The runs of one map() share its array when they have no upstream of their own.
  if (!upstreams || upstreams.length === 0) return mappedFrom
  if (upstreams.length === 1 && !mappedFrom) return [upstreams[0]!.future.taskRunId]
  return [...new Set([...(mappedFrom ?? []), ...upstreams.map((u) => u.future.taskRunId)])]
}

function describeUpstream(future: PrefectFuture): string {
  const name = (future as { taskRunName?: string }).taskRunName
  return name ? `'${name}' (${future.taskRunId})` : future.taskRunId
}

/** The run's retry options: its task's, with the flow run's defaults where the task sets none. */
function retryOptionsOf(run: TaskRun): RetryOptions & { retries: number } {
  const defaults = run.owner?.retryDefaults
  return withRetryDefaults(run.task.options, defaults?.taskRetries, defaults?.taskRetryDelaySeconds)
}

async function shouldRetry(run: TaskRun, error: Error): Promise<boolean> {
  const { retries } = retryOptionsOf(run)
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

/** Ends the run Crashed for a fault of ptr's own while driving it (never the task's). */
export function crash(run: TaskRun, error: unknown): void {
  run.setState(S.Crashed(new CrashedError(`ptr failed while running '${run.name}': ${toError(error).message}`, error)))
}

/**
 * Drives a task run to a settled state: waits for upstreams, resolves futures in its arguments,
 * takes a slot, runs attempts with timeouts and retries. Never throws. Cancellation settles the
 * run from outside (see `TaskRun.cancel`), so after every wait a settled run just stops here.
 *
 * It is the hot path, and a 100,000-run map keeps most of its runs waiting at once: a run with
 * nothing to wait for but a slot (no futures in its arguments, no tag with a limit, no hooks, no
 * timeout) takes a way with no coroutine of its own. Waiting, it is only a place in its runner's
 * queue; running, a reaction on its attempt's promise. A first attempt that does not simply
 * return a value (it failed, or returned a state) goes on in {@link driveAttempts}, the general
 * loop, as does any run the fast way does not fit.
 */
export function driveTaskRun(run: TaskRun): void {
  try {
    const inputs = run.takeInputs()
    const { task, executor } = run
    if (
      inputs !== undefined ||
      task.hooks !== undefined ||
      task.options.timeoutSeconds !== undefined ||
      executor.marksRunning === true
    ) {
      void driveAll(run, inputs)
      return
    }
    if (run.owner?.memo !== undefined && useStored(run, run.args ?? [])) return
    // A tag with a limit: the run waits for its slot in the general loop; tags without one cost nothing.
    const taken = tagSlotsOf(run)
    if (taken !== undefined) return void attemptsInTagSlots(run, run.args ?? [], taken)
    if (executor.acquire(run, startSoon)) startFirstAttempt(run)
  } catch (error) {
    crash(run, error)
  }
}

/** Runs woken with a slot whose first attempt starts in the next microtask (see `startSoon`). */
let toStart: TaskRun[] = []

/** The fast way's waker: the run got a slot; its attempt starts once the code that freed it has finished. */
function startSoon(run: TaskRun): void {
  if (toStart.push(run) === 1) queueMicrotask(startWoken)
}

function startWoken(): void {
  const runs = toStart
  toStart = []
  for (const run of runs) startFirstAttempt(run)
}

/** The first attempt of a run on the fast way, which holds a slot now. */
function startFirstAttempt(run: TaskRun): void {
  if (isSettled(run.state)) return
  try {
    run.newAttempt()
    run.setState(S.Running('Running'))
    run.executor.executeThen(run, run.args ?? [], firstAttemptEnded)
  } catch (error) {
    crash(run, error)
  }
}

/** The first attempt on the fast way has ended: a value completes the run; anything else goes on in the general loop. */
function firstAttemptEnded(run: TaskRun, failed: boolean, valueOrError: unknown): void {
  try {
    if (!failed && !isStateValue(valueOrError)) return void run.setState(S.Completed(valueOrError))
    // In the context the run was created in, as a coroutine started there would be (a retryCondition may read it).
    const goOn = () => driveAttempts(run, run.args ?? [], failed ? { error: valueOrError } : { value: valueOrError })
    void (run.context === undefined ? goOn() : contextStorage.run(run.context, goOn))
  } catch (error) {
    crash(run, error)
  }
}

/** With its flow run's results: a value stored by an earlier run (a resumed flow run's, or the cache's) stands in for the run, which ends Completed, named Cached. */
function useStored(run: TaskRun, args: unknown[]): boolean {
  const memoOwner = run.owner!.memo!
  const memo = (run.memo = memoize(run, memoOwner, args))
  const stored = storedOutcome(run.task, memo, memoOwner.results)
  if (!stored) return false
  run.setState(S.makeState('Completed', 'Cached', { message: `result of ${stored.from}` }, stored.value))
  return true
}

/** Waits for a slot for the general loop; undefined when one was free at once (or the run settled meanwhile). */
function slotFor(run: TaskRun): Promise<void> | undefined {
  let woken = false
  let resolve: (() => void) | undefined
  const took = run.executor.acquire(run, () => {
    woken = true
    resolve?.()
  })
  return took || woken ? undefined : new Promise<void>((r) => (resolve = r))
}

/** The general way from the start: upstreams, allowFailure() wrappers, tag slots, then the attempt loop. */
async function driveAll(run: TaskRun, inputs: RunInputs | undefined): Promise<void> {
  try {
    let args = run.args ?? []
    const upstreams = inputs?.upstreams
    if (upstreams && upstreams.length > 0) {
      await Promise.all(upstreams.map((u) => u.future.wait()))
      if (isSettled(run.state)) return
      const blocked = upstreams.find(
        ({ future: { state }, allowFailure }) =>
          // allowFailure() admits failed upstreams and those that never ran because of one (NotReady), as in Prefect.
          !(state.type === 'Completed' || (allowFailure && state.type !== 'Cancelled')),
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
    } else if (inputs?.wrapped) {
      args = substituteResults(args) as unknown[]
    }
    if (run.owner?.memo !== undefined && useStored(run, args)) return
    await attemptsInTagSlots(run, args, tagSlotsOf(run))
  } catch (error) {
    crash(run, error)
  }
}

/** The slots of the run's limited tags, taken or being waited for; undefined at once when none of its tags has a limit. */
function tagSlotsOf(run: TaskRun): ReturnType<TagSlots> {
  return run.tags.length > 0 ? tagSlotsProvider()?.(run) : undefined
}

/**
 * The attempt loop inside the slots of the run's limited tags (`taken`), which it frees however
 * the run ends. Tag slots come before a runner slot: a run waiting for one holds no pool slot.
 */
async function attemptsInTagSlots(run: TaskRun, args: unknown[], taken: ReturnType<TagSlots>): Promise<void> {
  if (taken === undefined) return driveAttempts(run, args, undefined)
  let free: (() => void) | undefined
  try {
    free = typeof taken === 'function' ? taken : await taken
    if (isSettled(run.state)) return
    await driveAttempts(run, args, undefined)
  } catch (error) {
    crash(run, error)
  } finally {
    free?.()
  }
}

/** How a run's first attempt ended, when it ran on the fast way. */
type Outcome = { readonly value: unknown } | { readonly error: unknown }

/**
 * The attempt loop: takes a slot, runs attempts with timeouts and retries. With `first`, the first
 * attempt has already run (on the fast way, in a slot the run still holds) and ended so. Never rejects.
 */
async function driveAttempts(run: TaskRun, args: unknown[], first: Outcome | undefined): Promise<void> {
  const executor = run.executor
  try {
    const { timeoutSeconds } = run.task.options
    // A retry with no delay goes straight from the failed attempt to Retrying (as in Prefect),
    // keeping its slot; the Retrying state carries the failed attempt's error.
    let retryingAfter: Error | undefined
    let outcome = first
    for (;;) {
      let error: Error
      let failure: State
      try {
        let value: unknown
        if (outcome !== undefined) {
          const ended = outcome
          outcome = undefined
          if ('error' in ended) throw ended.error
          value = ended.value
        } else {
          if (retryingAfter === undefined) {
            const waiting = slotFor(run)
            if (waiting) await waiting
            if (isSettled(run.state)) return
          }
          run.newAttempt()
          const hooked = run.setState(
            executor.marksRunning
              ? S.makeState('Scheduled')
              : retryingAfter
                ? S.makeState('Running', 'Retrying', { error: retryingAfter, message: `attempt ${run.attempt - 1} ${attemptEnded(retryingAfter)}: ${retryingAfter.message}; retrying now` })
                : S.Running(run.attempt === 1 ? 'Running' : 'Retrying'),
          )
          if (hooked) await hooked
          if (isSettled(run.state)) return
          retryingAfter = undefined
          value = await (timeoutSeconds === undefined ? executor.execute(run, args) : attemptWithTimeout(run, args, timeoutSeconds))
        }
        if (!isStateValue(value)) {
          run.setState(S.Completed(value))
          return
        }
        // The task returned a state: it is the run's own (a Failed one is retried like a throw).
        failure = adoptState(value)
        if (failure.type !== 'Failed') {
          run.setState(failure)
          return
        }
        error = failure.error ?? new Error(`'${run.name}' returned a Failed state`)
      } catch (thrown) {
        error = toError(thrown)
        failure =
          error instanceof TaskRunTimeoutError
            ? S.Failed(error, 'TimedOut')
            : error instanceof CrashedError
              ? S.Crashed(error)
              : error instanceof CancelledError
                ? S.Cancelled(error)
                : S.Failed(error)
      }
      if (isSettled(run.state)) return
      if (failure.type === 'Cancelled' || !(await shouldRetry(run, error))) {
        run.setState(failure)
        return
      }
      const delay = retryDelayMs(retryOptionsOf(run), run.attempt)
      if (delay === 0 && !executor.marksRunning) {
        retryingAfter = error
        continue
      }
      run.setState(S.AwaitingRetry(delay, error))
      // Give the slot back while waiting, so a retry delay does not hold up other runs.
      executor.release(run)
      if (delay > 0) await sleep(delay)
      if (isSettled(run.state)) return
    }
  } catch (error) {
    crash(run, error)
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
