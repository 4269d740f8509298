import path from 'node:path'
import type { QueueBackendOptions } from '../queue/backend.ts'
import { defaultQueueUrl } from '../queue/url.ts'
import type { ResolvedSettings, ResolveSettingsOptions } from './resolve.ts'
import { formatSource, resolveSettings } from './resolve.ts'

/** The queue a command uses, from the settings (flag > env > config file > default). */
export interface ResolvedQueueSettings extends Required<QueueBackendOptions> {
  /** The URL, password included: pass it to `openQueue`, print only `redactUrl(url)`. */
  readonly url: string
  /** Where the URL came from, for error messages: `flag --queue`, `env PREFECT_QUEUE_URL`, `file ...`. */
  readonly source: string
}

/** The queue settings out of resolved settings; the default SQLite file lives under `localDir`. */
export function queueSettingsFrom(resolved: ResolvedSettings, cwd: string): ResolvedQueueSettings {
  const { settings } = resolved
  const url = settings['queue.url']
  const localDir = String(settings.localDir.value)
  return {
    url: url.value === null ? defaultQueueUrl(path.resolve(cwd, localDir)) : String(url.value),
    source: url.value === null ? `default (localDir from ${formatSource(settings.localDir.source)})` : formatSource(url.source),
    leaseMs: Math.round(Number(settings['worker.leaseSeconds'].value) * 1000),
    maxLostLeases: Number(settings['worker.maxLostLeases'].value),
  }
}

/** Resolves the settings and returns the queue's (and the settings, for commands that need more). */
export async function resolveQueueSettings(options: ResolveSettingsOptions): Promise<ResolvedQueueSettings & { settings: ResolvedSettings }> {
  const settings = await resolveSettings(options)
  return { ...queueSettingsFrom(settings, options.cwd), settings }
}
