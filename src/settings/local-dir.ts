import path from 'node:path'
import type { ResolvedSettings, SettingSource } from './resolve.ts'

/** The folder a relative path from `source` is relative to: a config file's own folder, else `cwd`. */
export const baseFolder = (source: SettingSource, cwd: string): string => (source.type === 'file' ? path.dirname(source.path) : cwd)

/** The absolute `localDir` (ptr's local files: the queue database, the run history). */
export function localDirFrom(resolved: ResolvedSettings, cwd: string): string {
  const { localDir } = resolved.settings
  return path.resolve(baseFolder(localDir.source, cwd), String(localDir.value))
}
