import v8 from 'node:v8'
import { findClassInstance } from '../runners/crossing.ts'
import { fromErrorRecord, toErrorRecord } from '../engine/error-wire.ts'
import type { ErrorRecord } from '../engine/error-wire.ts'
import { CancelledError, CrashedError, PtrError, TaskRunTimeoutError, toError } from '../errors.ts'
import type { StoredError } from './backend.ts'

/**
 * `value` as v8-serialized bytes, or why it cannot be: the part that is a function, a symbol or a
 * class instance (which would arrive without its prototype), named from `path`. The queue and the
 * run history both keep values this way.
 */
export function serializeValue(value: unknown, path = 'value'): Uint8Array | { problem: string } {
  const instance = findClassInstance(value, path)
  if (instance) return { problem: instance }
  try {
    return v8.serialize(value)
  } catch (error) {
    return { problem: toError(error).message }
  }
}

/**
 * Arguments and results cross the queue as v8-serialized data (Date, Map, Set, BigInt, typed
 * arrays and Errors survive; functions, symbols and class instances are refused). Never code to
 * evaluate. `path` names `value` in the message.
 */
export function encodeValue(value: unknown, what: string, path = 'value'): Uint8Array {
  const bytes = serializeValue(value, path)
  if (bytes instanceof Uint8Array) return bytes
  throw new PtrError(`${what} cannot be stored on the queue: ${bytes.problem}; pass plain data (numbers, strings, arrays, plain objects, Map, Set, Date)`, {
    code: 'PTR_NOT_SERIALIZABLE',
    exitCode: 2,
  })
}

export function decodeValue(bytes: Uint8Array): unknown {
  return v8.deserialize(bytes)
}

/** An error as the queue stores it (JSON): its class, stack, cause and own data kept; see src/engine/error-wire.ts. */
export function storeError(thrown: unknown): StoredError {
  return toErrorRecord(thrown)
}

/** Rebuilds the error a run ended with, as the class the engine expects for its state. */
export function loadError(stored: StoredError | undefined, state: string, stateName: string, runId: string): Error {
  const rebuilt = stored ? fromErrorRecord(stored as ErrorRecord) : undefined
  const message = stored?.message ?? `task run ${runId} ended ${stateName}`
  // Errors a backend wrote itself (a lost lease, a cancellation) carry no class: the state gives it.
  const expected = state === 'Crashed' ? CrashedError : state === 'Cancelled' ? CancelledError : stateName === 'TimedOut' ? TaskRunTimeoutError : undefined
  if (rebuilt && (!expected || rebuilt instanceof expected)) return rebuilt
  const error = expected ? new expected(message) : new Error(message)
  if (stored?.stack) error.stack = stored.stack
  return error
}
