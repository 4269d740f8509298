import path from 'node:path'
import { localDirFrom } from './local-dir.ts'
import type { ResolvedSettings } from './resolve.ts'

/** Where the run history lives, and whether `ptr run` records into it. */
export interface ResolvedHistorySettings {
  readonly enabled: boolean
  /** `<localDir>/history.db`, absolute. */
  readonly file: string
}

export function historySettingsFrom(resolved: ResolvedSettings, cwd: string): ResolvedHistorySettings {
  return { enabled: resolved.settings.history.value !== false, file: path.join(localDirFrom(resolved, cwd), 'history.db') }
}
