import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { isPtrOwnFile, stackFrames } from './stack.ts'
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

/** The file URL of the first stack frame outside ptr's own code (and tsx's): the module defining a task. */
export function definingModule(): string | undefined {
  const holder: { stack?: string } = {}
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 30
  Error.captureStackTrace(holder, definingModule)
  Error.stackTraceLimit = limit
  const frame = stackFrames(holder.stack).find((f) => !isPtrOwnFile(f.path) && !f.path.includes(`${path.sep}node_modules${path.sep}tsx${path.sep}`))
  return frame && pathToFileURL(frame.path).href
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

