import { randomUUID } from 'node:crypto'
import { CancelledError, MappingLengthMismatchError, MappingMissingIterableError, PtrError, UpstreamTaskRunError } from '../errors.ts'
import { currentContext, runWithContext } from './context.ts'
import type { RunContext, TaskSubmitter } from './context.ts'
import { PrefectFutureList, isFuture } from './future.ts'
import type { PrefectFuture } from './future.ts'
import { allowFailure, isAllowFailure, isUnmapped } from './resolve.ts'
import { isSettled } from './states.ts'
import type { AnyTask, CallOptions, MapArgs, ResolvableArgs, Task } from './task-types.ts'
import type { AttemptEnded, AttemptExecutor } from './task-run.ts'
import { TaskRun, crash, driveTaskRun } from './task-run.ts'

const isIterable = (value: unknown): boolean =>
  typeof value !== 'string' && value !== null && typeof value === 'object' && Symbol.iterator in value

/**
 * The contract every task runner keeps (Prefect's `TaskRunner`): it accepts task runs through
 * `submit()` and `map()` and decides where their attempts execute. The engine around it owns
 * states, retries and timeouts; a runner only transports.
 *
 * A runner starts on first use (or with `start()`), and `close()` waits for its runs and frees its
 * workers; `await using runner = new ConcurrentTaskRunner()` closes it at the end of the block.
 * A flow run works on `taskRunner.duplicate()`, so one runner object can serve many flows.
 */
export abstract class TaskRunner implements TaskSubmitter, AttemptExecutor, AsyncDisposable {
  /** Short kind name: `sequential`, `concurrent`, `thread`, `process`, ... */
  abstract readonly name: string
  /** A new, unstarted runner with the same options. */
  abstract duplicate(): TaskRunner

  /** Runs at most this many attempts at once. */
  readonly #limit: number
  #free: number
  /** Slot numbers given back, reused before new ones: a run's `slotIndex` says which it holds. */
  #freeSlots: number[] = []
  #slots = 0
  /** Runs waiting for a slot, FIFO from `#waitingHead`; a run's `waker` says it still waits. */
  #waiting: TaskRun[] = []
  #waitingHead = 0
  /** Runs that asked for a slot before the runner had started: they ask again once it has. */
  #beforeStart: TaskRun[] = []
  #active = new Set<TaskRun>()
  #idle: { promise: Promise<void>; resolve: () => void } | undefined
  #state: 'new' | 'starting' | 'started' | 'closing' | 'closed' = 'new'
  /** map() calls waiting for futures before they create their runs. */
  #deferredMaps = new Set<Promise<void>>()
  #starting: Promise<void> | undefined

  constructor(limit: number = Number.POSITIVE_INFINITY) {
    this.#limit = limit
    this.#free = limit
  }

  /** How many attempts may run at once (Infinity when unbounded). */
  get concurrencyLimit(): number {
    return this.#limit
  }
  get started(): boolean {
    return this.#state === 'started'
  }
  /** Task runs submitted and not yet settled. */
  get activeCount(): number {
    return this.#active.size
  }

  /** Gets the runner ready (pools start their workers); runs on first use if not called. */
  start(): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') {
      return Promise.reject(new PtrError(`the ${this.name} task runner is closed; create a new one (or use duplicate())`, { code: 'PTR_RUNNER_CLOSED' }))
    }
    this.#starting ??= (async () => {
      this.#state = 'starting'
      await this.onStart()
      if (this.#state === 'starting') this.#state = 'started'
    })()
    return this.#starting
  }

  /** Waits for every submitted run to settle, then frees the runner's resources. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return
    if (this.#state !== 'closing') {
      while (this.#deferredMaps.size > 0) await Promise.all(this.#deferredMaps)
      this.#state = 'closing'
      await this.#settledAll()
      await this.onClose()
      this.#state = 'closed'
    } else {
      await this.#settledAll()
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Cancels every run not yet settled: waiting runs end Cancelled at once, running ones are stopped. */
  cancelAll(reason = `cancelled by the ${this.name} task runner`): void {
    const error = new CancelledError(reason)
    for (const run of [...this.#active]) run.cancel(error)
    this.onCancelAll(error)
  }

  /** Starts one run of `task` with `args` (futures allowed anywhere in them) and returns its future. */
  submit<Args extends unknown[], R>(task: Task<Args, R>, args?: ResolvableArgs<Args>, options?: CallOptions): PrefectFuture<R>
  submit(task: AnyTask, args: readonly unknown[] = [], options: CallOptions = {}): PrefectFuture {
    return this.#submitRun(task, args, options, undefined, undefined)
  }

  /**
   * One run per element of the iterable arguments, zipped, in input order. `unmapped(x)` and
   * strings stay the same for every run; all mapped arguments must have the same length.
   */
  map<Args extends unknown[], R>(task: Task<Args, R>, args: MapArgs<Args>, options?: CallOptions): PrefectFutureList<R>
  map(task: AnyTask, args: readonly unknown[], options: CallOptions = {}): PrefectFutureList {
    // A future whose run has not ended stands for an iterable not known yet: the list fills in
    // once it ends (Prefect waits for it inside map(); ptr's map() returns at once).
    const pending = args.flatMap((arg) => {
      const inner = isAllowFailure(arg) ? arg.value : arg
      return isFuture(inner) && !isSettled(inner.state) ? [inner] : []
    })
    if (pending.length > 0) return this.#deferredMap(task, args, options, pending)
    const columns: { values: unknown[] | undefined; fixed: unknown }[] = []
    let length: number | undefined
    let lengthFrom = 0
    /** The futures mapped over: upstreams of every run of the map. */
    let mappedFrom: string[] | undefined
    args.forEach((arg, index) => {
      if (isUnmapped(arg)) return columns.push({ values: undefined, fixed: arg.value })
      // allowFailure(list) maps over the list, each item under allowFailure().
      const allow = isAllowFailure(arg)
      let source = allow ? arg.value : arg
      if (isFuture(source)) {
        // A future that completed with an iterable is mapped over (as in Prefect); any other is passed to every run.
        const { state } = source
        if (!(state.type === 'Completed' && isIterable(state.result))) return columns.push({ values: undefined, fixed: arg })
        source.outcome(state, undefined)
        ;(mappedFrom ??= []).push(source.taskRunId)
        source = state.result
      }
      if (!isIterable(source)) return columns.push({ values: undefined, fixed: arg })
      let values = Array.isArray(source) ? source : [...(source as Iterable<unknown>)]
      if (allow) values = values.map((value) => allowFailure(value))
      if (length === undefined) {
        length = values.length
        lengthFrom = index
      } else if (values.length !== length) {
        throw new MappingLengthMismatchError(
          `${task.name}.map(): argument ${lengthFrom + 1} has ${length} items but argument ${index + 1} has ${values.length}; give mapped arguments the same length, or wrap the static one in unmapped()`,
        )
      }
      return columns.push({ values, fixed: undefined })
    })
    if (length === undefined) {
      throw new MappingMissingIterableError(
        `${task.name}.map(): no argument is iterable; pass at least one array (or other iterable) to map over, or use ${task.name}.submit() for a single run`,
      )
    }
    const mapId = randomUUID()
    const futures = new PrefectFutureList()
    for (let i = 0; i < length; i++) {
      const callArgs = new Array<unknown>(columns.length)
      for (let c = 0; c < columns.length; c++) {
        const column = columns[c]!
        callArgs[c] = column.values ? column.values[i] : column.fixed
      }
      futures.push(this.#submitRun(task, callArgs, options, i, mapId, mappedFrom))
    }
    return futures
  }

  /**
   * map() over futures whose runs have not ended: a list that fills in when they have. The flow
   * run and this runner wait for it, as for a run; an error map() would throw rejects the list's
   * `result()` instead.
   */
  #deferredMap(task: AnyTask, args: readonly unknown[], options: CallOptions, pending: PrefectFuture[]): PrefectFutureList {
    const release = currentContext()?.owner?.hold?.()
    const fill = Promise.all(pending.map((future) => future.wait())).then(() => {
      try {
        return this.map(task, args as unknown[], options)
      } catch (error) {
        // Nothing left to map over because an upstream did not complete: say so.
        const blocked = pending.find((future) => future.state.type !== 'Completed')
        if (!(error instanceof MappingMissingIterableError) || !blocked) throw error
        const { state } = blocked
        throw new UpstreamTaskRunError(
          `${task.name}.map(): upstream task run ${blocked.taskRunId} ended ${state.name}${state.error ? `: ${state.error.message}` : ''}; there is nothing to map over`,
          blocked.taskRunId,
          state.error,
        )
      }
    })
    const done = fill.then(
      () => undefined,
      () => undefined,
    )
    this.#deferredMaps.add(done)
    void done.finally(() => {
      this.#deferredMaps.delete(done)
      release?.()
    })
    return PrefectFutureList.filledBy(fill)
  }
  /** Hook: the task the engine drives for a submitted or mapped `task` (a runner may adjust its options). */
  protected engineTask(task: AnyTask): AnyTask {
    return task
  }

  #submitRun(
    submitted: AnyTask,
    args: readonly unknown[],
    options: CallOptions,
    mapIndex: number | undefined,
    mapId: string | undefined,
    mappedFrom?: readonly string[],
  ): PrefectFuture {
    const task = this.engineTask(submitted)
    if (this.#state === 'closed' || this.#state === 'closing') {
      throw new PtrError(`cannot submit '${task.name}': the ${this.name} task runner is closed; submit inside the flow, before it returns`, {
        code: 'PTR_RUNNER_CLOSED',
      })
    }
    if (this.#state === 'new') void this.start().catch(() => undefined)
    const context = currentContext()
    const run = new TaskRun(task, args as unknown[], this, context, options.waitFor ?? task.callOptions.waitFor, mapIndex, mapId, mappedFrom)
    this.#active.add(run)
    // Code that ignored its flow's cancellation or timeout and submits on: the run never starts.
    const stopped = run.owner?.stopped
    if (stopped) run.cancel(stopped instanceof CancelledError ? stopped : new CancelledError(`'${run.name}' was not started: ${stopped.message}`))
    else driveTaskRun(run)
    return run.future
  }

  runSettled(run: TaskRun): void {
    this.#active.delete(run)
    if (this.#active.size === 0 && this.#idle) {
      this.#idle.resolve()
      this.#idle = undefined
    }
  }

  #settledAll(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve()
    if (!this.#idle) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      this.#idle = { promise, resolve }
    }
    return this.#idle.promise
  }

  acquire(run: TaskRun, then: (run: TaskRun) => void): boolean {
    if (this.#state === 'starting' || this.#state === 'new') {
      run.waker = then
      if (this.#beforeStart.push(run) === 1) this.start().then(this.#askAgain, this.#startFailed)
      return false
    }
    if (this.#free > 0) {
      this.#free--
      run.holdsSlot = true
      run.slotIndex = this.#freeSlots.pop() ?? this.#slots++
      return true
    }
    run.waker = then
    this.#waiting.push(run)
    return false
  }

  /** The runner has started: the runs that asked before take a slot or their place in line. */
  #askAgain = (): void => {
    const runs = this.#beforeStart
    this.#beforeStart = []
    for (const run of runs) {
      const then = run.waker
      run.waker = undefined
      if (then !== undefined && !isSettled(run.state) && this.acquire(run, then)) then(run)
    }
  }

  /** The runner could not start: the runs that waited for it end Crashed, saying why. */
  #startFailed = (error: unknown): void => {
    const runs = this.#beforeStart
    this.#beforeStart = []
    for (const run of runs) {
      run.waker = undefined
      crash(run, error)
    }
  }

  release(run: TaskRun): void {
    if (!run.holdsSlot) return
    run.holdsSlot = false
    while (this.#waitingHead < this.#waiting.length) {
      const next = this.#waiting[this.#waitingHead++]!
      const wake = next.waker
      next.waker = undefined
      if (wake === undefined || isSettled(next.state)) continue
      next.holdsSlot = true
      next.slotIndex = run.slotIndex
      run.slotIndex = undefined
      this.#compactWaiting()
      wake(next)
      return
    }
    this.#compactWaiting()
    this.#free++
    if (run.slotIndex !== undefined) this.#freeSlots.push(run.slotIndex)
    run.slotIndex = undefined
  }

  /**
   * Takes up to `max` runs that wait for a slot and match `wanted`, in FIFO order, and lets them
   * go on without a slot of their own: they share the slot of the run that took them (pool
   * runners send such runs to one worker together). Looks at most `4 × max` waiting runs.
   * `holder` is the run whose slot they share.
   */
  protected takeWaiting(wanted: (run: TaskRun) => boolean, max: number, holder?: TaskRun): TaskRun[] {
    const taken: TaskRun[] = []
    const end = Math.min(this.#waiting.length, this.#waitingHead + 4 * max)
    for (let i = this.#waitingHead; i < end && taken.length < max; i++) {
      const run = this.#waiting[i]!
      const wake = run.waker
      if (wake === undefined || isSettled(run.state) || !wanted(run)) continue
      // Left in the array without a waker: release() skips it.
      run.waker = undefined
      run.slotIndex = holder?.slotIndex
      taken.push(run)
      wake(run)
    }
    return taken
  }

  #compactWaiting(): void {
    if (this.#waitingHead > 1024 && this.#waitingHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitingHead)
      this.#waitingHead = 0
    }
  }

  /**
   * Runs one attempt. The default runs it here, on the event loop, with the run's context;
   * pool runners send it to a worker instead.
   */
  execute(run: TaskRun, args: unknown[]): Promise<unknown> {
    try {
      return Promise.resolve(runWithContext(new AttemptContext(run), run.task.fn, ...args))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Runs one attempt through `execute` and reports its end to `ended` (pools override it to settle runs without a promise each). */
  executeThen(run: TaskRun, args: unknown[], ended: AttemptEnded): void {
    this.execute(run, args).then(
      (value) => ended(run, false, value),
      (error: unknown) => ended(run, true, error),
    )
  }

  /** Hook: get resources ready. */
  protected async onStart(): Promise<void> {}
  /** Hook: free resources; every run has settled. */
  protected async onClose(): Promise<void> {}
  /** Hook: stop running attempts (pools terminate their workers). */
  protected onCancelAll(_error: Error): void {}
}

/** `getRunContext().taskRun` of an attempt in this process; `stateName` is read when asked. */
class AttemptInfo {
  readonly id: string
  readonly name: string
  readonly taskName: string
  readonly attempt: number
  readonly #run: TaskRun
  constructor(run: TaskRun) {
    this.#run = run
    this.id = run.id
    this.name = run.name
    this.taskName = run.task.name
    this.attempt = run.attempt
  }
  get stateName(): string {
    return this.#run.state.name
  }
  toJSON() {
    return { id: this.id, name: this.name, taskName: this.taskName, attempt: this.attempt, stateName: this.stateName }
  }
}

/** The run context of an attempt running in this process. */
class AttemptContext implements RunContext {
  readonly #run: TaskRun
  #taskRun: AttemptInfo | undefined
  constructor(run: TaskRun) {
    this.#run = run
  }
  /** Made on first use: most tasks never read their context. */
  get taskRun(): RunContext['taskRun'] {
    return (this.#taskRun ??= new AttemptInfo(this.#run))
  }
  get flowRun(): RunContext['flowRun'] {
    return this.#run.owner?.info
  }
  get owner(): RunContext['owner'] {
    return this.#run.owner
  }
  get signal(): AbortSignal {
    return this.#run.signal
  }
  /**
   * Submits from inside a task run in place, so nested runs never wait for the slot their parent
   * holds (Prefect issue 17060).
   */
  get taskRunner(): TaskRunner {
    return inlineRunner
  }
}

/**
 * Runs attempts in place, without limit: what direct calls (`await t(x)`) and submits from inside
 * a running task use. Never closes.
 */
class InlineTaskRunner extends TaskRunner {
  readonly name = 'inline'
  duplicate(): TaskRunner {
    return this
  }
  override async close(): Promise<void> {}
}

export const inlineRunner: TaskRunner = new InlineTaskRunner()
