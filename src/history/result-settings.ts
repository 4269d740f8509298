import type { CachePolicy } from '../engine/result-types.ts'

/** How results are kept (the `results.*` settings). */
export interface ResultSettings {
  /** Keep values of runs whose task or flow sets no `persistResult`. */
  readonly persistByDefault: boolean
  /** Values bigger than this (serialized) are not kept: the run is marked not resumable. */
  readonly maxBytes: number
  /** The cache policy of tasks that set none (`tasks.defaultCachePolicy`). */
  readonly defaultCachePolicy?: CachePolicy | undefined
}

/** What a recorder keeps without settings (in-process use), and the `results.*` settings' defaults (src/settings/schema.ts). */
export const DEFAULT_RESULT_SETTINGS: ResultSettings = { persistByDefault: true, maxBytes: 64 * 1024 * 1024 }
