import path from 'node:path'
import type { QueueBackendOptions } from '../queue/backend.ts'
import { defaultQueueUrl } from '../queue/url.ts'
import type { ResolvedSettings, ResolveSettingsOptions } from './resolve.ts'
import { formatSource, resolveSettings } from './resolve.ts'
import { baseFolder, localDirFrom } from './local-dir.ts'

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
  const localDir = localDirFrom(resolved, cwd)
  return {
    url: url.value === null ? defaultQueueUrl(localDir) : absoluteSqliteUrl(String(url.value), baseFolder(url.source, cwd)),
    source: url.value === null ? `default (localDir from ${formatSource(settings.localDir.source)})` : formatSource(url.source),
    leaseMs: Math.round(Number(settings['worker.leaseSeconds'].value) * 1000),
    maxLostLeases: Number(settings['worker.maxLostLeases'].value),
  }
}

/** `sqlite:PATH` with a relative PATH made absolute against `folder`; other URLs unchanged. */
function absoluteSqliteUrl(url: string, folder: string): string {
  const match = /^sqlite:(\/\/)?(.*)$/i.exec(url)
  if (!match || match[2] === '' || match[2] === ':memory:' || path.isAbsolute(match[2]!)) return url
  return `sqlite:${path.resolve(folder, match[2]!)}`
}

/** Resolves the settings and returns the queue's (and the settings, for commands that need more). */
export async function resolveQueueSettings(options: ResolveSettingsOptions): Promise<ResolvedQueueSettings & { settings: ResolvedSettings }> {
  const settings = await resolveSettings(options)
  return { ...queueSettingsFrom(settings, options.cwd), settings }
}
