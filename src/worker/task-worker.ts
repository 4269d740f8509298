import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import os from 'node:os'
import { captureConsole, runWithContext, setLogSink } from '../engine/context.ts'
import type { LogSink, RunContext } from '../engine/context.ts'
import { runEvents } from '../engine/events.ts'
import type { AnyTask } from '../engine/task-types.ts'
import { isTask } from '../engine/task-types.ts'
import { retryDelayMs, withTimeLimit } from '../engine/retry.ts'
import { retryAllowed } from '../engine/task-run.ts'
import { CancelledError, CrashedError, PtrError, TaskRunTimeoutError, UsageError, toError } from '../errors.ts'
import { inlineRunner } from '../engine/task-runner.ts'
import type { ClaimedRun, LogLine, QueueBackend } from '../queue/backend.ts'
import { decodeValue, encodeValue, storeError } from '../queue/codec.ts'
import { openQueue, queueTimingsFromEnv, setDefaultQueue } from '../queue/open.ts'
import { resolveQueueUrl } from '../queue/url.ts'
import { closeDefaultLimits } from '../limits/open.ts'
import { takeTagSlots } from '../limits/tag-slots.ts'

export interface TaskWorkerOptions {
  /** Most runs executing at once, exactly (no prefetch). @default 10 */
  limit?: number
  /** Queue URL, or an open backend (left open by `stop()`). @default `resolveQueueUrl()` */
  queue?: string | QueueBackend
  /** Seconds in-flight runs get to finish after `stop()` before they are handed back. @default 10 */
  graceSeconds?: number
  /** Lease length in seconds (a dead worker's runs go back after this). @default 10, or PREFECT_TASK_WORKER_LEASE_SECONDS */
  leaseSeconds?: number
  /** Lease losses after which a run ends Crashed. @default 3, or PREFECT_TASK_WORKER_MAX_LOST_LEASES */
  maxLostLeases?: number
  /** Where the queue URL came from, for error messages. @default `--queue` */
  queueSource?: string
  /** Serve `GET /status` and `GET /health` on this port (0 picks a free one). @default no status server */
  statusPort?: number
  /** Address of the status server. @default 127.0.0.1 */
  statusHost?: string
  /** Where the worker writes its lines (run states, task logs). @default nothing */
  log?: (line: string) => void
}

export interface InFlightRun {
  id: string
  name: string
  task: string
  attempt: number
  startedAt: string
}

export interface WorkerStatus {
  worker: string
  queue: string
  state: 'starting' | 'serving' | 'stopping' | 'stopped'
  startedAt: string | undefined
  limit: number
  inFlight: number
  running: InFlightRun[]
  /** Runs this worker ended (completed + failed + cancelled). */
  finished: number
  completed: number
  failed: number
  /** Attempts that failed and were scheduled to retry. */
  retried: number
  /** Runs stopped here because cancellation was asked. */
  cancelled: number
  tasks: string[]
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: Error }

interface Slot {
  run: ClaimedRun
  startedAt: number
  /** Why the attempt must stop now (lease lost, cancelled, timed out, worker stopping); the first reason wins. */
  stopReason?: Error
  /** The task's AbortSignal's controller, made only if the task reads its signal (most never do). */
  controller?: AbortController
  /** Ends the attempt's wait with the stop reason, even if the task ignores its signal. */
  onStop?: (reason: Error) => void
  logs: LogLine[]
  /** Set once the lease is gone (lost or handed back): nothing more is written for this attempt. */
  abandoned: boolean
  done: Promise<void>
  /** Settles when the task function itself returns or throws (an attempt may end before: timeout, lost lease, cancel). */
  body: Promise<void>
  bodyDone: boolean
}

const time = (ms = Date.now()) => new Date(ms).toISOString().slice(11, 23)

/** Stops a running attempt: its wait ends at once with `reason`, and its signal (if the task took it) aborts. */
function stopAttempt(slot: Slot, reason: Error): void {
  if (slot.stopReason) return
  slot.stopReason = reason
  slot.controller?.abort(reason)
  slot.onStop?.(reason)
}

/** The tasks a module namespace exports (each once), for `worker serve FILE`. */
export function tasksOf(exports: Record<string, unknown>): AnyTask[] {
  // `t.withOptions(...)` copies share their task's key: one task, served once (the first export).
  const byKey = new Map<string, AnyTask>()
  for (const value of Object.values(exports)) if (isTask(value) && !byKey.has(value.key)) byKey.set(value.key, value)
  return [...byKey.values()]
}

/**
 * A task worker: claims runs of the tasks it serves from a queue and runs them here, at most
 * `limit` at once. Runs go on the queue by task name, so names must be unique among served tasks.
 * At least once: a run whose worker dies goes back to the queue when its lease expires.
 */
export class TaskWorker {
  readonly id: string
  readonly limit: number
  readonly #tasks: Map<string, AnyTask>
  readonly #options: TaskWorkerOptions
  #backend: QueueBackend | undefined
  #ownsBackend = false
  #inFlight = new Map<string, Slot>()
  /** Reports (complete, retry, fail) still being written, of runs whose task has returned. */
  #reports = new Set<Promise<void>>()
  #state: WorkerStatus['state'] = 'starting'
  #startedAt: number | undefined
  #counts = { completed: 0, failed: 0, retried: 0, cancelled: 0 }
  #stopWatching: (() => void) | undefined
  #renewTimer: NodeJS.Timeout | undefined
  /** Slots asked for by claims still in flight. */
  #reserved = 0
  /**
   * Attempts that ended (timed out, lease lost, cancelled) while their task function, which
   * ignored its signal, still runs here: they keep their slot until it returns, so `limit`
   * bounds what really runs.
   */
  #lingering = 0
  #claimAgain = false
  /** A claim is due once the pending promise callbacks have run (see #claimSoon). */
  #claimQueued = false
  #server: Server | undefined
  #restoreConsole: (() => void) | undefined
  #idle: (() => void) | undefined
  /** Ends the grace period now (a second stop() with `graceSeconds: 0`). */
  #endGrace: (() => void) | undefined
  #stopping: Promise<void> | undefined
  #stopFault: (() => void) | undefined
  #fault: Error | undefined
  #onFault!: (error: Error) => void
  /**
   * Resolves with the error if the queue becomes unusable for good (an SQLite file deleted,
   * replaced or read-only): the worker then stops at once, handing back what it can. Never rejects.
   */
  readonly failed: Promise<Error> = new Promise((resolve) => (this.#onFault = resolve))
  /** When the last "claim failed" line was written, and what it said: a queue that keeps failing is said once, not five times a second. */
  #claimFailure = { at: 0, message: '' }

  constructor(tasks: readonly AnyTask[], options: TaskWorkerOptions = {}) {
    const limit = options.limit ?? 10
    if (!(Number.isInteger(limit) && limit >= 1)) {
      throw new UsageError(`expected \`limit\` to be an integer from 1 and up, got \`${String(limit)}\` (${typeof limit})`, 'PTR_BAD_LIMIT')
    }
    if (options.graceSeconds !== undefined && !(options.graceSeconds >= 0)) {
      throw new UsageError(`expected \`grace\` to be seconds from 0 and up, got \`${String(options.graceSeconds)}\``, 'PTR_BAD_GRACE')
    }
    if (options.leaseSeconds !== undefined && !(options.leaseSeconds > 0)) {
      throw new UsageError(`expected \`lease\` to be seconds above 0, got \`${String(options.leaseSeconds)}\``, 'PTR_BAD_LEASE')
    }
    if (tasks.length === 0) throw new UsageError('a task worker needs at least one task to serve', 'PTR_NO_TASKS')
    this.#tasks = new Map()
    for (const task of tasks) {
      const other = this.#tasks.get(task.name)
      if (other && other !== task) {
        throw new UsageError(
          `two served tasks are named '${task.name}'; runs find their task by name on the queue, so give one another name: task({ name: '...' }, fn)`,
          'PTR_DUPLICATE_TASK_NAME',
        )
      }
      this.#tasks.set(task.name, task)
    }
    this.limit = limit
    this.#options = options
    this.id = `${os.hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  }

  /** The task names this worker serves. */
  get tasks(): string[] {
    return [...this.#tasks.keys()]
  }

  /** The queue URL (password hidden), once started. */
  get queueUrl(): string | undefined {
    return this.#backend?.url
  }

  /** The status server's address, if it runs. */
  get statusAddress(): { host: string; port: number } | undefined {
    const address = this.#server?.address()
    return address && typeof address === 'object' ? { host: address.address, port: address.port } : undefined
  }

  status(): WorkerStatus {
    const { completed, failed, retried, cancelled } = this.#counts
    return {
      worker: this.id,
      queue: this.#backend?.url ?? '',
      state: this.#state,
      startedAt: this.#startedAt === undefined ? undefined : new Date(this.#startedAt).toISOString(),
      limit: this.limit,
      inFlight: this.#inFlight.size + this.#lingering,
      running: [...this.#inFlight.values()].map((s) => ({
        id: s.run.runId,
        name: s.run.name,
        task: s.run.task,
        attempt: s.run.attempt,
        startedAt: new Date(s.startedAt).toISOString(),
      })),
      finished: completed + failed + cancelled,
      completed,
      failed,
      retried,
      cancelled,
      tasks: this.tasks,
    }
  }

  async start(): Promise<void> {
    const { queue } = this.#options
    const timings = queueTimingsFromEnv()
    if (this.#options.leaseSeconds !== undefined) timings.leaseMs = Math.round(this.#options.leaseSeconds * 1000)
    if (this.#options.maxLostLeases !== undefined) timings.maxLostLeases = this.#options.maxLostLeases
    if (typeof queue === 'object') {
      this.#backend = queue
    } else {
      const { url, source } = queue === undefined ? resolveQueueUrl() : { url: queue, source: this.#options.queueSource ?? '--queue' }
      this.#backend = await openQueue(url, { ...timings, source })
      this.#ownsBackend = true
      // Tasks that delay more work put it on the queue this worker serves.
      setDefaultQueue(url, this.#backend, { ...timings, source })
    }
    const backend = this.#backend
    this.#stopFault = backend.onFault((error) => {
      this.#fault ??= error
      this.#onFault(error)
      void this.stop({ graceSeconds: 0 })
    })
    if (this.#options.statusPort !== undefined) await this.#startStatusServer(this.#options.statusPort, this.#options.statusHost ?? '127.0.0.1')
    setLogSink(this.#logSink)
    this.#restoreConsole = captureConsole()
    this.#startedAt = Date.now()
    this.#state = 'serving'
    this.#renewTimer = setInterval(() => this.#renew(), Math.max(10, Math.floor(backend.leaseMs / 3)))
    this.#stopWatching = backend.watchWork(this.tasks, () => this.#claim())
  }

  /**
   * Stops claiming, lets in-flight runs finish within the grace period, hands the rest back to the
   * queue (they run again elsewhere), then frees everything. Idempotent.
   */
  stop(options: { graceSeconds?: number } = {}): Promise<void> {
    // Already stopping: a shorter grace (0: hand back now) still applies.
    if (this.#stopping && options.graceSeconds === 0) this.#endGrace?.()
    this.#stopping ??= this.#stop(options.graceSeconds ?? this.#options.graceSeconds ?? 10)
    return this.#stopping
  }

  async #stop(graceSeconds: number): Promise<void> {
    this.#state = 'stopping'
    this.#stopWatching?.()
    this.#stopFault?.()
    if (this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => (this.#idle = resolve)),
        new Promise<void>((resolve) => {
          this.#endGrace = resolve
          timer = setTimeout(resolve, graceSeconds * 1000)
        }),
      ])
      clearTimeout(timer)
      this.#endGrace = undefined
    }
    const left = [...this.#inFlight.values()]
    await Promise.all([
      ...left.map(async (slot) => {
        slot.abandoned = true
        stopAttempt(slot, new CancelledError(`worker ${this.id} stopped; the run went back to the queue`))
        this.#line(`${slot.run.name} Scheduled (handed back: grace period of ${graceSeconds} s over)`)
        await this.#backend!.release(slot.run, `worker ${this.id} stopped after a grace period of ${graceSeconds} s`).catch(() => false)
        await this.#flushLogs(slot)
        this.#inFlight.delete(slot.run.runId)
      }),
      ...this.#reports,
    ])
    clearInterval(this.#renewTimer)
    this.#restoreConsole?.()
    setLogSink(undefined)
    // close() alone waits for every open connection, and a client that sent half a request (or
    // keeps an idle keep-alive connection) would hold the worker forever: end them all.
    const server = this.#server
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await closed
    }
    if (this.#ownsBackend) {
      setDefaultQueue(undefined)
      await closeDefaultLimits()
      await this.#backend?.close()
    }
    this.#state = 'stopped'
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  /**
   * Claims runs for the free slots. Claims may overlap (a slot that frees up claims at once,
   * without waiting for another claim's round trip); each reserves the slots it asks for, so runs
   * in flight plus slots reserved never exceed `limit`: no hidden prefetch.
   */
  #claim(): void {
    if (this.#state !== 'serving') return
    const free = this.limit - this.#inFlight.size - this.#lingering - this.#reserved
    if (free <= 0) {
      // Work may have arrived after the claims in flight looked: look again when they return.
      if (this.#reserved > 0) this.#claimAgain = true
      return
    }
    this.#reserved += free
    this.#claimAgain = false
    this.#backend!.claim(this.id, this.tasks, free).then(
      (runs) => {
        this.#reserved -= free
        for (const run of runs) this.#execute(run)
        if (this.#claimAgain || (runs.length > 0 && runs.length === free)) this.#claim()
      },
      (error: unknown) => {
        this.#reserved -= free
        if (this.#fault || this.#state !== 'serving') return
        const message = toError(error).message
        const now = Date.now()
        if (message !== this.#claimFailure.message || now - this.#claimFailure.at > 30_000) {
          this.#claimFailure = { at: now, message }
          this.#line(`claim failed: ${message}; trying again`)
        }
        setTimeout(() => this.#claim(), 200)
      },
    )
  }

  #renew(): void {
    const slots = [...this.#inFlight.values()].filter((s) => !s.abandoned)
    if (slots.length === 0) return
    this.#backend!.renew(slots.map((s) => s.run)).then(
      (outcomes) => {
        outcomes.forEach((outcome, i) => {
          const slot = slots[i]!
          if (outcome === 'lost' && !slot.abandoned) {
            slot.abandoned = true
            stopAttempt(slot, new CrashedError(`worker ${this.id} lost the lease of '${slot.run.name}'; another worker runs it`))
          } else if (outcome === 'cancelled') {
            stopAttempt(slot, new CancelledError(`'${slot.run.name}' was cancelled`))
          }
        })
      },
      () => undefined,
    )
  }

  #execute(run: ClaimedRun): void {
    const slot: Slot = { run, startedAt: Date.now(), logs: [], abandoned: false, done: Promise.resolve(), body: Promise.resolve(), bodyDone: true }
    this.#inFlight.set(run.runId, slot)
    this.#line(`${run.name} ${run.attempt > 1 ? `Retrying (attempt ${run.attempt})` : 'Running'}`)
    slot.done = this.#attempt(slot).then((outcome) => {
      // The slot is free once the task has returned: the claim for the next run goes out in the
      // same write as this run's report (one round trip), and the report finishes in the background.
      this.#inFlight.delete(run.runId)
      if (!slot.bodyDone) {
        this.#lingering++
        void slot.body.then(() => {
          this.#lingering--
          this.#claim()
        })
      }
      const report = this.#report(slot, outcome).catch((error: unknown) => this.#line(`${run.name}: could not record how it ended: ${toError(error).message}`))
      this.#reports.add(report)
      void report.finally(() => this.#reports.delete(report))
      if (this.#inFlight.size === 0) this.#idle?.()
      this.#claimSoon()
    })
  }

  /**
   * Claims once the promise callbacks now pending have run: runs that end together (a batch of
   * quick tasks, claimed together) free their slots in one turn, and one claim for all of them
   * goes out with their reports, instead of one claim per slot.
   */
  #claimSoon(): void {
    if (this.#claimQueued) return
    this.#claimQueued = true
    process.nextTick(() => {
      this.#claimQueued = false
      this.#claim()
    })
  }

  /** Runs the task once, holding a slot of each of its limited tags; never rejects. */
  async #attempt(slot: Slot): Promise<Outcome> {
    let freeTagSlots: (() => void) | undefined
    try {
      const task = this.#tasks.get(slot.run.task)!
      if (task.options.tags?.length) freeTagSlots = await this.#tagSlots(task.options.tags, slot)
      const args = decodeValue(slot.run.args) as unknown[]
      return { ok: true, value: await this.#invoke(task, slot, args) }
    } catch (error) {
      return { ok: false, error: toError(error) }
    } finally {
      freeTagSlots?.()
    }
  }

  /**
   * Waits for a slot of each limited tag of the run's task (in the queue's store), as `ptr run`
   * does for its own runs; stopping the attempt (worker stopping, run cancelled) ends the wait.
   */
  async #tagSlots(tags: readonly string[], slot: Slot): Promise<(() => void) | undefined> {
    const taking = takeTagSlots(tags, (wanted) => {
      const controller = new AbortController()
      if (slot.stopReason) controller.abort(slot.stopReason)
      else slot.onStop = (reason) => controller.abort(reason)
      return {
        holder: `${slot.run.name} (${slot.run.runId})`,
        signal: controller.signal,
        onWait: () => this.#line(`${slot.run.name} AwaitingConcurrencySlot (${wanted.join(', ')})`),
      }
    })
    try {
      return await taking
    } finally {
      slot.onStop = undefined
    }
  }

  /** Writes how the attempt went: its logs, then complete, retry or fail (only while the lease is held). */
  async #report(slot: Slot, outcome: Outcome): Promise<void> {
    if (slot.abandoned) return
    // Not awaited first: the queue keeps the order of one handle's writes, so the logs still land first.
    const logged = this.#flushLogs(slot)
    await this.#reportOutcome(slot, outcome)
    await logged
  }

  async #reportOutcome(slot: Slot, attempt: Outcome): Promise<void> {
    const { run } = slot
    const backend = this.#backend!
    const task = this.#tasks.get(run.task)!
    let outcome = attempt
    if (outcome.ok) {
      let bytes: Uint8Array
      try {
        bytes = encodeValue(outcome.value, `the result of '${run.name}'`)
      } catch (error) {
        outcome = { ok: false, error: toError(error) }
      }
      if (outcome.ok) {
        if (await backend.complete(run, bytes!)) {
          this.#counts.completed++
          this.#line(`${run.name} Completed`)
        }
        return
      }
    }
    const error = outcome.error
    if (error instanceof CancelledError) {
      if (await backend.cancelled(run, storeError(error))) {
        this.#counts.cancelled++
        this.#line(`${run.name} Cancelled: ${error.message}`)
      }
      return
    }
    const timedOut = error instanceof TaskRunTimeoutError
    if (run.failures < run.retries && (await retryAllowed(task, error, run.failures + 1))) {
      const delayMs = retryDelayMs(task.options, run.failures + 1)
      if (await backend.retry(run, storeError(error), delayMs)) {
        this.#counts.retried++
        this.#line(`${run.name} AwaitingRetry attempt ${run.attempt} failed: ${error.message}; retrying in ${(delayMs / 1000).toFixed(1)} s`)
      }
      return
    }
    if (await backend.fail(run, storeError(error), timedOut ? 'TimedOut' : 'Failed')) {
      this.#counts.failed++
      this.#line(`${run.name} ${timedOut ? 'TimedOut' : 'Failed'}: ${error.message}`)
    }
  }

  /** Runs the task here with a run context whose submits run in place; honours `timeoutSeconds`. */
  #invoke(task: AnyTask, slot: Slot, args: unknown[]): Promise<unknown> {
    const { run } = slot
    const context: RunContext = {
      flowRun: undefined,
      taskRun: { id: run.runId, name: run.name, taskName: run.task, attempt: run.attempt },
      get signal() {
        if (!slot.controller) {
          slot.controller = new AbortController()
          if (slot.stopReason) slot.controller.abort(slot.stopReason)
        }
        return slot.controller.signal
      },
      taskRunner: inlineRunner,
    }
    const { timeoutSeconds } = task.options
    // Past its deadline, or when its lease is lost or it is cancelled, the attempt ends at once
    // even if the task ignores its signal.
    const attempt = new Promise((resolve, reject) => {
      if (slot.stopReason) return reject(slot.stopReason)
      slot.onStop = reject
      let body: Promise<unknown>
      try {
        body = Promise.resolve(runWithContext(context, task.fn, ...args))
      } catch (error) {
        body = Promise.reject(error)
      }
      slot.bodyDone = false
      slot.body = body.then(
        () => void (slot.bodyDone = true),
        () => void (slot.bodyDone = true),
      )
      body.then(resolve, reject)
    })
    return withTimeLimit(attempt, timeoutSeconds, () => {
      const error = new TaskRunTimeoutError(`'${run.name}' timed out after ${timeoutSeconds} s`)
      stopAttempt(slot, error)
      return error
    })
  }

  #logSink: LogSink = (event) => {
    const slot = event.taskRunId === undefined ? undefined : this.#inFlight.get(event.taskRunId)
    if (!slot) {
      runEvents.emit(event)
      return
    }
    slot.logs.push({ at: event.timestamp, level: event.level, message: event.message, attempt: slot.run.attempt })
    this.#line(`${slot.run.name} | ${event.message}`)
  }

  async #flushLogs(slot: Slot): Promise<void> {
    if (slot.logs.length === 0) return
    const lines = slot.logs
    slot.logs = []
    await this.#backend!.appendLogs(slot.run.runId, lines).catch(() => undefined)
  }

  #line(text: string): void {
    this.#options.log?.(`${time()} ${text}`)
  }

  async #startStatusServer(port: number, host: string): Promise<void> {
    // Half-sent requests time out (checked every second), so a silent client cannot hold a connection.
    const server = createServer({ headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000 }, (request, response) => {
      const path = (request.url ?? '/').split('?')[0]
      const send = (code: number, body: unknown) => {
        response.writeHead(code, { 'content-type': 'application/json' })
        response.end(`${JSON.stringify(body)}\n`)
      }
      if (request.method !== 'GET') return send(405, { error: 'use GET' })
      if (path === '/status') return send(200, this.status())
      if (path === '/health') {
        const queue = this.#backend?.health() ?? { ok: false, reason: 'no queue yet' }
        if (!queue.ok) return send(503, { ok: false, state: this.#state, reason: queue.reason })
        return send(this.#state === 'serving' ? 200 : 503, { ok: this.#state === 'serving', state: this.#state })
      }
      return send(404, { error: 'not found; try /status or /health' })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'EADDRINUSE'
            ? new UsageError(`--status-port ${port}: the port is in use on ${host}; pick another port (or 0 for any free one)`, 'PTR_PORT_IN_USE')
            : new PtrError(`status server on ${host}:${port}: ${error.message}`, { code: 'PTR_STATUS_SERVER', exitCode: 2 }),
        ),
      )
      server.listen(port, host, () => resolve())
    })
    this.#server = server
  }
}

/** Starts a task worker serving `tasks` (an array, or a module namespace) and returns it. */
export async function serve(tasks: readonly AnyTask[] | Record<string, unknown>, options: TaskWorkerOptions = {}): Promise<TaskWorker> {
  const list = Array.isArray(tasks) ? (tasks as readonly AnyTask[]) : tasksOf(tasks as Record<string, unknown>)
  const worker = new TaskWorker(list, options)
  await worker.start()
  return worker
}
