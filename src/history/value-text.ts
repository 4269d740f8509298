/**
 * The short form the history keeps the values most tasks return in: `undefined`, booleans, null,
 * finite numbers and strings, as a tag byte and their JSON text (well under 1 µs, where v8 takes
 * about 3 µs to serialize them). v8's bytes always start with 0xFF, so the tags never clash. Apart
 * from values.ts (which adds v8 serialization for the rest): the writer thread needs only this.
 */
export const JSON_TAG = 0x4a // 'J'
export const UNDEFINED_TAG = 0x55 // 'U'
const UNDEFINED = Buffer.from([UNDEFINED_TAG])

/** The short form of `value`, or undefined when it has none (NaN, ±Infinity and -0 have no JSON text; objects). */
export function encodePrimitive(value: unknown): Uint8Array | undefined {
  switch (typeof value) {
    case 'undefined':
      return UNDEFINED
    case 'boolean':
    case 'string':
      return Buffer.from(`J${JSON.stringify(value)}`)
    case 'number':
      if (Number.isFinite(value) && !Object.is(value, -0)) return Buffer.from(`J${value}`)
      return undefined
    case 'object':
      if (value === null) return Buffer.from('Jnull')
  }
  return undefined
}

/** Whether `value` travels to the writer thread as itself, which encodes it there (see encodePrimitive). */
export function isShortValue(value: unknown): boolean {
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'string':
      return true
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0)
    case 'object':
      return value === null
  }
  return false
}
