import type { PrefectFuture } from './future.ts'
import { isFuture } from './future.ts'

const ALLOW_FAILURE = Symbol.for('ptr.allowFailure')
const UNMAPPED = Symbol.for('ptr.unmapped')

/** Marks an upstream whose failure should not stop the downstream run: see {@link allowFailure}. */
export class AllowFailure<T> {
  readonly [ALLOW_FAILURE] = true
  constructor(readonly future: PrefectFuture<T>) {}
}

/**
 * Lets the downstream run even if `future` fails: the downstream receives the upstream's error
 * as the value. Type your parameter as `T | Error` to accept it.
 */
export const allowFailure = <T>(future: PrefectFuture<T>): AllowFailure<T> => new AllowFailure(future)

const isAllowFailure = (value: unknown): value is AllowFailure<unknown> =>
  typeof value === 'object' && value !== null && (value as { [ALLOW_FAILURE]?: unknown })[ALLOW_FAILURE] === true

/** Keeps an argument of `map()` the same for every run instead of iterating it. */
export class Unmapped<T> {
  readonly [UNMAPPED] = true
  constructor(readonly value: T) {}
}
export const unmapped = <T>(value: T): Unmapped<T> => new Unmapped(value)
export const isUnmapped = (value: unknown): value is Unmapped<unknown> =>
  typeof value === 'object' && value !== null && (value as { [UNMAPPED]?: unknown })[UNMAPPED] === true

/**
 * Where a future may stand in for its value: a parameter of type `T` accepts `T`, a future of
 * `T`, arrays and plain objects holding such, and (when `T` admits `Error`) `allowFailure(f)`.
 */
export type Resolvable<T> =
  | ResolvableValue<T>
  | (Error extends T ? AllowFailure<Exclude<T, Error>> : never)
type ResolvableValue<T> =
  | T
  | PrefectFuture<T>
  | (T extends readonly unknown[]
      ? { [K in keyof T]: Resolvable<T[K]> }
      : T extends (...args: never[]) => unknown
        ? never
        : T extends Map<unknown, unknown> | Set<unknown> | Date | RegExp | Error | Uint8Array
          ? never
          : T extends object
            ? { [K in keyof T]: Resolvable<T[K]> }
            : never)

export interface Upstream {
  readonly future: PrefectFuture
  readonly allowFailure: boolean
}

const isPlainObject = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * Finds the futures anywhere in `value` (arrays, plain objects, Maps, Sets) and adds them to `into`.
 * Cheap for the common case of primitive arguments.
 */
export function collectUpstreams(value: unknown, into: Upstream[], seen?: Set<object>): void {
  if (typeof value !== 'object' || value === null) return
  if (isFuture(value)) {
    into.push({ future: value, allowFailure: false })
    return
  }
  if (isAllowFailure(value)) {
    into.push({ future: value.future, allowFailure: true })
    return
  }
  const isArray = Array.isArray(value)
  if (!isArray && !(value instanceof Map) && !(value instanceof Set) && !isPlainObject(value)) return
  seen ??= new Set()
  if (seen.has(value)) return
  seen.add(value)
  if (isArray) for (const item of value) collectUpstreams(item, into, seen)
  else if (value instanceof Map) for (const [k, v] of value) (collectUpstreams(k, into, seen), collectUpstreams(v, into, seen))
  else if (value instanceof Set) for (const item of value) collectUpstreams(item, into, seen)
  else for (const key of Object.keys(value)) collectUpstreams((value as Record<string, unknown>)[key], into, seen)
}

/**
 * Returns `value` with every future replaced by its result (and every `allowFailure(f)` by its
 * result or error). Only call once every upstream has settled. Containers holding futures are
 * copied; the caller's objects are never changed.
 */
export function substituteResults(value: unknown, seen: Map<object, unknown> = new Map()): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (isFuture(value)) return value.state.result
  if (isAllowFailure(value)) {
    const state = value.future.state
    return state.type === 'Completed' ? state.result : (state.error ?? new Error(`upstream ended ${state.name}`))
  }
  if (seen.has(value)) return seen.get(value)
  if (Array.isArray(value)) {
    const out: unknown[] = []
    seen.set(value, out)
    for (const item of value) out.push(substituteResults(item, seen))
    return out
  }
  if (value instanceof Map) {
    const out = new Map()
    seen.set(value, out)
    for (const [k, v] of value) out.set(substituteResults(k, seen), substituteResults(v, seen))
    return out
  }
  if (value instanceof Set) {
    const out = new Set()
    seen.set(value, out)
    for (const item of value) out.add(substituteResults(item, seen))
    return out
  }
  if (!isPlainObject(value)) return value
  const out: Record<string, unknown> = Object.create(Object.getPrototypeOf(value))
  seen.set(value, out)
  for (const key of Object.keys(value)) out[key] = substituteResults((value as Record<string, unknown>)[key], seen)
  return out
}
