import os from 'node:os'
import { fileURLToPath } from 'node:url'
import workerpool from 'workerpool'
import type { Pool, WorkerPoolOptions } from 'workerpool'
import { CancelledError, CrashedError, PtrError } from '../errors.ts'
import { runEvents } from '../engine/events.ts'
import type { TaskRunInfo } from '../engine/events.ts'
import * as S from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import { reviveStateValue } from '../engine/state-values.ts'
import type { State } from '../engine/states.ts'
import type { TaskRun } from '../engine/task-run.ts'
import { checkArguments, crossingName } from './crossing.ts'
import type { Crossing } from './crossing.ts'
import { METHOD_PROBE, METHOD_RUN, keyModuleUrl } from './pool-protocol.ts'
import type { ErrorRecord, LogMessage, ProbeAnswer, RunOutcome, RunRequest, StateMessage, StateRecord } from './pool-protocol.ts'
import { TaskRunner } from '../engine/task-runner.ts'

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

const WORKER_SCRIPT = fileURLToPath(new URL('./pool-worker.ts', import.meta.url))
/** Registers tsx in each worker; an absolute URL, so it never resolves from the user's cwd. */
export const BOOTSTRAP_URL = new URL('./pool-bootstrap.mjs', import.meta.url).href
/** How long a worker told to stop may take before it is killed. */
const TERMINATE_TIMEOUT_MS = 200
/**
 * Runs of a task that takes under this long (moving average, measured in the workers) travel to
 * a worker in batches: one message for many runs, because a round trip costs far more than they do.
 */
const QUICK_TASK_MS = 1
/** Most runs in one batch. */
const MAX_BATCH = 64

/** Runs sent to one worker in one message; they share the slot of the run that started it. */
interface Batch {
  readonly requests: RunRequest[]
  readonly runs: TaskRun[]
  readonly settle: { resolve: (value: unknown) => void; reject: (error: unknown) => void }[]
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

/** A task that a worker cannot find: fails its run before any attempt. */
export class TaskNotFoundInWorkerError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_TASK_NOT_FOUND', retryable: false })
  }
}

/** An argument or return value that cannot cross into or out of a worker. */
export class NotCloneableError extends PtrError {
  constructor(message: string) {
    super(message, { code: 'PTR_NOT_CLONEABLE', retryable: false })
  }
}

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
  #inflight = new Set<Job<unknown>>()
  /** Moving average of each task's run time in the workers (ms), by task key. */
  #runMs = new Map<string, number>()
  /** Runs taken from the queue to join a batch, until they reach execute(). */
  #joining = new Map<TaskRun, Batch>()

  protected constructor(className: string, options: PoolTaskRunnerOptions) {
    const resolved = resolveOptions(className, options)
    super(resolved.maxWorkers)
    this.options = resolved
  }

  /** How values cross into this runner's workers. */
  protected abstract get crossing(): Crossing
  /** The workerpool options that make this kind of pool. */
  protected abstract poolOptions(bootstrap: string): WorkerPoolOptions

  /** Workers alive now and how many are busy (for tests and diagnostics). */
  get workerStats(): { total: number; busy: number } {
    const stats = this.#pool?.stats()
    return { total: stats?.totalWorkers ?? 0, busy: stats?.busyWorkers ?? 0 }
  }

  protected override async onStart(): Promise<void> {
    this.#pool = workerpool.pool(WORKER_SCRIPT, {
      maxWorkers: this.options.maxWorkers,
      workerTerminateTimeout: TERMINATE_TIMEOUT_MS,
      ...this.poolOptions(BOOTSTRAP_URL),
    })
  }

  protected override async onClose(): Promise<void> {
    const pool = this.#pool
    this.#pool = undefined
    if (pool) await pool.terminate(true)
  }

  protected override onCancelAll(_error: Error): void {
    for (const job of this.#inflight) job.cancel()
  }

  /** Before a task's first run in this pool, makes sure a worker can find it (else the run fails now). */
  override acquire(run: TaskRun): Promise<void> | void {
    if (this.#found.has(run.task.key)) return super.acquire(run)
    return this.#probe(run).then((problem) => {
      // Cancelled while the probe ran: the run has settled, take no slot.
      if (S.isSettled(run.state)) return
      if (problem === undefined) return super.acquire(run)
      const error = new TaskNotFoundInWorkerError(problem)
      run.setState(S.Failed(error))
      throw error
    })
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
        const answers = (await Promise.all(
          Array.from({ length: this.options.maxWorkers }, () => pool.exec(METHOD_PROBE, [key, name])),
        )) as ProbeAnswer[]
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
    const batch = this.#joining.get(run)
    if (batch) this.#joining.delete(run)
    const problem = checkArguments(args, this.crossing)
    if (problem) {
      return Promise.reject(
        new NotCloneableError(
          `task '${run.task.name}' (${run.name}): ${problem} to ${crossingName(this.crossing)}; pass plain data (numbers, strings, arrays, plain objects, Map, Set, Date), or use --runner concurrent`,
        ),
      )
    }
    const info = run.owner?.info
    const request: RunRequest = {
      key: run.task.key,
      args,
      taskRun: { id: run.id, name: run.name, taskName: run.task.name, attempt: run.attempt, stateName: run.state.name },
      flowRun: info ? { id: info.id, name: info.name, flowName: info.flowName, stateName: info.state.name } : undefined,
    }
    if (batch && !batch.sent) return this.#join(batch, run, request)
    const { key, options } = run.task
    const quick = (this.#runMs.get(key) ?? Number.POSITIVE_INFINITY) < QUICK_TASK_MS
    if (quick && options.timeoutSeconds === undefined) {
      // Take waiting runs of the same task along, to the same worker, in one message.
      const joiners = this.takeWaiting((other) => other.task.key === key && other.task.options.timeoutSeconds === undefined, MAX_BATCH - 1)
      if (joiners.length > 0) {
        const started: Batch = { requests: [], runs: [], settle: [], sent: false }
        for (const joiner of joiners) this.#joining.set(joiner, started)
        const promise = this.#join(started, run, request)
        // The joiners reach execute() once the current microtasks have run.
        setImmediate(() => this.#sendBatch(started, joiners))
        return promise
      }
    }
    // The engine creates an attempt's AbortSignal lazily; only runs with a deadline need one here
    // (cancellation reaches every job through onCancelAll).
    const signal = options.timeoutSeconds === undefined ? undefined : run.signal
    return this.#dispatch(run, [request], signal, false).then((outcomes) => unpack(outcomes[0]!))
  }

  #join(batch: Batch, run: TaskRun, request: RunRequest): Promise<unknown> {
    return new Promise((resolve, reject) => {
      batch.requests.push(request)
      batch.runs.push(run)
      batch.settle.push({ resolve, reject })
    })
  }

  #sendBatch(batch: Batch, joiners: readonly TaskRun[]): void {
    batch.sent = true
    // Joiners cancelled before they reached execute() never join.
    for (const joiner of joiners) if (this.#joining.get(joiner) === batch) this.#joining.delete(joiner)
    this.#dispatch(batch.runs[0]!, batch.requests, undefined, false).then(
      (outcomes) =>
        outcomes.forEach((outcome, i) => {
          const { resolve, reject } = batch.settle[i]!
          try {
            resolve(unpack(outcome))
          } catch (error) {
            reject(error)
          }
        }),
      (error: unknown) => {
        const why = error instanceof CrashedError ? error.message.replace(/^'[^']*' crashed: /, '') : String(error)
        batch.runs.forEach((run, i) => {
          batch.settle[i]!.reject(
            error instanceof CrashedError ? new CrashedError(`'${run.name}' crashed (in a batch of ${batch.runs.length} sent to one worker): ${why}`, error.cause) : error,
          )
        })
      },
    )
  }

  #noteRunTimes(key: string, outcomes: readonly RunOutcome[]): void {
    let average = this.#runMs.get(key)
    for (const { ms } of outcomes) average = average === undefined ? ms : average * 0.8 + ms * 0.2
    if (average !== undefined) this.#runMs.set(key, average)
  }

  #dispatch(run: TaskRun, requests: RunRequest[], signal: AbortSignal | undefined, again: boolean): Promise<RunOutcome[]> {
    const pool = this.#pool
    if (!pool) return Promise.reject(new CrashedError(`'${run.name}' could not start: the ${this.name} pool is closed`))
    // Log lines carry their own run ids, so one shared event handler serves every job.
    const job = pool.exec(METHOD_RUN, [requests], EXEC_OPTIONS) as Job<RunOutcome[]>
    // Stopping an attempt (timeout, cancellation) terminates its worker; the pool starts a new one.
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
        this.#noteRunTimes(run.task.key, outcomes)
        return outcomes
      },
      (error: unknown): Promise<RunOutcome[]> => {
        if (onAbort) signal!.removeEventListener('abort', onAbort)
        this.#inflight.delete(job)
        if (signal?.aborted) throw signal.reason
        if (S.isSettled(run.state)) throw run.cancelError ?? new CancelledError('cancelled')
        // The worker had died while idle: this attempt never started, so send it again once.
        if (!again && (error as Error)?.message === 'Worker is terminated') return this.#dispatch(run, requests, signal, true)
        throw new CrashedError(`'${run.name}' crashed: ${this.describeCrash(error)}`, error)
      },
    ) as unknown as Promise<RunOutcome[]>
  }

  /** Says why a worker died, from what workerpool reports: exit code, signal, out of memory. */
  protected describeCrash(error: unknown): string {
    const err = error as { message?: string; cause?: { code?: string; message?: string } } | undefined
    const message = err?.message ?? String(error)
    const kind = this.name === 'thread' ? 'worker thread' : 'worker process'
    const limit = this.options.maxOldGenerationSizeMb
    const oom = `its ${kind} ran out of memory${limit ? ` (maxOldGenerationSizeMb: ${limit})` : ''}`
    if (err?.cause?.code === 'ERR_WORKER_OUT_OF_MEMORY') return oom
    const exitCode = /exitCode: `([^`]*)`/.exec(message)?.[1]
    const signalCode = /signalCode: `([^`]*)`/.exec(message)?.[1]
    if (signalCode && signalCode !== 'null' && signalCode !== 'undefined') {
      // V8 aborts the process when the heap limit is reached.
      if (signalCode === 'SIGABRT') return `${oom} (it aborted with SIGABRT)`
      return `its ${kind} was killed by ${signalCode}`
    }
    if (exitCode && exitCode !== 'null' && exitCode !== 'undefined') {
      if (exitCode === '134') return `${oom} (it exited with code 134)`
      return `its ${kind} exited with code ${exitCode} (process.exit() in the task, or an uncaught error)`
    }
    if (message.startsWith('Workerpool Worker error: ')) return `its ${kind} failed: ${message.slice('Workerpool Worker error: '.length)}`
    return `its ${kind} stopped: ${message.split('\n')[0]}`
  }
}

/** Runs nested inside workers' runs that have not settled yet, by id: one info object per run. */
const nestedRuns = new Map<string, { -readonly [K in keyof TaskRunInfo]: TaskRunInfo[K] }>()

const fromStateRecord = ({ error, ...rest }: StateRecord): State => (error ? { ...rest, error: fromRecord(error) } : rest)

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
const EXEC_OPTIONS = { on: onWorkerEvent }

function unpack(outcome: RunOutcome): unknown {
  if (outcome.ok) return outcome.state ? reviveStateValue(fromStateRecord(outcome.state), outcome.value) : outcome.value
  throw fromRecord(outcome.error)
}

/** Rebuilds an Error from a worker's record: same name, message, stack and code. */
function fromRecord(record: ErrorRecord): Error {
  const error =
    record.ptr === 'return-value'
      ? new NotCloneableError(record.message)
      : record.ptr === 'not-found'
        ? new TaskNotFoundInWorkerError(record.message)
        : new Error(record.message)
  if (!record.ptr) {
    if (record.name !== 'Error') Object.defineProperty(error, 'name', { value: record.name, configurable: true, writable: true })
    if (record.code !== undefined) Object.assign(error, { code: record.code })
  }
  if (record.stack) error.stack = record.stack
  if (record.hasThrown) Object.assign(error, { thrown: record.thrown })
  return error
}
