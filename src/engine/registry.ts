import { pathToFileURL } from 'node:url'
import type { AnyTask } from './task-types.ts'

/**
 * Every task defined in this isolate, by key. A key is `<module file URL>#<task name>` (plus
 * `~N` for the N-th task of the same name in one module), so the same module yields the same keys
 * in every thread and process: that is how a worker finds the task it is asked to run.
 * Kept on globalThis so two copies of ptr's modules share one registry.
 */
const REGISTRY = Symbol.for('ptr.taskRegistry')
type WithRegistry = { [REGISTRY]?: Map<string, AnyTask> }
const registry: Map<string, AnyTask> = ((globalThis as WithRegistry)[REGISTRY] ??= new Map())

/**
 * ptr's own modules: the folder this module was loaded from (dist/ when built, src/ in ptr's own
 * tests) and, when built, src/ too: stack frames of the built modules name their sources through
 * the source maps once those are enabled.
 */
const OWN_DIRS = [new URL('..', import.meta.url).href, ...(import.meta.url.endsWith('.js') ? [new URL('../../src/', import.meta.url).href] : [])]

/** The file URL of the first stack frame outside ptr's own sources: the module defining a task. */
export function definingModule(): string | undefined {
  const holder: { stack?: string } = {}
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 30
  Error.captureStackTrace(holder, definingModule)
  Error.stackTraceLimit = limit
  for (const line of (holder.stack ?? '').split('\n').slice(1)) {
    const match = /\(?((?:file:\/\/|\/)[^():]+(?::\d+)*?):\d+:\d+\)?\s*$/.exec(line.trim())
    const location = match?.[1]
    if (!location) continue
    const url = location.startsWith('file://') ? location : pathToFileURL(location).href
    if (OWN_DIRS.some((dir) => url.startsWith(dir)) || url.includes('/node_modules/tsx/')) continue
    return url
  }
  return undefined
}

export function registerTask(moduleUrl: string | undefined, name: string, create: (key: string) => AnyTask): AnyTask {
  const base = `${moduleUrl ?? 'anonymous:'}#${name}`
  let key = base
  for (let n = 2; registry.has(key); n++) key = `${base}~${n}`
  const task = create(key)
  registry.set(key, task)
  return task
}

export const lookupTask = (key: string): AnyTask | undefined => registry.get(key)

