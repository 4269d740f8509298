import type { State } from './states.ts'

/**
 * Where the providers of src/engine/providers.ts are kept: on globalThis, like the task registry,
 * so a second copy of ptr's modules sees the same providers. A file of its own, importing nothing
 * but states, so the task run can read an optional provider without an import circle.
 */
const PROVIDERS = Symbol.for('ptr.engineProviders')
type WithProviders = { [PROVIDERS]?: Record<string, unknown> }
export const provided: Record<string, unknown> = ((globalThis as WithProviders)[PROVIDERS] ??= {})

/** What `tagSlots` sees of a task run. */
export interface TagSlotsRun {
  readonly id: string
  readonly name: string
  readonly tags: readonly string[]
  readonly state: State
  readonly executor: { readonly marksRunning?: boolean }
  setState(state: State): unknown
  onSettled(callback: () => void): void
}

/**
 * For a run with tags, before it takes a runner slot: waits for a slot of every limited tag (the
 * run is Pending AwaitingConcurrencySlot meanwhile) and returns what frees them; undefined at once
 * when none of its tags is limited.
 */
export type TagSlots = (run: TagSlotsRun) => (() => void) | Promise<(() => void) | undefined> | undefined

/** The `tagSlots` provider, if the limits are loaded. */
export const tagSlotsProvider = (): TagSlots | undefined => provided.tagSlots as TagSlots | undefined
