/**
 * The one interface between ptr and a task queue. The task worker, `t.delay()`, the
 * PrefectTaskRunner and `ptr runs` talk to this interface only; each backend (SQLite here, Redis
 * next) owns its datastore. Payloads (arguments, results) arrive already encoded as bytes, so a
 * backend stores data, never code.
 *
 * Semantics every backend keeps (checked by test/queue-contract.test.ts):
 * - `enqueue` is idempotent per run id; a run starts `Scheduled`.
 * - `claim` is atomic: a run is held by at most one lease at a time, and only runs of the task
 *   names asked for are claimed, oldest due first, at most `max`.
 * - A lease that is not renewed within `leaseMs` expires; the run goes back to `Scheduled` (its
 *   `lostLeases` grows) or, past `maxLostLeases`, ends `Crashed`.
 * - `complete`/`fail`/`retry`/`release` act only while the lease is still held; they return
 *   false (and change nothing) when it was lost, so a late worker never overwrites a newer attempt.
 */
export type QueueRunState = 'Scheduled' | 'Running' | 'Completed' | 'Failed' | 'Crashed' | 'Cancelled'

export const FINAL_QUEUE_STATES: ReadonlySet<QueueRunState> = new Set(['Completed', 'Failed', 'Crashed', 'Cancelled'])
export const isFinalQueueState = (state: QueueRunState): boolean => FINAL_QUEUE_STATES.has(state)

/** An error as stored with a run: data only. */
export interface StoredError {
  name: string
  message: string
  stack?: string | undefined
  code?: string | undefined
}

export interface NewRun {
  /** Unique id (a UUID); enqueuing the same id twice keeps the first. */
  id: string
  /** The task's queue identity: its name (see docs/task-workers.md). */
  task: string
  /** The run's display name. */
  name: string
  /** Encoded arguments (see codec.ts). */
  args: Uint8Array
  /** Extra attempts after the task throws. @default 0 */
  retries?: number
  /** Not claimable before this time (epoch ms). @default now */
  availableAt?: number
}

/** Proof that a worker holds a run; every write about the attempt carries it. */
export interface Lease {
  readonly runId: string
  readonly token: string
}

export interface ClaimedRun extends Lease {
  readonly task: string
  readonly name: string
  readonly args: Uint8Array
  /** 1 on the first claim, counting every claim (retries and lease losses). */
  readonly attempt: number
  /** Task failures so far (not lease losses). */
  readonly failures: number
  readonly retries: number
}

export interface HistoryEntry {
  /** Epoch ms. */
  at: number
  state: QueueRunState
  /** Variant name (AwaitingRetry, Retrying, TimedOut, ...), or the state. */
  name: string
  worker?: string | undefined
  message?: string | undefined
}

export interface RunRecord {
  id: string
  task: string
  name: string
  state: QueueRunState
  stateName: string
  attempts: number
  failures: number
  lostLeases: number
  retries: number
  worker: string | undefined
  createdAt: number
  availableAt: number
  startedAt: number | undefined
  endedAt: number | undefined
  leaseUntil: number | undefined
  args: Uint8Array
  result: Uint8Array | undefined
  error: StoredError | undefined
  history: HistoryEntry[]
}

/**
 * How a run ended: what waiting for a run gives. The whole record (history, timings, counts) is
 * one `get()` away; waiting is kept to this so a backend can deliver it with the end notification.
 */
export interface RunOutcome {
  id: string
  /** A final state. */
  state: QueueRunState
  stateName: string
  endedAt: number | undefined
  result: Uint8Array | undefined
  error: StoredError | undefined
}

export interface LogLine {
  at: number
  level: string
  message: string
  attempt: number
}

export type RenewOutcome = 'ok' | 'lost' | 'cancelled'

export interface ListFilter {
  state?: QueueRunState | undefined
  task?: string | undefined
  /** Newest first; at most this many. @default 100 */
  limit?: number | undefined
}

export interface QueueBackendOptions {
  /** How long a claim holds a run without renewal. @default 10000 */
  leaseMs?: number
  /** Lease losses (worker died, hung) after which a run ends Crashed instead of going back. @default 3 */
  maxLostLeases?: number
}

export interface QueueBackend {
  /** The queue URL with any password replaced by `***`. */
  readonly url: string
  readonly leaseMs: number

  enqueue(runs: readonly NewRun[]): Promise<void>
  /** Claims up to `max` due runs of `tasks` for `workerId`, each under a fresh lease. */
  claim(workerId: string, tasks: readonly string[], max: number): Promise<ClaimedRun[]>
  /**
   * Calls `onWork` (soon, not synchronously) whenever runs of `tasks` may have become claimable:
   * enqueued, retried, released, leases expired. Backends also recover expired leases while
   * someone listens. Returns the function that stops listening.
   */
  watchWork(tasks: readonly string[], onWork: () => void): () => void
  /** Extends the leases; says per lease whether it is still held, or cancellation was asked. */
  renew(leases: readonly Lease[]): Promise<RenewOutcome[]>
  complete(lease: Lease, result: Uint8Array): Promise<boolean>
  /** Ends the run Failed (the task threw and may not retry), or with `name` (e.g. TimedOut). */
  fail(lease: Lease, error: StoredError, name?: string): Promise<boolean>
  /** Ends the run Crashed: the worker found it cannot run it. */
  crash(lease: Lease, error: StoredError): Promise<boolean>
  /** Ends the run Cancelled: its worker stopped it because cancellation was asked (see `renew`). */
  cancelled(lease: Lease, error: StoredError): Promise<boolean>
  /** Schedules another attempt after `delayMs`; counts a task failure. */
  retry(lease: Lease, error: StoredError, delayMs: number): Promise<boolean>
  /** Hands the run back unfinished (worker shutting down); not a failure. */
  release(lease: Lease, reason: string): Promise<boolean>
  /** A Scheduled run ends Cancelled at once; a Running one is asked to stop (see `renew`). */
  cancel(runId: string, reason: string): Promise<RunRecord | undefined>
  /** Puts runs whose lease expired back (or ends them Crashed); returns how many. */
  recoverExpired(): Promise<number>

  get(runId: string): Promise<RunRecord | undefined>
  /**
   * Resolves with how the run ended once it is final; rejects when `options.signal` aborts.
   * `options.onRunning` hears each attempt a worker starts.
   */
  waitForEnd(runId: string, options?: WaitOptions): Promise<RunOutcome>
  list(filter?: ListFilter): Promise<RunRecord[]>
  appendLogs(runId: string, lines: readonly LogLine[]): Promise<void>
  logs(runId: string): Promise<LogLine[]>
  /** Deletes final runs (and their logs) that ended before `endedBefore` (epoch ms). */
  prune(endedBefore: number): Promise<number>
  /**
   * Whether the queue can be used right now, for a worker's `/health`: not while Redis is
   * unreachable, nor once an SQLite file was deleted, replaced or turned read-only.
   */
  health(): QueueHealth
  /**
   * Calls `listener` once if the queue becomes unusable for good (SQLite: its file deleted,
   * replaced, read-only or failing); every call fails with that error from then on. A task
   * worker stops on it. Returns the function that stops listening.
   */
  onFault(listener: (error: Error) => void): () => void
  close(): Promise<void>
}

export type QueueHealth = { ok: true } | { ok: false; reason: string }

export interface WaitOptions {
  /** Stops waiting (the promise rejects with the signal's reason); the run itself goes on. */
  signal?: AbortSignal | undefined
  /**
   * Called when a worker starts an attempt of the run, with the attempt number (each attempt at
   * most once, in order). Best effort: an attempt that starts and ends between two looks at the
   * queue may be reported only by its end.
   */
  onRunning?: ((attempt: number) => void) | undefined
}
