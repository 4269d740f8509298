import type { RunOutcome, WaitOptions } from './backend.ts'

interface Waiter {
  resolve: (outcome: RunOutcome) => void
  reject: (error: unknown) => void
  onRunning: ((attempt: number) => void) | undefined
  /** The last attempt reported to `onRunning`. */
  attempt: number
}

/** Who waits for which run to end (and to start): the bookkeeping every queue backend shares. */
export class RunWaiters {
  readonly #byRun = new Map<string, Waiter[]>()
  #watchingStarts = 0

  get size(): number {
    return this.#byRun.size
  }

  /** Whether anyone wants to hear when runs start (so a backend can skip that work). */
  get watchingStarts(): boolean {
    return this.#watchingStarts > 0
  }

  has(runId: string): boolean {
    return this.#byRun.has(runId)
  }

  ids(): IterableIterator<string> {
    return this.#byRun.keys()
  }

  /** Registers a waiter for `runId`; `onGone` runs when an abort removes it. */
  add(runId: string, options: WaitOptions = {}, onGone?: () => void): Promise<RunOutcome> {
    const { signal, onRunning } = options
    if (signal?.aborted) return Promise.reject(signal.reason)
    return new Promise<RunOutcome>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, onRunning, attempt: 0 }
      const list = this.#byRun.get(runId)
      if (list) list.push(waiter)
      else this.#byRun.set(runId, [waiter])
      if (onRunning) this.#watchingStarts++
      signal?.addEventListener(
        'abort',
        () => {
          const current = this.#byRun.get(runId)
          if (!current?.includes(waiter)) return
          const rest = current.filter((w) => w !== waiter)
          if (rest.length) this.#byRun.set(runId, rest)
          else this.#byRun.delete(runId)
          if (onRunning) this.#watchingStarts--
          onGone?.()
          reject(signal.reason)
        },
        { once: true },
      )
    })
  }

  /** Resolves (and forgets) the waiters of `outcome.id`; false if there were none. */
  resolve(outcome: RunOutcome): boolean {
    const list = this.#byRun.get(outcome.id)
    if (!list) return false
    this.#byRun.delete(outcome.id)
    for (const w of list) {
      if (w.onRunning) this.#watchingStarts--
      w.resolve(outcome)
    }
    return true
  }

  /**
   * Tells the waiters of `runId` that `attempt` started (once per attempt). On the next turn of the
   * event loop: an end heard in the same batch (another run's, whose worker then started this one)
   * reaches its waiter through promise callbacks, and must come first.
   */
  running(runId: string, attempt: number): void {
    const list = this.#byRun.get(runId)
    if (!list) return
    for (const w of list) {
      if (!w.onRunning || attempt <= w.attempt) continue
      w.attempt = attempt
      const onRunning = w.onRunning
      setImmediate(() => {
        if (this.#byRun.get(runId)?.includes(w)) onRunning(attempt)
      })
    }
  }

  rejectAll(error: Error): void {
    for (const list of this.#byRun.values()) for (const w of list) w.reject(error)
    this.#byRun.clear()
    this.#watchingStarts = 0
  }
}
