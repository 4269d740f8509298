import { PrefectFuture } from '../engine/future.ts'
import type { State } from '../engine/states.ts'
import * as S from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import { toError } from '../errors.ts'
import type { QueueBackend, RunOutcome } from './backend.ts'
import { decodeValue, loadError } from './codec.ts'

/** The engine state a run's final queue state stands for. */
export function outcomeState<R>(record: RunOutcome): State<R> {
  switch (record.state) {
    case 'Completed':
      return S.Completed(decodeValue(record.result ?? new Uint8Array()) as R)
    case 'Failed':
      return S.Failed(loadError(record.error, record.state, record.stateName, record.id), record.stateName) as State<R>
    case 'Crashed':
      return S.Crashed(loadError(record.error, record.state, record.stateName, record.id)) as State<R>
    case 'Cancelled':
      return S.Cancelled(loadError(record.error, record.state, record.stateName, record.id)) as State<R>
    case 'Running':
      return S.Running(record.stateName) as State<R>
    default:
      return S.makeState('Scheduled', record.stateName) as State<R>
  }
}

/**
 * The future of a run on a task-worker queue (`t.delay()`): the same API as other futures; its
 * state and result come from the queue's result store. Waiting uses the backend's wait-for-end
 * notification, never a polling loop.
 */
export class PrefectDistributedFuture<R = unknown> extends PrefectFuture<R> {
  readonly taskRunId: string
  readonly taskRunName: string
  #state: State<R> = S.makeState('Scheduled')
  readonly #backend: () => Promise<QueueBackend>
  readonly #enqueued: Promise<void>
  #settled: Promise<State<R>> | undefined

  /**
   * @param enqueued resolves once the run is on the queue; if it rejects, the run never reached
   *   the queue and the future settles with that error (NotReady for an upstream that failed).
   */
  constructor(taskRunId: string, taskRunName: string, backend: () => Promise<QueueBackend>, enqueued: Promise<void> = Promise.resolve()) {
    super()
    this.taskRunId = taskRunId
    this.taskRunName = taskRunName
    this.#backend = backend
    this.#enqueued = enqueued
  }

  /** Scheduled, then Running once a worker starts the run, then final. Reading it starts following the run. */
  get state(): State<R> {
    if (!this.#settled) void this.settled()
    return this.#state
  }

  protected settled(): Promise<State<R>> {
    this.#settled ??= this.#enqueued
      .then(() => this.#backend())
      .then((backend) =>
        backend.waitForEnd(this.taskRunId, {
          onRunning: (attempt) => {
            if (!isSettled(this.#state)) this.#state = S.Running(attempt === 1 ? 'Running' : 'Retrying') as State<R>
          },
        }),
      )
      .then(
        (outcome) => outcomeState<R>(outcome),
        (error: unknown) => {
          const err = toError(error)
          return ((err as { code?: string }).code === 'PTR_UPSTREAM_NOT_COMPLETED' ? S.NotReady(err) : S.Crashed(err)) as State<R>
        },
      )
      .then((state) => (this.#state = state))
    return this.#settled
  }

  protected markHandled(): void {}

  addDoneCallback(callback: (future: this) => void): void {
    if (isSettled(this.#state)) callback(this)
    else void this.settled().then(() => callback(this))
  }
}
