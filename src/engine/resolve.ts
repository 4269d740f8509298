import type { PrefectFuture } from './future.ts'
import { isFuture } from './future.ts'

const ALLOW_FAILURE = Symbol.for('ptr.allowFailure')
const UNMAPPED = Symbol.for('ptr.unmapped')

/** Marks upstreams whose failure should not stop the downstream run: see {@link allowFailure}. */
export class AllowFailure<T> {
  readonly [ALLOW_FAILURE] = true
  declare readonly __value: T
  /** What was wrapped: a future, or a value (a list, an object) that may hold futures. */
  constructor(readonly value: unknown) {}
}

/**
 * Lets the downstream run even if upstreams fail: the downstream receives each failed upstream's
 * error in place of its value. Wraps a future, or any value holding futures (a list of futures, a
 * `map()` result, an object); a plain value passes through. Type your parameter as `T | Error`
 * (or `unknown`) to accept it. In `waitFor`, it lets the run start whatever those runs ended in.
 */
export function allowFailure<T>(future: PrefectFuture<T>): AllowFailure<T>
export function allowFailure(value: unknown): AllowFailure<any>
export function allowFailure(value: unknown): AllowFailure<unknown> {
  return new AllowFailure(value)
}

export const isAllowFailure = (value: unknown): value is AllowFailure<unknown> =>
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
  | (T extends readonly unknown[] ? (Error extends T[number] ? AllowFailure<any> : never) : never)
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
 * @returns true when `value` holds an `allowFailure()` wrapper (to unwrap, even with no future in it).
 */
export function collectUpstreams(value: unknown, into: Upstream[], seen?: Set<object>, allowFailure = false): boolean {
  if (typeof value !== 'object' || value === null) return false
  if (isFuture(value)) {
    into.push({ future: value, allowFailure })
    return false
  }
  if (isAllowFailure(value)) {
    collectUpstreams(value.value, into, seen, true)
    return true
  }
  const isArray = Array.isArray(value)
  if (!isArray && !(value instanceof Map) && !(value instanceof Set) && !isPlainObject(value)) return false
  seen ??= new Set()
  if (seen.has(value)) return false
  seen.add(value)
  let wrapped = false
  const visit = (item: unknown) => {
    if (collectUpstreams(item, into, seen, allowFailure)) wrapped = true
  }
  if (isArray) for (const item of value) visit(item)
  else if (value instanceof Map) for (const [k, v] of value) (visit(k), visit(v))
  else if (value instanceof Set) for (const item of value) visit(item)
  else for (const key of Object.keys(value)) visit((value as Record<string, unknown>)[key])
  return wrapped
}

/**
 * Returns `value` with every future replaced by its result (and every `allowFailure(f)` by its
 * result or error). Only call once every upstream has settled. Containers holding futures are
 * copied; the caller's objects are never changed.
 */
export function substituteResults(value: unknown, seen: Map<object, unknown> = new Map()): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (isFuture(value)) {
    const state = value.state
    // Only a future under allowFailure() can reach here without having completed.
    return state.type === 'Completed' ? state.result : (state.error ?? new Error(`upstream ended ${state.name}`))
  }
  if (isAllowFailure(value)) return substituteResults(value.value, seen)
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
