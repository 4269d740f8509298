// ptr's heavy dependencies, loaded before tsx's loader hooks exist: through the hooks each of
// their many modules costs a round trip to tsx's loader thread (zod: 55 ms plain, 130-160 ms
// hooked; listr2's lazily imported parts: ~110 ms of CPU at the live view's first frame, against
// ~13 ms preloaded). Later imports of them (from ptr's .ts sources) hit the module cache.
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const DEPENDENCIES = ['commander', 'chalk', 'zod', 'cosmiconfig', 'listr2']
/** What listr2 imports only when it starts drawing, resolved from listr2 itself (the copy it will use). */
export const LISTR2_LAZY = ['log-update', 'cli-truncate', 'wrap-ansi']

function fromListr2(name) {
  try {
    const require = createRequire(import.meta.url)
    return pathToFileURL(createRequire(require.resolve('listr2')).resolve(name)).href
  } catch {
    return name
  }
}

/**
 * Best effort: a module that cannot be loaded from here just loads later, through the hooks.
 * Returns the names of those that failed.
 */
export async function preloadDependencies() {
  const names = [...DEPENDENCIES, ...LISTR2_LAZY]
  const results = await Promise.allSettled([...DEPENDENCIES, ...LISTR2_LAZY.map(fromListr2)].map((name) => import(name)))
  return names.filter((_, i) => results[i].status === 'rejected')
}
