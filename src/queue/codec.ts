import v8 from 'node:v8'
import { CancelledError, CrashedError, PtrError, TaskRunTimeoutError, toError } from '../errors.ts'
import type { StoredError } from './backend.ts'

/**
 * Arguments and results cross the queue as v8-serialized data (Date, Map, Set, BigInt, typed
 * arrays and Errors survive; functions and symbols are refused). Never code to evaluate.
 */
export function encodeValue(value: unknown, what: string): Uint8Array {
  try {
    return v8.serialize(value)
  } catch (error) {
    throw new PtrError(`${what} cannot be stored on the queue: ${toError(error).message}; pass plain data (no functions, symbols or class instances with private state)`, {
      code: 'PTR_NOT_SERIALIZABLE',
      exitCode: 2,
    })
  }
}

export function decodeValue(bytes: Uint8Array): unknown {
  return v8.deserialize(bytes)
}

export function storeError(thrown: unknown): StoredError {
  const error = toError(thrown)
  const code = (error as { code?: unknown }).code
  return { name: error.name, message: error.message, stack: error.stack, code: typeof code === 'string' ? code : undefined }
}

/** Rebuilds the error a run ended with, as the class the engine expects for its state. */
export function loadError(stored: StoredError | undefined, state: string, stateName: string, runId: string): Error {
  const message = stored?.message ?? `task run ${runId} ended ${stateName}`
  let error: Error
  if (state === 'Crashed') error = new CrashedError(message)
  else if (state === 'Cancelled') error = new CancelledError(message)
  else if (stateName === 'TimedOut') error = new TaskRunTimeoutError(message)
  else {
    error = new Error(message)
    if (stored?.name) error.name = stored.name
    if (stored?.code) Object.assign(error, { code: stored.code })
  }
  if (stored?.stack) Object.assign(error, { remoteStack: stored.stack })
  return error
}
