/**
 * Run states, as in Prefect 3: a type plus a name for the named variants
 * (NotReady, AwaitingRetry, Retrying, TimedOut, Cached).
 */
export type StateType = 'Scheduled' | 'Pending' | 'Running' | 'Completed' | 'Failed' | 'Crashed' | 'Cancelled'

export interface State<R = unknown> {
  readonly type: StateType
  /** `type` for plain states; the variant's name otherwise (e.g. `NotReady` for a Pending state). */
  readonly name: string
  /** Epoch milliseconds. */
  readonly timestamp: number
  readonly message?: string
  /** The error of a Failed, Crashed, Cancelled or NotReady state. */
  readonly error?: Error
  /** The value of a Completed state. */
  readonly result?: R
  /** For AwaitingRetry: when the next attempt is due (epoch ms). */
  readonly scheduledTime?: number
}

const FINAL_TYPES: ReadonlySet<StateType> = new Set(['Completed', 'Failed', 'Crashed', 'Cancelled'])

/** Final states never change again. A NotReady run is Pending but also never runs: see {@link isSettled}. */
export const isFinal = (state: Pick<State, 'type'>): boolean => FINAL_TYPES.has(state.type)
/** A run is settled when nothing more will happen to it: a final state, or NotReady. */
export const isSettled = (state: State): boolean => FINAL_TYPES.has(state.type) || state.name === 'NotReady'
export const isFailure = (state: State): boolean => state.type === 'Failed' || state.type === 'Crashed'

type Extra = { message?: string; error?: Error; scheduledTime?: number }

export function makeState<R>(type: StateType, name: string = type, extra?: Extra, result?: R): State<R> {
  const state: { -readonly [K in keyof State<R>]: State<R>[K] } = { type, name, timestamp: Date.now() }
  if (extra?.message !== undefined) state.message = extra.message
  if (extra?.error !== undefined) state.error = extra.error
  if (extra?.scheduledTime !== undefined) state.scheduledTime = extra.scheduledTime
  if (result !== undefined) state.result = result
  return state
}

export const Pending = (): State => makeState('Pending')
export const Running = (name = 'Running'): State => makeState('Running', name)
export const Completed = <R>(result: R, name = 'Completed'): State<R> => makeState('Completed', name, undefined, result)
export const Failed = (error: Error, name = 'Failed'): State => makeState('Failed', name, { error, message: error.message })
export const Crashed = (error: Error): State => makeState('Crashed', 'Crashed', { error, message: error.message })
export const Cancelled = (error: Error): State => makeState('Cancelled', 'Cancelled', { error, message: error.message })
export const NotReady = (error: Error): State => makeState('Pending', 'NotReady', { error, message: error.message })
/** Scheduled for another attempt `delayMs` from now. */
export const AwaitingRetry = (delayMs: number, error: Error): State => {
  const now = Date.now()
  return { type: 'Scheduled', name: 'AwaitingRetry', timestamp: now, scheduledTime: now + delayMs, error, message: error.message }
}
