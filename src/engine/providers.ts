import { PtrError } from '../errors.ts'
import type { PrefectFuture } from './future.ts'
import type { AnyTask } from './task-types.ts'
import type { TaskRunner } from './task-runner.ts'
import { provided } from './provided.ts'
import type { TagSlots } from './provided.ts'
export type { TagSlotsRun } from './provided.ts'

/**
 * What the engine uses but does not own: capabilities of the layers above it (runners, the queue),
 * which provide them when they load. The engine imports nothing from those layers; loading ptr
 * through its entry (`ptr`, src/index.ts) loads the providers too.
 */
export interface EngineProviders {
  /** The task runner of a flow that names none (as in Prefect: a thread pool). */
  defaultTaskRunner(): TaskRunner
  /** `t.delay(...args)`: puts one run on the task-worker queue. */
  delay(task: AnyTask, args: readonly unknown[]): PrefectFuture
  /** Optional (src/limits): a task run with tags waits for a slot of each limited tag before it starts. */
  tagSlots?: TagSlots
}

// On globalThis, like the task registry: a second copy of ptr's modules sees the same providers.
const providers = provided as Partial<EngineProviders>

export function provide(given: Partial<EngineProviders>): void {
  Object.assign(providers, given)
}

export function provider<K extends keyof EngineProviders>(name: K): NonNullable<EngineProviders[K]> {
  const found = providers[name]
  if (!found) {
    throw new PtrError(`ptr's ${name} is not loaded: import ptr from its package entry ('ptr'), not from a file inside the package`, {
      code: 'PTR_NOT_PROVIDED',
    })
  }
  return found
}
