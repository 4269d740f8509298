import { FutureTimeoutError, PtrError } from '../errors.ts'
import type { State } from './states.ts'
import { isSettled } from './states.ts'

/** Rejects a timeout that is not a number of seconds from 0 up, as Prefect does (`'timeout' must be a non-negative number`). */
export function checkTimeout(where: string, timeout: unknown): void {
  if (timeout === undefined) return
  if (typeof timeout !== 'number' || !(timeout >= 0)) {
    throw new PtrError(`${where}: \`timeout\` must be a number of seconds from 0 up, got \`${String(timeout)}\` (${typeof timeout}); leave it out to wait without limit`, {
      code: 'PTR_INVALID_TIMEOUT',
    })
  }
}

const FUTURE = Symbol.for('ptr.future')

export interface ResultOptions {
  /** Seconds to wait for the run to finish; past it, `result()` throws. @default no limit */
  timeout?: number
  /** Throw the run's error when it did not complete; `false` returns the error instead. @default true */
  raiseOnFailure?: boolean
}

/**
 * The handle of a submitted task run. Resolves to a final state; never throws from `wait()`.
 * Futures are branded with `Symbol.for('ptr.future')`, so they are recognised across copies of ptr.
 */
export abstract class PrefectFuture<R = unknown> {
  declare readonly __result: R
  get [FUTURE](): true {
    return true
  }

  /** The id of the task run behind this future. */
  abstract readonly taskRunId: string
  /** The run's current state; final once the run has ended. */
  abstract readonly state: State<R>
  /** Resolves with the settled state; used by `wait()` and `result()`. */
  protected abstract settled(): Promise<State<R>>
  /** Records that user code looked at this run's outcome, so its failure counts as handled. */
  protected abstract markHandled(): void
  /** Registers `callback` to run once the run has ended (at once if it already has). */
  abstract addDoneCallback(callback: (future: this) => void): void

  /**
   * Waits until the run has ended or `timeoutSeconds` have passed; never throws.
   * @returns the state at that moment (check `isFinal(state)` to tell them apart).
   */
  wait(timeoutSeconds?: number): Promise<State<R>> {
    if (isSettled(this.state)) return Promise.resolve(this.state)
    if (timeoutSeconds === undefined) return this.settled()
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<State<R>>((resolve) => {
      timer = setTimeout(() => resolve(this.state), timeoutSeconds * 1000)
    })
    return Promise.race([this.settled(), timedOut]).finally(() => clearTimeout(timer))
  }

  /** The run's return value; throws its error if it did not complete (unless `raiseOnFailure: false`). */
  result(options?: ResultOptions & { raiseOnFailure?: true }): Promise<R>
  result(options: ResultOptions & { raiseOnFailure: false }): Promise<R | Error>
  result(options?: ResultOptions): Promise<R | Error>
  result(options?: ResultOptions): Promise<R | Error> {
    if (options?.timeout !== undefined) {
      try {
        checkTimeout('result()', options.timeout)
      } catch (error) {
        return Promise.reject(error)
      }
    }
    // Plain promise chains, not async functions: a 100,000-run map awaits this once per run.
    return this.wait(options?.timeout).then((state) => this.outcome(state, options))
  }

  /** @internal the outcome of a settled run, as `result()` gives it (marks the run handled). */
  outcome(state: State<R>, options: ResultOptions | undefined): R | Error {
    if (!isSettled(state)) {
      throw new FutureTimeoutError(
        `task run ${this.taskRunId} did not finish within ${options?.timeout} s (state ${state.name}); wait longer or use wait()`,
      )
    }
    this.markHandled()
    if (state.type === 'Completed') return state.result as R
    const error = state.error ?? new Error(`task run ${this.taskRunId} ended ${state.name}`)
    if (options?.raiseOnFailure === false) return error
    throw error
  }
}

export const isFuture = (value: unknown): value is PrefectFuture =>
  typeof value === 'object' && value !== null && (value as { [FUTURE]?: unknown })[FUTURE] === true

/** A list of futures (what `map()` returns) with list-wide `result()` and `wait()`. */
export class PrefectFutureList<R = unknown> extends Array<PrefectFuture<R>> {
  static override get [Symbol.species](): ArrayConstructor {
    return Array
  }

  static from_<R>(futures: Iterable<PrefectFuture<R>>): PrefectFutureList<R> {
    const list = new PrefectFutureList<R>()
    for (const f of futures) list.push(f)
    return list
  }

  /**
   * @internal a list that is empty until `futures` resolves, then holds them (map() over a future
   * that has not ended). If it rejects, the list stays empty and `result()` rejects with the error.
   */
  static filledBy<R>(futures: Promise<Iterable<PrefectFuture<R>>>): PrefectFutureList<R> {
    const list = new PrefectFutureList<R>()
    list.#filling = futures.then(
      (filled) => {
        for (const f of filled) list.push(f)
        list.#filling = undefined
      },
      (error: unknown) => {
        list.#filling = undefined
        list.#fillError = error
      },
    )
    return list
  }

  #filling: Promise<void> | undefined
  #fillError: unknown

  /** Waits for every run (or until `timeoutSeconds`); never throws for a run that failed. */
  async wait(timeoutSeconds?: number): Promise<void> {
    checkTimeout('PrefectFutureList.wait()', timeoutSeconds)
    if (this.#filling) await this.#filling
    await wait(this, { timeout: timeoutSeconds })
  }

  /**
   * Every result, in input order. Fails fast: throws the first failure as soon as it is known;
   * with `raiseOnFailure: false`, a run that did not complete gives its error in its place.
   */
  result(options?: ResultOptions & { raiseOnFailure?: true }): Promise<R[]>
  result(options: ResultOptions & { raiseOnFailure: false }): Promise<(R | Error)[]>
  result(options?: ResultOptions): Promise<(R | Error)[]>
  result(options: ResultOptions = {}): Promise<(R | Error)[]> {
    try {
      checkTimeout('PrefectFutureList.result()', options.timeout)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.#filling) return this.#filling.then(() => this.result(options))
    if (this.#fillError !== undefined) return Promise.reject(this.#fillError)
    if (options.timeout !== undefined) return Promise.all(this.map((future) => future.result(options)))
    const raise = options.raiseOnFailure !== false
    // One promise and one callback for the whole list, not one per future: lists of 100,000 runs
    // are common. The values are read in order once every run has ended; a failure rejects as
    // soon as it is known.
    return new Promise<(R | Error)[]>((resolve, reject) => {
      let remaining = this.length
      let failed = false
      const ended = (future: PrefectFuture<R>) => {
        if (failed) return
        if (raise && future.state.type !== 'Completed') {
          failed = true
          try {
            future.outcome(future.state, undefined)
          } catch (error) {
            reject(error)
          }
          return
        }
        if (--remaining > 0) return
        try {
          resolve(this.map((f) => f.outcome(f.state, options)))
        } catch (error) {
          reject(error)
        }
      }
      if (remaining === 0) resolve([])
      for (const future of this) future.addDoneCallback(ended)
    })
  }
}

/** What `wait()` returns: the futures given, split by whether their run has ended. */
export interface WaitResult<F extends PrefectFuture<unknown> = PrefectFuture> {
  done: F[]
  notDone: F[]
}

/**
 * Waits for all `futures` to end, or until `timeout` seconds have passed; never throws for a run
 * that failed (rejects only a `timeout` below 0).
 * @returns the futures that ended and those that did not, each in input order.
 */
export async function wait<F extends PrefectFuture<unknown>>(futures: Iterable<F>, options: { timeout?: number | undefined } = {}): Promise<WaitResult<F>> {
  checkTimeout('wait()', options.timeout)
  const list = [...futures]
  const all = Promise.all(list.map((f) => f.wait()))
  if (options.timeout === undefined) {
    await all
  } else {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, options.timeout! * 1000)))])
    clearTimeout(timer)
  }
  const done: F[] = []
  const notDone: F[] = []
  for (const f of list) (isSettled(f.state) ? done : notDone).push(f)
  return { done, notDone }
}

/**
 * Yields each future as its run ends, in completion order.
 * With `timeout`, throws a FutureTimeoutError when it passes with futures still running.
 */
export async function* asCompleted<F extends PrefectFuture<unknown>>(
  futures: Iterable<F>,
  options: { timeout?: number } = {},
): AsyncGenerator<F, void, undefined> {
  checkTimeout('asCompleted()', options.timeout)
  const pending = new Set(futures)
  const ready: F[] = []
  let wake: (() => void) | undefined
  for (const future of pending) {
    future.addDoneCallback(() => {
      ready.push(future)
      wake?.()
    })
  }
  const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout * 1000
  while (pending.size > 0) {
    if (ready.length === 0) {
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        wake = resolve
        if (deadline !== undefined) timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
      })
      clearTimeout(timer)
      wake = undefined
      if (ready.length === 0 && deadline !== undefined && Date.now() >= deadline) {
        throw new FutureTimeoutError(`${pending.size} of the futures did not finish within ${options.timeout} s`)
      }
    }
    const next = ready.shift()
    if (next && pending.delete(next)) yield next
  }
}
