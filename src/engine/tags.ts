import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * The `tags()` context: tags added to every task and flow run created inside it. Nothing is looked
 * up until `tags()` is first called, so runs cost nothing extra when it is never used.
 */
const STORAGE = Symbol.for('ptr.tags')
type WithStorage = { [STORAGE]?: AsyncLocalStorage<readonly string[]> }
const storage: AsyncLocalStorage<readonly string[]> = ((globalThis as WithStorage)[STORAGE] ??= new AsyncLocalStorage<readonly string[]>())
let used = false

/**
 * Runs `fn` with `names` added to the tags of every task run and flow run created inside it
 * (Prefect's `with tags(...)`); nested contexts add up. Returns what `fn` returns.
 *
 * @example
 * await tags(['db', 'nightly'], async () => { await load.submit(table).result() })
 */
export function tags<T>(names: readonly string[], fn: () => T): T {
  if (!Array.isArray(names) || names.some((name) => typeof name !== 'string')) {
    throw new TypeError(`tags(): expected a list of strings, got ${JSON.stringify(names)}; write tags(['db'], async () => ...)`)
  }
  used = true
  const outer = storage.getStore()
  return storage.run(outer ? [...new Set([...outer, ...names])] : [...new Set(names)], fn)
}

/** The tags of the `tags()` contexts around this code; undefined outside any. */
export const contextTags = (): readonly string[] | undefined => (used ? storage.getStore() : undefined)
