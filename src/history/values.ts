import { decodeValue, serializeValue } from '../queue/codec.ts'
import { JSON_TAG, UNDEFINED_TAG, encodePrimitive } from './value-text.ts'

/**
 * How the history keeps a run's value: the v8 serialization a process worker uses (see
 * src/queue/codec.ts), except for the values most tasks return, which keep a short form (see
 * value-text.ts).
 */

/** The bytes to keep for `value`, or why it cannot be kept (see serializeValue). */
export function encodeResult(value: unknown): Uint8Array | { problem: string } {
  return encodePrimitive(value) ?? serializeValue(value)
}

export function decodeResult(bytes: Uint8Array): unknown {
  if (bytes[0] === UNDEFINED_TAG && bytes.byteLength === 1) return undefined
  if (bytes[0] === JSON_TAG) return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.byteLength - 1).toString('utf8'))
  return decodeValue(bytes)
}
