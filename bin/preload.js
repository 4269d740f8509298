// ptr's heavy dependencies, loaded before tsx's loader hooks exist: through the hooks each of
// their many modules costs a round trip to tsx's loader thread (zod: 55 ms plain, 130-160 ms
// hooked). ptr's own modules import some of them lazily; those later imports hit the module cache.

const DEPENDENCIES = ['commander', 'chalk', 'zod', 'cosmiconfig']

/**
 * Best effort: a module that cannot be loaded from here just loads later, through the hooks.
 * Returns the names of those that failed.
 */
export async function preloadDependencies() {
  const results = await Promise.allSettled(DEPENDENCIES.map((name) => import(name)))
  return DEPENDENCIES.filter((_, i) => results[i].status === 'rejected')
}
