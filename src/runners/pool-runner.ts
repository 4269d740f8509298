import os from 'node:os'
import { fileURLToPath } from 'node:url'
import workerpool from 'workerpool'
import type { Pool, WorkerPoolOptions } from 'workerpool'
import { CancelledError, CrashedError, NotCloneableError, PtrError, TaskNotFoundInWorkerError } from '../errors.ts'
import { fromErrorRecord } from '../engine/error-wire.ts'
import { runEvents } from '../engine/events.ts'
import type { FlowRunInfo, TaskRunInfo } from '../engine/events.ts'
import * as S from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import { reviveStateValue } from '../engine/state-values.ts'
import type { State } from '../engine/states.ts'
import type { AttemptEnded, TaskRun } from '../engine/task-run.ts'
import { checkArguments, crossingName } from './crossing.ts'
import type { Crossing } from './crossing.ts'
import { ABORT_GRACE_MS, METHOD_PRELOAD, METHOD_PROBE, METHOD_RUN, keyModuleUrl } from './pool-protocol.ts'
import type { LogMessage, OutcomesMessage, ProbeAnswer, RunOutcome, RunRequest, StateMessage, StateRecord } from './pool-protocol.ts'
import { TaskRunner } from '../engine/task-runner.ts'
import { startupMark } from './startup-trace.ts'
import { moduleBundle } from './bundles.ts'

/** Options shared by the thread and process pool runners. */
export interface PoolTaskRunnerOptions {
  /**
   * Most workers, and so most task runs in progress at once; the rest wait in submission order.
   * @default os.availableParallelism()
   */
  maxWorkers?: number
  /**
   * Heap limit of each worker, in MB. A run that needs more is Crashed (out of memory) and its
   * worker replaced, instead of the whole machine swapping.
   * @default Node's own limit
   */
  maxOldGenerationSizeMb?: number
}

/** Pool options with every default filled in. */
export interface ResolvedPoolTaskRunnerOptions {
  readonly maxWorkers: number
  readonly maxOldGenerationSizeMb: number | undefined
}

// The worker entry beside this module: pool-worker.js in the built package, pool-worker.ts when ptr
// runs from its sources (its tests).
const FROM_SOURCES = import.meta.url.endsWith('.ts')
const WORKER_SCRIPT = fileURLToPath(new URL(`./pool-worker${FROM_SOURCES ? '.ts' : '.js'}`, import.meta.url))
/** Registers tsx in each worker; an absolute URL, so it never resolves from the user's cwd. */
export const BOOTSTRAP_URL = new URL('./pool-bootstrap.mjs', import.meta.url).href
/**
 * What each worker is started with: the built worker entry is JavaScript and needs nothing (its
 * workers register tsx only for a TypeScript module outside the run's bundle); from ptr's sources,
 * the bootstrap registers tsx first.
 */
const WORKER_EXEC_ARGV: readonly string[] = FROM_SOURCES ? ['--import', BOOTSTRAP_URL] : []
/**
 * How long a worker told to stop may take before it is killed: past the grace a stopped run has
 * after its signal aborts in the worker (a worker whose event loop is blocked never answers).
 */
const TERMINATE_TIMEOUT_MS = ABORT_GRACE_MS + 250
/**
 * Runs of a task that takes under this long (moving average, measured in the workers) travel to
 * a worker in batches: one message for many runs, because a round trip costs far more than they do.
 */
const QUICK_TASK_MS = 1
/** How much of the start and of the end of a process worker's stderr is kept to explain its crash (characters). */
const STDERR_KEPT = 4096
/** Most runs in one batch. */
const MAX_BATCH = 64

/** Runs sent to one worker in one message; they share the slot of the run that started it. */
interface Batch {
  readonly requests: RunRequest[]
  readonly runs: TaskRun[]
  /** What each run's attempt reports its end to (see `executeThen`). */
  readonly settle: AttemptEnded[]
  sent: boolean
}

type Job<T> = ReturnType<Pool['exec']> & Promise<T>

function resolveOptions(className: string, options: PoolTaskRunnerOptions): ResolvedPoolTaskRunnerOptions {
  const check = (option: string, value: unknown) => {
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= 1)) {
      throw new PtrError(
        `${className}: expected \`${option}\` to be an integer from 1 and up, got \`${typeof value === 'string' ? JSON.stringify(value) : String(value)}\` (${typeof value})`,
        { code: 'PTR_INVALID_RUNNER_OPTION', exitCode: 2 },
      )
    }
  }
  check('maxWorkers', options.maxWorkers)
  check('maxOldGenerationSizeMb', options.maxOldGenerationSizeMb)
  return Object.freeze({
    maxWorkers: options.maxWorkers ?? os.availableParallelism(),
    maxOldGenerationSizeMb: options.maxOldGenerationSizeMb,
  })
}

export { NotCloneableError, TaskNotFoundInWorkerError } from '../errors.ts'

/**
 * What the thread and process runners share: a workerpool pool whose workers import task modules
 * through tsx, one attempt per worker at a time. They differ only in what workerpool is told.
 *
 * The engine's slot limit is `maxWorkers`, so a run waits in the engine's FIFO queue (Pending)
 * until a worker is free, and its timeout counts from when it really starts in a worker.
 */
export abstract class PoolTaskRunner extends TaskRunner {
  abstract override readonly name: 'thread' | 'process'
  readonly options: ResolvedPoolTaskRunnerOptions
  #pool: Pool | undefined
  /** Task keys a worker of this pool found; others are probed once before their first run. */
  #found = new Set<string>()
  #probes = new Map<string, Promise<string | undefined>>()
  /** Runs waiting for their task's probe, by task key. */
  #probing = new Map<string, TaskRun[]>()
  #inflight = new Set<Job<unknown>>()
  /** Moving average of each task's run time in the workers (ms), by task key. */
  #runMs = new Map<string, number>()
  /** Runs taken from the queue to join a batch, until they reach execute(). */
  #joining = new Map<TaskRun, Batch>()
  /** Runs whose worker died under them once: they always travel alone. */
  #crashedOnce = new WeakSet<TaskRun>()

  protected constructor(className: string, options: PoolTaskRunnerOptions) {
    const resolved = resolveOptions(className, options)
    super(resolved.maxWorkers)
    this.options = resolved
  }

  /** Whether workers' stdout and stderr come to the main side as events (process workers). */
  protected get capturesStdStreams(): boolean {
    return false
  }
  /** How values cross into this runner's workers. */
  protected abstract get crossing(): Crossing
  /** @internal the workerpool options that make this kind of pool (kept out of the published types: workerpool's own need the DOM lib). */
  protected abstract poolOptions(execArgv: readonly string[]): WorkerPoolOptions

  /** Workers alive now and how many are busy (for tests and diagnostics). */
  get workerStats(): { total: number; busy: number } {
    const stats = this.#pool?.stats()
    return { total: stats?.totalWorkers ?? 0, busy: stats?.busyWorkers ?? 0 }
  }

  protected override async onStart(): Promise<void> {
    startupMark(`pool: ${this.name} pool created`)
    this.#pool = takeEarlyPool(this.#earlyKey, this.options.maxWorkers) ?? this.#createPool(0)
  }

  #createPool(minWorkers: number): Pool {
    return workerpool.pool(WORKER_SCRIPT, {
      maxWorkers: this.options.maxWorkers,
      minWorkers,
      workerTerminateTimeout: TERMINATE_TIMEOUT_MS,
      ...this.poolOptions(WORKER_EXEC_ARGV),
    })
  }

  /** Which early pools this runner may take: same kind, same worker options. */
  get #earlyKey(): string {
    return `${this.name}:${this.options.maxOldGenerationSizeMb ?? ''}`
  }

  /**
   * Starts this runner's workers now, before any runner needs them, so they load while the caller
   * does other work (`ptr run` imports the flow file meanwhile). The first runner of the same kind
   * and worker options that starts, in this process, takes them (a flow run works on a duplicate
   * of its runner); {@link PoolTaskRunner.stopEarlyWorkers} ends those that no runner took.
   */
  startWorkersEarly(): void {
    earlyPools.push({ key: this.#earlyKey, workers: this.options.maxWorkers, pool: this.#createPool(this.options.maxWorkers) })
  }

  /**
   * Has every worker started early import the run's bundle (see bundles.ts), so the first probe
   * finds its module loaded. Best effort: a module that fails says so at its probe.
   */
  static loadBundleInEarlyWorkers(): void {
    const bundle = moduleBundle()
    if (bundle === undefined) return
    for (const { pool, workers } of earlyPools) {
      // One call per worker, sent at once: workerpool gives each to a different idle worker.
      for (let i = 0; i < workers; i++) pool.exec(METHOD_PRELOAD, [bundle]).catch(() => undefined)
    }
  }

  /** Terminates the workers started early that no runner took. */
  static async stopEarlyWorkers(): Promise<void> {
    const pools = earlyPools.splice(0)
    await Promise.all(pools.map(({ pool }) => pool.terminate(true)))
  }

  protected override async onClose(): Promise<void> {
    const pool = this.#pool
    this.#pool = undefined
    startupMark(`pool: closing`)
    if (pool) await pool.terminate(true)
    startupMark(`pool: closed`)
  }

  protected override onCancelAll(_error: Error): void {
    for (const job of this.#inflight) job.cancel()
  }

  /**
   * Before a task's first run in this pool, makes sure a worker can find it (else the run fails
   * now). Runs of a task being probed wait in a list of their own meanwhile, then ask for a slot.
   */
  override acquire(run: TaskRun, then: (run: TaskRun) => void): boolean {
    const { key } = run.task
    if (this.#found.has(key)) return super.acquire(run, then)
    run.waker = then
    const waiting = this.#probing.get(key)
    if (waiting) {
      waiting.push(run)
      return false
    }
    const runs = [run]
    this.#probing.set(key, runs)
    void this.#probe(run).then((problem) => {
      this.#probing.delete(key)
      for (const waiter of runs) {
        const wake = waiter.waker
        waiter.waker = undefined
        // Cancelled while the probe ran: the run has settled, take no slot.
        if (wake === undefined || S.isSettled(waiter.state)) continue
        if (problem !== undefined) waiter.setState(S.Failed(new TaskNotFoundInWorkerError(problem)))
        else if (super.acquire(waiter, wake)) wake(waiter)
      }
    })
    return false
  }

  #probe(run: TaskRun): Promise<string | undefined> {
    const { key, name } = run.task
    let probe = this.#probes.get(key)
    if (!probe) {
      const advice = `define it with task() at the top level of its module and export it (not inside a function or a flow), or use --runner concurrent`
      const where = crossingName(this.crossing)
      probe = (async () => {
        if (!keyModuleUrl(key).startsWith('file:')) {
          return `task '${name}' cannot run in ${where}: ptr could not tell which module defines it; ${advice}`
        }
        await this.start()
        // One probe per worker, sent at once: workerpool gives each to a different worker (starting
        // them if need be), so every worker has imported the module before the first run starts,
        // and a run that gets a slot gets a ready worker.
        const pool = this.#pool!
        startupMark(`pool: probe sent for '${name}'`)
        const answers = (await Promise.all(
          Array.from({ length: this.options.maxWorkers }, () => pool.exec(METHOD_PROBE, [key, name])),
        )) as ProbeAnswer[]
        startupMark(`pool: probe answered for '${name}'`)
        const missing = answers.find((answer) => !answer.found)
        if (!missing) {
          this.#found.add(key)
          return undefined
        }
        return `task '${name}' was not found in ${where}: ${missing.reason}; ${advice}`
      })().catch((error: unknown) => `task '${name}' could not be looked up in ${where}: ${(error as Error)?.message}`)
      this.#probes.set(key, probe)
      // A failed probe (say, a worker crashed while importing) is tried again by the next run.
      void probe.then((problem) => {
        if (problem !== undefined) this.#probes.delete(key)
      })
    }
    return probe
  }

  override execute(run: TaskRun, args: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => this.#start(run, args, (_, failed, value) => (failed ? reject(value) : resolve(value))))
  }

  override executeThen(run: TaskRun, args: unknown[], ended: AttemptEnded): void {
    this.#start(run, args, ended)
  }

  /** Sends the attempt to a worker, alone or in a batch, and reports its end to `ended`. */
  #start(run: TaskRun, args: unknown[], ended: AttemptEnded): void {
    const batch = this.#joining.get(run)
    if (batch) this.#joining.delete(run)
    const problem = checkArguments(args, this.crossing)
    if (problem) {
      const error = new NotCloneableError(
        `task '${run.task.name}' (${run.name}): ${problem} to ${crossingName(this.crossing)}; pass plain data (numbers, strings, arrays, plain objects, Map, Set, Date), or use --runner concurrent`,
      )
      // As a rejected promise would: never in the caller's own turn.
      queueMicrotask(() => ended(run, true, error))
      return
    }
    const request: RunRequest = {
      key: run.task.key,
      args,
      taskRun: { id: run.id, name: run.name, taskName: run.task.name, attempt: run.attempt, stateName: run.state.name },
      flowRun: flowRunRecord(run.owner?.info),
    }
    if (batch && !batch.sent) return this.#join(batch, run, request, ended)
    const { key, options } = run.task
    const quick = (this.#runMs.get(key) ?? Number.POSITIVE_INFINITY) < QUICK_TASK_MS
    if (quick && options.timeoutSeconds === undefined && !this.#crashedOnce.has(run)) {
      // Take waiting runs of the same task along, to the same worker, in one message.
      const joiners = this.takeWaiting(
        (other) => other.task.key === key && other.task.options.timeoutSeconds === undefined && !this.#crashedOnce.has(other),
        MAX_BATCH - 1,
        run,
      )
      if (joiners.length > 0) {
        const started: Batch = { requests: [], runs: [], settle: [], sent: false }
        for (const joiner of joiners) this.#joining.set(joiner, started)
        this.#join(started, run, request, ended)
        // The joiners reach execute() once the current microtasks have run.
        setImmediate(() => this.#sendBatch(started, joiners))
        return
      }
    }
    // The engine creates an attempt's AbortSignal lazily; only runs with a deadline need one here
    // (cancellation reaches every job through onCancelAll).
    const signal = options.timeoutSeconds === undefined ? undefined : run.signal
    void this.#dispatch(run, [request], signal, EXEC_OPTIONS).then(
      (outcomes) => settleFrom(run, outcomes[0]!, ended),
      (error: unknown) => ended(run, true, error instanceof WorkerDied ? this.#crashed(run, error) : error),
    )
  }

  #join(batch: Batch, run: TaskRun, request: RunRequest, ended: AttemptEnded): void {
    batch.requests.push(request)
    batch.runs.push(run)
    batch.settle.push(ended)
  }

  #sendBatch(batch: Batch, joiners: readonly TaskRun[]): void {
    batch.sent = true
    // Joiners cancelled before they reached execute() never join.
    for (const joiner of joiners) if (this.#joining.get(joiner) === batch) this.#joining.delete(joiner)
    this.#runBatch(batch)
  }

  /**
   * Sends a batch to one worker and settles each run from its outcome. If the worker dies, the runs
   * that finished keep their results, only the run it died in is Crashed (and never batched again),
   * and the runs that had not started are sent again. When the worker could not say which run it
   * died in (killed, out of memory), the runs without an outcome are sent again one by one.
   */
  #runBatch({ runs, requests, settle }: Batch): void {
    const outcomes: RunOutcome[] = []
    let exiting = false
    const on = (payload: unknown) => {
      const message = payload as OutcomesMessage
      if (message?.type !== 'ptr.outcomes') return onWorkerEvent(payload)
      for (const outcome of message.outcomes) outcomes.push(outcome)
      if (message.exiting) exiting = true
    }
    const finish = (i: number) => settleFrom(runs[i]!, outcomes[i]!, settle[i]!)
    const holder = runs[0]!
    void this.#dispatch(holder, requests, undefined, { on }).then(
      (rest) => {
        for (const outcome of rest) outcomes.push(outcome)
        this.#noteRunTimes(holder.task.key, outcomes)
        for (let i = 0; i < runs.length; i++) finish(i)
      },
      (error: unknown) => {
        const crashedAt = outcomes.length
        if (!(error instanceof WorkerDied) || crashedAt >= runs.length) {
          for (let i = 0; i < runs.length; i++) (i < crashedAt ? finish(i) : settle[i]!(runs[i]!, true, error))
          return
        }
        // The worker said which run it died in (it was exiting), or only one run had no outcome.
        const known = exiting || crashedAt === runs.length - 1
        const again: Batch[] = []
        for (let i = known ? crashedAt + 1 : crashedAt; i < runs.length; i++) {
          if (S.isSettled(runs[i]!.state)) continue
          if (known) {
            again[0] ??= { runs: [], requests: [], settle: [], sent: true }
            again[0].runs.push(runs[i]!)
            again[0].requests.push(requests[i]!)
            again[0].settle.push(settle[i]!)
          } else {
            again.push({ runs: [runs[i]!], requests: [requests[i]!], settle: [settle[i]!], sent: true })
          }
        }
        // The runs sent again go on holding the batch's slot (the first run's, which ends here).
        if (again.length > 0 && holder.holdsSlot && !again.some((batch) => batch.runs[0] === holder)) {
          holder.holdsSlot = false
          again[0]!.runs[0]!.holdsSlot = true
        }
        for (let i = 0; i < crashedAt; i++) finish(i)
        if (known) {
          const victim = runs[crashedAt]!
          this.#crashedOnce.add(victim)
          settle[crashedAt]!(victim, true, this.#crashed(victim, error))
        } else {
          for (const batch of again) this.#crashedOnce.add(batch.runs[0]!)
        }
        for (const batch of again) this.#runBatch(batch)
      },
    )
  }

  #crashed(run: TaskRun, died: WorkerDied): CrashedError {
    return new CrashedError(`the ${this.name} worker running '${run.name}' ${died.reason}`)
  }

  #noteRunTimes(key: string, outcomes: readonly RunOutcome[]): void {
    let average = this.#runMs.get(key)
    for (const outcome of outcomes) average = average === undefined ? outcome.ms : average * 0.8 + outcome.ms * 0.2
    if (average !== undefined) this.#runMs.set(key, average)
  }

  /** Sends requests to a worker; rejects with WorkerDied when the worker died under them. */
  #dispatch(run: TaskRun, requests: RunRequest[], signal: AbortSignal | undefined, execOptions: ExecOptions, again = false): Promise<RunOutcome[]> {
    const pool = this.#pool
    if (!pool) return Promise.reject(new WorkerDied(`could not start: the ${this.name} pool is closed`))
    // A process worker's stderr is piped here (see ProcessPoolTaskRunner), off the terminal: what it holds
    // only says why the worker died. console.error reaches the run's log as a log event instead.
    let stderr = ''
    const on = this.capturesStdStreams
      ? (payload: unknown) => {
          const stream = payload as { stdout?: unknown; stderr?: unknown }
          if (typeof stream?.stderr === 'string') {
            stderr += stream.stderr
            // Its first lines say what happened (V8's FATAL ERROR line), its last ones where.
            if (stderr.length > 2 * STDERR_KEPT) stderr = stderr.slice(0, STDERR_KEPT) + stderr.slice(-STDERR_KEPT)
          }
          else if (typeof stream?.stdout === 'string') process.stdout.write(stream.stdout)
          else execOptions.on(payload)
        }
      : execOptions.on
    const job = pool.exec(METHOD_RUN, [requests], { on }) as Job<RunOutcome[]>
    // Stopping an attempt (timeout, cancellation) aborts its signal in the worker, which then has
    // ABORT_GRACE_MS to end before the worker is terminated; the pool starts a new one.
    // (A block body: an EventTarget listener that returns a rejected thenable raises it as uncaught.)
    const onAbort = signal
      ? () => {
          job.cancel()
        }
      : undefined
    if (onAbort) signal!.addEventListener('abort', onAbort, { once: true })
    this.#inflight.add(job)
    // workerpool's promise is a thenable with synchronous callbacks; the engine awaits it as is.
    return job.then(
      (outcomes) => {
        if (onAbort) signal!.removeEventListener('abort', onAbort)
        this.#inflight.delete(job)
        if (requests.length === 1) this.#noteRunTimes(run.task.key, outcomes)
        return outcomes
      },
      (error: unknown): Promise<RunOutcome[]> => {
        if (onAbort) signal!.removeEventListener('abort', onAbort)
        this.#inflight.delete(job)
        if (signal?.aborted) throw signal.reason
        if (requests.length === 1 && S.isSettled(run.state)) throw run.cancelError ?? new CancelledError('cancelled')
        // The worker had died while idle: these attempts never started, so send them again once.
        if (!again && (error as Error)?.message === 'Worker is terminated') return this.#dispatch(run, requests, signal, execOptions, true)
        throw new WorkerDied(this.describeCrash(error, stderr))
      },
    ) as unknown as Promise<RunOutcome[]>
  }

  /**
   * Why a worker died, from what workerpool reports, as the end of a sentence: `exited with code 3`,
   * `was killed by SIGKILL`, `ran out of memory (maxOldGenerationSizeMb 64)`.
   */
  protected describeCrash(error: unknown, stderr = ''): string {
    const err = error as { message?: string; cause?: { code?: string; message?: string } } | undefined
    const message = err?.message ?? String(error)
    const limit = this.options.maxOldGenerationSizeMb
    const oom = `ran out of memory${limit ? ` (maxOldGenerationSizeMb ${limit})` : ''}`
    if (err?.cause?.code === 'ERR_WORKER_OUT_OF_MEMORY' || /heap out of memory|Reached heap limit/.test(stderr)) return oom
    const exitCode = /exitCode: `([^`]*)`/.exec(message)?.[1]
    const signalCode = /signalCode: `([^`]*)`/.exec(message)?.[1]
    if (signalCode && signalCode !== 'null' && signalCode !== 'undefined') {
      // V8 aborts the process when the heap limit is reached.
      if (signalCode === 'SIGABRT') return oom
      return `was killed by ${signalCode}`
    }
    if (exitCode && exitCode !== 'null' && exitCode !== 'undefined') return exitCode === '134' ? oom : `exited with code ${exitCode}`
    if (message.startsWith('Workerpool Worker error: ')) return `failed: ${message.slice('Workerpool Worker error: '.length).split('\n')[0]}`
    return `stopped: ${message.split('\n')[0]}`
  }
}

/** Pools whose workers were started before a runner needed them (see startWorkersEarly). */
const earlyPools: { key: string; workers: number; pool: Pool }[] = []

function takeEarlyPool(key: string, maxWorkers: number): Pool | undefined {
  const index = earlyPools.findIndex((early) => early.key === key && early.workers <= maxWorkers)
  if (index < 0) return undefined
  const { pool } = earlyPools.splice(index, 1)[0]!
  // From here on it is the runner's own pool: up to its size, workers started on demand.
  Object.assign(pool, { maxWorkers, minWorkers: 0 })
  return pool
}

/** A worker died under a job; `reason` ends a sentence that names the run. */
class WorkerDied extends Error {
  constructor(readonly reason: string) {
    super(reason)
  }
}

type ExecOptions = { on: (payload: unknown) => void }

/** Runs nested inside workers' runs that have not settled yet, by id: one info object per run. */
const nestedRuns = new Map<string, { -readonly [K in keyof TaskRunInfo]: TaskRunInfo[K] }>()

const fromStateRecord = ({ error, ...rest }: StateRecord): State => (error ? { ...rest, error: fromErrorRecord(error) } : rest)

function onWorkerEvent(payload: unknown): void {
  const message = payload as LogMessage | StateMessage
  if (message?.type === 'ptr.log') runEvents.emit(message.event)
  else if (message?.type === 'ptr.state') {
    const state = fromStateRecord(message.state)
    let taskRun = nestedRuns.get(message.taskRun.id)
    if (taskRun) Object.assign(taskRun, message.taskRun, { state })
    else nestedRuns.set(message.taskRun.id, (taskRun = { ...message.taskRun, state }))
    if (isSettled(state)) nestedRuns.delete(taskRun.id)
    runEvents.emit({ kind: 'task-run-state', taskRun, state, previous: message.previous && fromStateRecord(message.previous) })
  }
}
const EXEC_OPTIONS: ExecOptions = { on: onWorkerEvent }

/** Reports a worker's outcome of `run`'s attempt to `ended`: its value (a returned state revived), or its error. */
function settleFrom(run: TaskRun, outcome: RunOutcome, ended: AttemptEnded): void {
  let value: unknown
  try {
    if (!outcome.ok) return ended(run, true, fromErrorRecord(outcome.error))
    value = outcome.state ? reviveStateValue(fromStateRecord(outcome.state), outcome.value) : outcome.value
  } catch (error) {
    return ended(run, true, error)
  }
  ended(run, false, value)
}

/** The flow run as a worker's run context shows it: one record per flow run and state name, shared by its runs' requests. */
let lastFlowRun: { info: FlowRunInfo; stateName: string; record: RunRequest['flowRun'] } | undefined
function flowRunRecord(info: FlowRunInfo | undefined): RunRequest['flowRun'] {
  if (info === undefined) return undefined
  const stateName = info.state.name
  if (lastFlowRun?.info !== info || lastFlowRun.stateName !== stateName) {
    lastFlowRun = { info, stateName, record: { id: info.id, name: info.name, flowName: info.flowName, stateName } }
  }
  return lastFlowRun.record
}
