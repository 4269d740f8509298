import { UsageError } from '../errors.ts'
import type { QueueBackend, QueueBackendOptions } from './backend.ts'
import { parseQueueUrl, redactUrl, resolveQueueUrl } from './url.ts'

/**
 * Opens the backend a queue URL names. A backend's module is loaded only when its URL asks for it.
 * `source` names where the URL came from, for error messages.
 */
export async function openQueue(url: string, options: QueueBackendOptions & { source?: string } = {}): Promise<QueueBackend> {
  const parsed = parseQueueUrl(url, options.source)
  if (parsed.kind === 'sqlite') {
    const { SqliteQueueBackend } = await import('./sqlite.ts')
    return new SqliteQueueBackend(parsed.path, { ...options, url: redactUrl(url) })
  }
  const { RedisQueueBackend } = await import('./redis.ts')
  return RedisQueueBackend.connect(parsed.url, { ...options, db: parsed.db })
}

const DEFAULT_QUEUE = Symbol.for('ptr.defaultQueue')
type DefaultQueueOptions = QueueBackendOptions & { source?: string }
type WithQueue = { [DEFAULT_QUEUE]?: { url: string | undefined; options: DefaultQueueOptions; backend: Promise<QueueBackend> | undefined } }
const slot = ((globalThis as WithQueue)[DEFAULT_QUEUE] ??= { url: undefined, options: {}, backend: undefined })

/**
 * Makes `url` the queue that `t.delay()` and the PrefectTaskRunner use in this process (a task
 * worker points it at the queue it serves, so tasks that delay more work stay on it; `ptr run`
 * points it at the queue its settings name). Without a call, the environment decides
 * (`resolveQueueUrl()`, `queueTimingsFromEnv()`): library use reads no config file.
 */
export function setDefaultQueue(url: string | undefined, backend?: QueueBackend, options: DefaultQueueOptions = {}): void {
  slot.url = url
  slot.options = options
  slot.backend = backend ? Promise.resolve(backend) : undefined
}

/** The URL of the process's default queue and where it came from, without opening it (the limits live there too). */
export function defaultQueueTarget(): { url: string; source: string } {
  return slot.url ? { url: slot.url, source: slot.options.source ?? 'the task worker' } : resolveQueueUrl()
}

/** The process's default queue, opened on first use. */
export function defaultQueue(): Promise<QueueBackend> {
  if (!slot.backend) {
    const { url, source } = slot.url ? { url: slot.url, source: slot.options.source ?? 'the task worker' } : resolveQueueUrl()
    slot.backend = openQueue(url, slot.url ? { ...slot.options, source } : { source, ...queueTimingsFromEnv() })
    slot.backend.catch(() => (slot.backend = undefined))
  }
  return slot.backend
}

/** Lease settings from the environment (the settings module takes this over when merged). */
export function queueTimingsFromEnv(env: NodeJS.ProcessEnv = process.env): QueueBackendOptions {
  const options: QueueBackendOptions = {}
  const lease = env.PREFECT_TASK_WORKER_LEASE_SECONDS
  if (lease !== undefined && lease !== '') {
    const seconds = Number(lease)
    if (!(seconds > 0)) throw new UsageError(`PREFECT_TASK_WORKER_LEASE_SECONDS must be a number of seconds above 0, got '${lease}'`, 'PTR_BAD_SETTING')
    options.leaseMs = Math.round(seconds * 1000)
  }
  const lost = env.PREFECT_TASK_WORKER_MAX_LOST_LEASES
  if (lost !== undefined && lost !== '') {
    const n = Number(lost)
    if (!(Number.isInteger(n) && n >= 1)) throw new UsageError(`PREFECT_TASK_WORKER_MAX_LOST_LEASES must be an integer from 1 and up, got '${lost}'`, 'PTR_BAD_SETTING')
    options.maxLostLeases = n
  }
  return options
}
