import { serialize } from 'node:v8'

/**
 * Whether values can cross into a worker: structured clone for threads, v8 ('advanced')
 * serialization for child processes. Used by the main side before dispatch (a value workerpool
 * cannot send makes `exec()` throw and loses the worker slot) and by the worker for return values.
 */
export type Crossing = 'thread' | 'process'

const isPrimitive = (value: unknown): boolean =>
  value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol')

function canCross(value: unknown, crossing: Crossing): boolean {
  try {
    if (crossing === 'thread') structuredClone(value)
    else serialize(value)
    return true
  } catch {
    return false
  }
}

function what(value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'symbol') return 'a symbol'
  const name = (value as object)?.constructor?.name
  return name ? `a ${name}` : 'a value that cannot be cloned'
}

/** The path inside `value` (starting at `path`) of the first part that cannot cross, and what it is. */
function locate(value: unknown, path: string, crossing: Crossing, seen: Set<object>): string | undefined {
  if (typeof value === 'function' || typeof value === 'symbol') return `${path} is ${what(value)}`
  if (value === null || typeof value !== 'object') return undefined
  if (seen.has(value)) return undefined
  seen.add(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = locate(value[i], `${path}[${i}]`, crossing, seen)
      if (found) return found
    }
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      const found = locate(k, `${path} (a Map key)`, crossing, seen) ?? locate(v, `${path}.get(${typeof k === 'string' ? JSON.stringify(k) : String(k)})`, crossing, seen)
      if (found) return found
    }
  } else if (value instanceof Set) {
    for (const v of value) {
      const found = locate(v, `${path} (a Set item)`, crossing, seen)
      if (found) return found
    }
  } else {
    for (const key of Object.keys(value)) {
      const found = locate((value as Record<string, unknown>)[key], `${path}.${key}`, crossing, seen)
      if (found) return found
    }
  }
  return canCross(value, crossing) ? undefined : `${path} is ${what(value)}`
}

/** Objects of built-in classes that cross as themselves (errors too, see src/engine/error-wire.ts). */
function crossesAsItself(value: object): boolean {
  return (
    value instanceof Date ||
    value instanceof RegExp ||
    value instanceof Error ||
    value instanceof ArrayBuffer ||
    ArrayBuffer.isView(value) ||
    value instanceof Boolean ||
    value instanceof Number ||
    value instanceof String ||
    value instanceof BigInt
  )
}

/**
 * Where in `value` (starting at `path`) an instance of a class is, e.g. `args[0].origin is an
 * instance of Point, ...`: serialization would send it as a plain object, without its prototype,
 * and the task would fail later on a missing method (or silently compute something else).
 */
export function findClassInstance(value: unknown, path: string, seen: Set<object> = new Set()): string | undefined {
  if (value === null || typeof value !== 'object' || seen.has(value)) return undefined
  seen.add(value)
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findClassInstance(value[i], `${path}[${i}]`, seen)
      if (found) return found
    }
  } else if (value instanceof Map) {
    for (const [k, v] of value) {
      const found = findClassInstance(k, `${path} (a Map key)`, seen) ?? findClassInstance(v, `${path}.get(${typeof k === 'string' ? JSON.stringify(k) : String(k)})`, seen)
      if (found) return found
    }
  } else if (value instanceof Set) {
    for (const v of value) {
      const found = findClassInstance(v, `${path} (a Set item)`, seen)
      if (found) return found
    }
  } else if (!crossesAsItself(value)) {
    const proto = Object.getPrototypeOf(value) as { constructor?: { name?: string } } | null
    if (proto !== null && proto !== Object.prototype) {
      const name = proto.constructor?.name
      return `${path} is an instance of ${name || 'a class'}, which would arrive as a plain object, without its methods`
    }
    for (const key of Object.keys(value)) {
      const found = findClassInstance((value as Record<string, unknown>)[key], `${path}.${key}`, seen)
      if (found) return found
    }
  }
  return undefined
}

/**
 * Undefined when every argument can cross; else which one cannot and why, e.g.
 * `argument 2 cannot be sent (args[1].callback is a function)`.
 */
export function checkArguments(args: readonly unknown[], crossing: Crossing): string | undefined {
  // Fast path: plain numbers and strings need no trial serialization.
  let allPrimitive = true
  for (let i = 0; i < args.length; i++) {
    if (!isPrimitive(args[i])) {
      allPrimitive = false
      break
    }
  }
  if (allPrimitive) return undefined
  const instances = new Set<object>()
  for (let i = 0; i < args.length; i++) {
    const found = findClassInstance(args[i], `args[${i}]`, instances)
    if (found) return `argument ${i + 1} cannot be sent (${found})`
  }
  if (canCross(args, crossing)) return undefined
  const seen = new Set<object>()
  for (let i = 0; i < args.length; i++) {
    const found = locate(args[i], `args[${i}]`, crossing, seen)
    if (found) return `argument ${i + 1} cannot be sent (${found})`
  }
  return 'the arguments cannot be sent'
}

/** Undefined when `value` can cross back; else why not, e.g. `the return value cannot be sent back (value.fn is a function)`. */
export function checkReturnValue(value: unknown, crossing: Crossing): string | undefined {
  if (isPrimitive(value)) return undefined
  const instance = findClassInstance(value, 'value')
  if (instance) return `the return value cannot be sent back (${instance})`
  if (canCross(value, crossing)) return undefined
  return `the return value cannot be sent back (${locate(value, 'value', crossing, new Set()) ?? 'it cannot be cloned'})`
}

export const crossingName = (crossing: Crossing): string => (crossing === 'thread' ? 'a worker thread' : 'a worker process')
