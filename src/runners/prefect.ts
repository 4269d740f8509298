import * as S from '../engine/states.ts'
import type { AnyTask } from '../engine/task-types.ts'
import type { TaskRun } from '../engine/task-run.ts'
import type { QueueBackend } from '../queue/backend.ts'
import { decodeValue, encodeValue, loadError } from '../queue/codec.ts'
import { defaultQueue, openQueue } from '../queue/open.ts'
import { TaskRunner } from '../engine/task-runner.ts'

export interface PrefectTaskRunnerOptions {
  /** The queue to send runs to. @default the process's default queue (PREFECT_QUEUE_URL, or sqlite:.ptr/queue.db) */
  queue?: string
}

/** How long a cancel may take to reach the queue before ptr says it could not. */
const CANCEL_WAIT_MS = 5_000

/**
 * Sends every `submit()` and `map()` of a flow to the task-worker queue; `ptr worker serve`
 * processes run them. Futures in arguments and `waitFor` are resolved here, before a run is queued.
 *
 * Retries and timeouts live on the queue side: the worker runs the task with its own options
 * (retries with their delays and condition, timeoutSeconds), and the queue counts attempts. The
 * engine here sees a single attempt per run, so nothing is retried twice.
 */
export class PrefectTaskRunner extends TaskRunner {
  readonly name = 'prefect'
  /** A run is Scheduled while it waits on the queue, and Running once a worker starts it. */
  readonly marksRunning = true
  readonly options: Readonly<PrefectTaskRunnerOptions>
  #backend: QueueBackend | undefined
  #ownsBackend = false
  /** The task the engine drives (no retries, no timeout) → the task as defined. */
  readonly #defined = new WeakMap<AnyTask, AnyTask>()
  readonly #engineSide = new WeakMap<AnyTask, AnyTask>()
  /** Cancellations still being written to the queue: close() waits for them (see #cancelOnQueue). */
  readonly #cancelling = new Set<Promise<void>>()

  constructor(options: PrefectTaskRunnerOptions = {}) {
    // No limit here: each worker's --limit bounds what runs at once.
    super()
    this.options = Object.freeze({ ...options })
  }

  duplicate(): PrefectTaskRunner {
    return new PrefectTaskRunner(this.options)
  }

  /** The engine drives a copy without retries and timeout: those happen on the queue side. */
  protected override engineTask(task: AnyTask): AnyTask {
    let engineTask = this.#engineSide.get(task)
    if (!engineTask) {
      engineTask = task.withOptions({ retries: 0, timeoutSeconds: undefined, retryCondition: undefined })
      this.#engineSide.set(task, engineTask)
      this.#defined.set(engineTask, task)
    }
    return engineTask
  }

  protected override async onStart(): Promise<void> {
    if (this.options.queue) {
      this.#backend = await openQueue(this.options.queue)
      this.#ownsBackend = true
    } else {
      this.#backend = await defaultQueue()
    }
  }

  protected override async onClose(): Promise<void> {
    // The engine reports a cancelled run Cancelled at once; the queue must say so too before the
    // flow run ends (and ptr exits), or a worker started later would still run it.
    while (this.#cancelling.size > 0) await Promise.all([...this.#cancelling])
    if (this.#ownsBackend) await this.#backend?.close()
    this.#backend = undefined
  }

  override async execute(run: TaskRun, args: unknown[]): Promise<unknown> {
    const backend = this.#backend!
    const task = this.#defined.get(run.task) ?? run.task
    const enqueued = backend.enqueue([
      { id: run.id, task: task.name, name: run.name, args: encodeValue(args, `an argument of '${run.name}'`, 'args'), retries: task.options.retries ?? 0 },
    ])
    const signal = run.signal
    // Listening before the enqueue is written: a cancel that comes while it is in flight follows it.
    const onAbort = () => this.#cancelOnQueue(backend, run.id, String((signal.reason as Error)?.message ?? 'cancelled'), enqueued)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    try {
      await enqueued
      const onRunning = (attempt: number) => {
        if (run.state.type === 'Scheduled' || run.state.type === 'Running') run.setState(S.Running(attempt === 1 ? 'Running' : 'Retrying'))
      }
      const record = await backend.waitForEnd(run.id, { signal, onRunning })
      if (record.state === 'Completed') return decodeValue(record.result ?? new Uint8Array())
      throw loadError(record.error, record.state, record.stateName, record.id)
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
  }

  /**
   * Cancels the run on the queue: a Scheduled run ends Cancelled there at once; a claimed one is
   * asked to stop (its worker ends it Cancelled at its next lease renewal, and if that worker is
   * gone the expired lease ends it Cancelled too), and is waited for up to one lease.
   * A cancel that cannot be written is said on stderr with the run id, since the run may still execute.
   */
  #cancelOnQueue(backend: QueueBackend, runId: string, reason: string, enqueued: Promise<void>): void {
    const cancelling = (async () => {
      try {
        await enqueued
      } catch {
        return // never reached the queue: nothing to cancel
      }
      // An unreachable queue (Redis retries forever) must not hold ptr's exit.
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CANCEL_WAIT_MS / 1000} s`)), CANCEL_WAIT_MS)
      })
      try {
        const record = await Promise.race([backend.cancel(runId, reason), late])
        if (record?.state === 'Running') await backend.waitForEnd(runId, { signal: AbortSignal.timeout(backend.leaseMs) }).catch(() => undefined)
      } catch (error) {
        process.stderr.write(
          `ptr: could not cancel run ${runId} on the queue ${backend.url} (${(error as Error)?.message ?? String(error)}); a worker may still run it\n`,
        )
      } finally {
        clearTimeout(timer)
      }
    })()
    this.#cancelling.add(cancelling)
    void cancelling.finally(() => this.#cancelling.delete(cancelling))
  }
}
