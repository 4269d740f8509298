import path from 'node:path'
import type { CachePolicyName } from '../engine/result-types.ts'
import type { ResultSettings } from '../history/result-settings.ts'
import { localDirFrom } from './local-dir.ts'
import type { ResolvedSettings } from './resolve.ts'

/** Where the run history lives, whether `ptr run` records into it, and how results are kept. */
export interface ResolvedHistorySettings {
  readonly enabled: boolean
  /** `<localDir>/history.db`, absolute. */
  readonly file: string
  readonly results: ResultSettings
}

export function historySettingsFrom(resolved: ResolvedSettings, cwd: string): ResolvedHistorySettings {
  const { settings } = resolved
  const policy = String(settings['tasks.defaultCachePolicy'].value)
  return {
    enabled: settings.history.value !== false,
    file: path.join(localDirFrom(resolved, cwd), 'history.db'),
    results: {
      persistByDefault: settings['results.persistByDefault'].value !== false,
      maxBytes: Number(settings['results.maxBytes'].value),
      // As a task's cachePolicy: the engine reads 'none' (alone or in a list) as no caching.
      defaultCachePolicy: policy.split('+').map((name) => name.trim() as CachePolicyName),
    },
  }
}
