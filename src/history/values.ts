import { decodeValue, serializeValue } from '../queue/codec.ts'

/**
 * How the history keeps a run's value: the v8 serialization a process worker uses (see
 * src/queue/codec.ts), except for the values most tasks return, which v8 takes about 3 µs to
 * serialize: `undefined`, booleans, null, finite numbers and strings are kept as a tag byte and
 * their JSON text (well under 1 µs). v8's bytes always start with 0xFF, so the tags never clash.
 */
const JSON_TAG = 0x4a // 'J'
const UNDEFINED_TAG = 0x55 // 'U'
const UNDEFINED = Buffer.from([UNDEFINED_TAG])

/** The bytes to keep for `value`, or why it cannot be kept (see serializeValue). */
export function encodeResult(value: unknown): Uint8Array | { problem: string } {
  switch (typeof value) {
    case 'undefined':
      return UNDEFINED
    case 'boolean':
    case 'string':
      return Buffer.from(`J${JSON.stringify(value)}`)
    case 'number':
      // NaN, ±Infinity and -0 have no JSON text: v8 keeps them.
      if (Number.isFinite(value) && !Object.is(value, -0)) return Buffer.from(`J${value}`)
      break
    case 'object':
      if (value === null) return Buffer.from('Jnull')
  }
  return serializeValue(value)
}

export function decodeResult(bytes: Uint8Array): unknown {
  if (bytes[0] === UNDEFINED_TAG && bytes.byteLength === 1) return undefined
  if (bytes[0] === JSON_TAG) return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.byteLength - 1).toString('utf8'))
  return decodeValue(bytes)
}
