import { PtrError } from '../errors.ts'
import type { State } from './states.ts'
import { makeState } from './states.ts'

/**
 * States as values (Prefect's `Completed()`, `Failed()`, `Cancelled()`): a task or flow that
 * returns one ends in that state, with its result or error. States made here carry a brand, so a
 * returned value is taken as a state only when it was made to be one.
 */
const STATE_VALUE = Symbol.for('ptr.stateValue')

export interface StateValueOptions {
  /** A line saying why; shown with the state. @default none (Failed and Cancelled: their error's message) */
  message?: string
  /** The variant's name, e.g. `Skipped` for a Completed state. @default the type */
  name?: string
}

function brand<R>(state: State<R>): State<R> {
  Object.defineProperty(state, STATE_VALUE, { value: true })
  return state
}

/** Whether `value` is a state made by {@link Completed}, {@link Failed} or {@link Cancelled} (or one rebuilt from a worker). */
export const isStateValue = (value: unknown): value is State =>
  typeof value === 'object' && value !== null && (value as { [STATE_VALUE]?: unknown })[STATE_VALUE] === true

/** A Completed state; returned from a task or flow, it completes the run with `result`. */
export function Completed<R = undefined>(options: StateValueOptions & { result?: R } = {}): State<R> {
  const extra = options.message === undefined ? undefined : { message: options.message }
  return brand(makeState('Completed', options.name ?? 'Completed', extra, options.result))
}

/**
 * A Failed state; returned from a task or flow, it fails the run (retries apply) with `error`, or
 * with an Error of `message` when no error is given.
 */
export function Failed(options: StateValueOptions & { error?: Error } = {}): State<never> {
  const error = options.error ?? new Error(options.message ?? 'the run returned a Failed state')
  return brand(makeState<never>('Failed', options.name ?? 'Failed', { error, message: options.message ?? error.message }))
}

/** A Cancelled state; returned from a task or flow, it ends the run Cancelled. */
export function Cancelled(options: StateValueOptions & { error?: Error } = {}): State<never> {
  const error = options.error ?? new Error(options.message ?? 'the run returned a Cancelled state')
  return brand(makeState<never>('Cancelled', options.name ?? 'Cancelled', { error, message: options.message ?? error.message }))
}

/**
 * A state rebuilt from plain data (a state returned in a worker thread or process), branded again.
 * @throws when the data is not a final state a run may end in.
 */
export function reviveStateValue<R>(data: { type: string; name: string; message?: string | undefined; error?: Error | undefined }, result: R): State<R> {
  if (data.type !== 'Completed' && data.type !== 'Failed' && data.type !== 'Cancelled') {
    throw new PtrError(`a run returned a ${data.name} state; a run may return Completed(), Failed() or Cancelled()`, { code: 'PTR_INVALID_RETURNED_STATE' })
  }
  const extra: { message?: string; error?: Error } = {}
  if (data.message !== undefined) extra.message = data.message
  if (data.error !== undefined) extra.error = data.error
  return brand(makeState(data.type, data.name, extra, data.type === 'Completed' ? result : undefined))
}

/** `state` as a value: a branded copy (what calls with `returnState` resolve to), so code may return it. */
export function asStateValue<R>(state: State<R>): State<R> {
  return brand({ ...state })
}

/**
 * The state a run ends in when its code returned `state`: a fresh copy (new timestamp), as the
 * run's own. A state that is not final (a NotReady run's) fails the run with its error.
 */
export function adoptState(state: State): State {
  if (state.type === 'Completed' || state.type === 'Failed' || state.type === 'Cancelled' || state.type === 'Crashed') {
    const extra: { message?: string; error?: Error } = {}
    if (state.message !== undefined) extra.message = state.message
    if (state.error !== undefined) extra.error = state.error
    return makeState(state.type, state.name, extra, state.result)
  }
  const error = state.error ?? new PtrError(`the run returned a ${state.name} state, which is not final`, { code: 'PTR_INVALID_RETURNED_STATE' })
  return makeState('Failed', 'Failed', { error, message: error.message })
}

/** The type of a task's or flow's value when its function may return states: `State<V>` counts as `V`. */
export type ValueOf<R> = R extends State<infer V> ? V : R
