import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * Where the current run context lives (see context.ts, which types it): apart, so that modules
 * context.ts names (task-run.ts) can go on in a context they kept without importing it. One
 * storage per process, shared by every copy of ptr loaded in it.
 */
const STORAGE = Symbol.for('ptr.context')
type WithStorage = { [STORAGE]?: AsyncLocalStorage<object> }
export const contextStorage: AsyncLocalStorage<object> = ((globalThis as WithStorage)[STORAGE] ??= new AsyncLocalStorage<object>())
