import { hash } from 'node:crypto'

/**
 * Deterministic hashes of argument values, for cache keys and for matching a task run of a
 * resumed flow run with the earlier run's: equal data gives the same hash whatever the order of
 * an object's keys or a Set's or Map's entries; Dates, BigInts, typed arrays, NaN, -0 and
 * `undefined` keep their identity. A value that has no stable identity (a function, a symbol, a
 * class instance, a promise) cannot be hashed: {@link canonical} says where it is.
 */

/** A value (or part of one) that cannot be hashed: `path` names it, as in `args[1].client`. */
export class UnhashableValue {
  constructor(
    readonly path: string,
    readonly what: string,
  ) {}
  get message(): string {
    return `${this.path} is ${this.what}`
  }
}

const TYPED_ARRAY = Object.getPrototypeOf(Int8Array)

function describe(value: object): string {
  const name = (value as { constructor?: { name?: string } }).constructor?.name
  return name ? `a ${name}` : 'an object without a prototype'
}

/** The canonical text of a string, number, boolean, undefined, bigint or null, else undefined. */
function primitive(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return `s${value.length}:${value}`
    case 'number':
      return Object.is(value, -0) ? 'n-0;' : `n${value};`
    case 'boolean':
      return value ? 'T' : 'F'
    case 'undefined':
      return 'u'
    case 'bigint':
      return `b${value};`
  }
  return value === null ? 'z' : undefined
}

/**
 * Appends `value`'s canonical text to `out`. Tagged so that values of different types never
 * collide (the number 1 and the string "1", an array and a Set).
 */
function write(value: unknown, path: string, out: string[], seen: Set<object>): UnhashableValue | undefined {
  const text = primitive(value)
  if (text !== undefined) {
    out.push(text)
    return undefined
  }
  if (typeof value === 'function') return new UnhashableValue(path, 'a function')
  if (typeof value === 'symbol') return new UnhashableValue(path, 'a symbol')
  const object = value as object
  if (seen.has(object)) return new UnhashableValue(path, 'a reference back to an object that contains it (a cycle)')
  seen.add(object)
  try {
    if (Array.isArray(object)) {
      out.push('[', String(object.length), ':')
      for (let i = 0; i < object.length; i++) {
        const bad = write(object[i], `${path}[${i}]`, out, seen)
        if (bad) return bad
      }
      out.push(']')
      return undefined
    }
    if (object instanceof Date) {
      out.push('d', String(object.getTime()), ';')
      return undefined
    }
    if (object instanceof Map || object instanceof Set) {
      // Entries in a stable order: each entry's own canonical text, sorted.
      const entries: string[] = []
      let i = 0
      for (const entry of object instanceof Map ? object.entries() : object.values()) {
        const part: string[] = []
        const bad = write(entry, `${path} (${object instanceof Map ? 'Map entry' : 'Set item'} ${i++})`, part, seen)
        if (bad) return bad
        entries.push(part.join(''))
      }
      entries.sort()
      out.push(object instanceof Map ? 'M' : 'S', String(entries.length), ':', ...entries.map((e) => `${e.length}:${e}`))
      return undefined
    }
    if (object instanceof TYPED_ARRAY || object instanceof DataView) {
      const view = object as ArrayBufferView
      out.push('t', describe(object), ':', Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64'), ';')
      return undefined
    }
    if (object instanceof ArrayBuffer) {
      out.push('B', Buffer.from(object).toString('base64'), ';')
      return undefined
    }
    if (object instanceof RegExp) {
      out.push('r', String(object), ';')
      return undefined
    }
    if (object instanceof Error) {
      out.push('e')
      return write({ name: object.name, message: object.message }, path, out, seen)
    }
    const proto = Object.getPrototypeOf(object)
    if (proto !== Object.prototype && proto !== null) return new UnhashableValue(path, `${describe(object)} (only plain data has a stable hash)`)
    const keys = Object.keys(object).sort()
    out.push('{', String(keys.length), ':')
    for (const key of keys) {
      out.push(String(key.length), ':', key)
      const bad = write((object as Record<string, unknown>)[key], `${path}.${key}`, out, seen)
      if (bad) return bad
    }
    out.push('}')
    return undefined
  } finally {
    seen.delete(object)
  }
}

/** The canonical text of `value` (see the module's comment), or where it cannot be hashed. */
export function canonical(value: unknown, path = 'value'): string | UnhashableValue {
  // The common case, a task's arguments all primitives: no walk.
  if (Array.isArray(value) && value.length <= 8) {
    let text = `[${value.length}:`
    for (const item of value) {
      const part = primitive(item)
      if (part === undefined) {
        text = ''
        break
      }
      text += part
    }
    if (text !== '') return `${text}]`
  }
  const out: string[] = []
  const bad = write(value, path, out, new Set())
  return bad ?? out.join('')
}

/**
 * A short hash (sha256, base64url, 22 characters = 132 bits) of the given texts, kept apart by
 * their lengths. One-shot `crypto.hash`: about 3× cheaper per call than createHash's object.
 */
export function digest(...parts: readonly string[]): string {
  let text = ''
  for (const part of parts) text += `${part.length}:${part}`
  // A string of its own, not the slice: V8 keeps a slice as a view of its parent (all 43
  // characters), and a run keeps its identity for its life. JSON.parse copies (about 0.1 µs).
  return JSON.parse(`"${hash('sha256', text, 'base64url').slice(0, 22)}"`) as string
}

/** `digest` of `value`'s canonical text, or where it cannot be hashed. */
export function hashValue(value: unknown, path = 'value'): string | UnhashableValue {
  const text = canonical(value, path)
  return typeof text === 'string' ? digest(text) : text
}
