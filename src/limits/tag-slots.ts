import { provide } from '../engine/providers.ts'
import type { TagSlotsRun } from '../engine/providers.ts'
import { makeState } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { Limits } from './limits.ts'
import { defaultLimits } from './open.ts'

/** The state of a task run waiting for a slot of a limited tag (Prefect's name). */
export const AWAITING_CONCURRENCY_SLOT = 'AwaitingConcurrencySlot'

/** How to wait for the slots of the limited tags: asked only once some tag has a limit. */
export interface TagSlotWait {
  /** What holds the slots, as `ptr concurrency-limit inspect` shows it. */
  holder: string
  /** Ends the wait: the promise rejects with the signal's reason. */
  signal?: AbortSignal
  /** Called once if the run has to wait. */
  onWait?: () => void
}

/**
 * Takes a slot of each tag that has a limit in the default queue's store, for one task run (the
 * engine's runs, and task workers' runs). Returns undefined at once when no tag is limited (no
 * await: the common case costs a cached lookup); else a promise of the function that gives the
 * slots back. `how` is called only when some tag is limited.
 */
export function takeTagSlots(tags: readonly string[], how: (wanted: readonly string[]) => TagSlotWait): Promise<(() => void) | undefined> | undefined {
  const limits = defaultLimits(true)
  if (limits === undefined) return undefined
  if (limits instanceof Promise) return limits.then((opened) => (opened ? slotsFor(opened, tags, how) : undefined))
  return slotsFor(limits, tags, how)
}

function slotsFor(limits: Limits, tags: readonly string[], how: (wanted: readonly string[]) => TagSlotWait): Promise<(() => void) | undefined> | undefined {
  const names = limits.store.limitedNames()
  if (names instanceof Promise) return names.then((known) => take(limits, tags, known, how))
  return take(limits, tags, names, how)
}

function take(limits: Limits, tags: readonly string[], limited: ReadonlySet<string>, how: (wanted: readonly string[]) => TagSlotWait): Promise<() => void> | undefined {
  if (limited.size === 0) return undefined
  const wanted = tags.filter((tag) => limited.has(tag))
  if (wanted.length === 0) return undefined
  const { holder, signal, onWait } = how(wanted)
  return limits.acquire(wanted, { holder, ...(signal ? { signal } : {}), ...(onWait ? { onWait } : {}) }).then((held) => () => void held.release())
}

/**
 * The engine's `tagSlots`: a run whose tags have limits in the default queue's store waits for a
 * slot of each. Runs handed to task workers (`marksRunning`) take their slots in the worker instead,
 * so a slot is never taken twice for one run. Synchronous (no await) when no tag is limited.
 */
export function tagSlots(run: TagSlotsRun): (() => void) | Promise<(() => void) | undefined> | undefined {
  if (run.executor.marksRunning) return undefined
  const taking = takeTagSlots(run.tags, (wanted) => {
    const controller = new AbortController()
    run.onSettled(() => controller.abort())
    return {
      holder: `${run.name} (${run.id})`,
      signal: controller.signal,
      onWait: () => {
        if (!isSettled(run.state)) run.setState(makeState('Pending', AWAITING_CONCURRENCY_SLOT, { message: `waiting for a slot of ${wanted.map((t) => `'${t}'`).join(', ')}` }))
      },
    }
  })
  return taking?.catch((error: unknown) => {
    // Cancelled (or otherwise settled) while waiting: nothing was taken.
    if (isSettled(run.state)) return undefined
    throw error
  })
}

provide({ tagSlots })
