import { inspect } from 'node:util'
import * as Errors from '../errors.ts'
import { isPtrError, toError } from '../errors.ts'

/**
 * Errors as plain data, for every place an error leaves its process or thread: pool workers (thread
 * and process), nested runs' states reported from a worker, and the queue's stored errors (kept as
 * JSON). `toErrorRecord()` on one side, `fromErrorRecord()` on the other: built-in classes and
 * ptr's own classes come back as themselves (`instanceof` holds); any other class comes back as an
 * Error (or its nearest built-in ancestor) with the same `name`, `message`, `stack`, `cause`
 * (recursively) and own data properties (`code`, `errno`, ...).
 */
export interface ErrorRecord {
  readonly name: string
  readonly message: string
  readonly stack?: string | undefined
  /** `code` of the error, when it is a string (also in `props`): what `ptr runs show` and reports read. */
  readonly code?: string | undefined
  /** The class to rebuild: a built-in (`TypeError`, `DOMException`, ...) or one of ptr's; none means Error. */
  readonly type?: string | undefined
  /** `cause`: an error as a record, or any other value. */
  readonly cause?: { readonly error: ErrorRecord } | { readonly value: unknown } | undefined
  /** An AggregateError's `errors`. */
  readonly errors?: readonly ErrorRecord[] | undefined
  /** Own data properties other than name, message, stack and cause; values that cannot travel are shown as text. */
  readonly props?: Readonly<Record<string, unknown>> | undefined
}

type ErrorClass = new (...args: never[]) => Error

/** Built-in classes, most specific first is not needed: each is a direct child of Error (or Error itself). */
const BUILTINS: Readonly<Record<string, ErrorClass>> = {
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  AggregateError,
  DOMException,
  Error,
}

/** ptr's own error classes, by class name. */
const PTR_CLASSES: ReadonlyMap<string, ErrorClass> = new Map(
  (Object.entries(Errors) as [string, unknown][]).filter(
    (entry): entry is [string, ErrorClass] => typeof entry[1] === 'function' && entry[1].prototype instanceof Error,
  ),
)

const OWN_PARTS = new Set(['name', 'message', 'stack', 'cause'])
/** How deep causes and aggregated errors are followed (a cause may point back at its error). */
const MAX_DEPTH = 8

/** Whether `value` survives JSON unchanged: what every channel (worker or queue) can carry. */
export function isJsonSafe(value: unknown, depth = 0): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
  if (typeof value === 'number') return Number.isFinite(value)
  if (typeof value !== 'object' || depth > MAX_DEPTH) return false
  if (Array.isArray(value)) return value.every((item) => isJsonSafe(item, depth + 1))
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return false
  return Object.values(value).every((item) => item !== undefined && isJsonSafe(item, depth + 1))
}

/** The class `error` is rebuilt as: one of ptr's (by name), else its nearest built-in ancestor. */
function typeOf(error: Error): string | undefined {
  if (isPtrError(error)) {
    const name = error.constructor?.name
    if (name && PTR_CLASSES.has(name)) return name
  }
  for (let proto = Object.getPrototypeOf(error); proto; proto = Object.getPrototypeOf(proto)) {
    for (const [name, Class] of Object.entries(BUILTINS)) if (proto === Class.prototype) return name === 'Error' ? undefined : name
  }
  return undefined
}

/**
 * `thrown` as plain data. `canSend` says whether a value may travel as it is (a worker's channel
 * carries more than JSON); other values of own properties and causes travel as their `inspect()` text.
 */
export function toErrorRecord(thrown: unknown, canSend: (value: unknown) => boolean = isJsonSafe, depth = 0): ErrorRecord {
  const error = toError(thrown)
  const value = (v: unknown): unknown => (v === undefined || canSend(v) ? v : inspect(v, { depth: 2, breakLength: Infinity }))
  let props: Record<string, unknown> | undefined
  for (const key of Object.getOwnPropertyNames(error)) {
    if (OWN_PARTS.has(key) || (key === 'errors' && error instanceof AggregateError)) continue
    const descriptor = Object.getOwnPropertyDescriptor(error, key)
    if (!descriptor || !('value' in descriptor) || typeof descriptor.value === 'function') continue
    ;(props ??= {})[key] = value(descriptor.value)
  }
  const code = (error as { code?: unknown }).code
  const cause = (error as { cause?: unknown }).cause
  const hasCause = Object.prototype.hasOwnProperty.call(error, 'cause') && cause !== undefined
  const type = typeOf(error)
  return {
    name: String(error.name),
    message: String(error.message),
    stack: typeof error.stack === 'string' ? error.stack : undefined,
    ...(typeof code === 'string' ? { code } : {}),
    ...(type ? { type } : {}),
    ...(hasCause && depth < MAX_DEPTH
      ? { cause: cause instanceof Error ? { error: toErrorRecord(cause, canSend, depth + 1) } : { value: value(cause) } }
      : {}),
    ...(error instanceof AggregateError && depth < MAX_DEPTH ? { errors: Array.from(error.errors ?? [], (e: unknown) => toErrorRecord(e, canSend, depth + 1)) } : {}),
    ...(props ? { props } : {}),
  }
}

const hidden = (value: unknown): PropertyDescriptor => ({ value, writable: true, configurable: true, enumerable: false })

/** The error `record` describes, as its own class when that is a built-in or one of ptr's. */
export function fromErrorRecord(record: ErrorRecord): Error {
  const type = record.type
  let error: Error
  const ptrClass = type === undefined ? undefined : PTR_CLASSES.get(type)
  if (ptrClass) {
    // ptr's constructors take different arguments; its classes keep their state in own properties.
    error = Object.create(ptrClass.prototype) as Error
    Object.defineProperty(error, 'message', hidden(record.message))
  } else if (type === 'AggregateError') {
    error = new AggregateError((record.errors ?? []).map(fromErrorRecord), record.message)
  } else if (type === 'DOMException') {
    error = new DOMException(record.message, record.name)
  } else {
    error = new ((type !== undefined && BUILTINS[type]) || Error)(record.message as never)
  }
  if (error.name !== record.name) Object.defineProperty(error, 'name', hidden(record.name))
  if (record.stack !== undefined) Object.defineProperty(error, 'stack', hidden(record.stack))
  if (record.cause) Object.defineProperty(error, 'cause', hidden('error' in record.cause ? fromErrorRecord(record.cause.error) : record.cause.value))
  if (record.props) Object.assign(error, record.props)
  else if (record.code !== undefined) Object.assign(error, { code: record.code })
  return error
}
