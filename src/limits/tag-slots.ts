import { provide } from '../engine/providers.ts'
import type { TagSlotsRun } from '../engine/providers.ts'
import { makeState } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { Limits } from './limits.ts'
import { defaultLimits } from './open.ts'

/** The state of a task run waiting for a slot of a limited tag (Prefect's name). */
export const AWAITING_CONCURRENCY_SLOT = 'AwaitingConcurrencySlot'

/**
 * The engine's `tagSlots`: a run whose tags have limits in the default queue's store waits for a
 * slot of each. Runs handed to task workers (`marksRunning`) take their slots in the worker instead,
 * so a slot is never taken twice for one run. Synchronous (no await) when no tag is limited.
 */
export function tagSlots(run: TagSlotsRun): (() => void) | Promise<(() => void) | undefined> | undefined {
  if (run.executor.marksRunning) return undefined
  const limits = defaultLimits(true)
  if (limits === undefined) return undefined
  if (limits instanceof Promise) return limits.then((opened) => (opened ? slotsFor(opened, run) : undefined))
  return slotsFor(limits, run)
}

function slotsFor(limits: Limits, run: TagSlotsRun): (() => void) | Promise<(() => void) | undefined> | undefined {
  const names = limits.store.limitedNames()
  if (names instanceof Promise) return names.then((known) => take(limits, run, known))
  return take(limits, run, names)
}

function take(limits: Limits, run: TagSlotsRun, limited: ReadonlySet<string>): Promise<(() => void) | undefined> | undefined {
  if (limited.size === 0) return undefined
  const wanted = run.tags.filter((tag) => limited.has(tag))
  if (wanted.length === 0) return undefined
  const controller = new AbortController()
  run.onSettled(() => controller.abort())
  return limits
    .acquire(wanted, {
      holder: `${run.name} (${run.id})`,
      signal: controller.signal,
      onWait: () => {
        if (!isSettled(run.state)) run.setState(makeState('Pending', AWAITING_CONCURRENCY_SLOT, { message: `waiting for a slot of ${wanted.map((t) => `'${t}'`).join(', ')}` }))
      },
    })
    .then(
      (held) => () => void held.release(),
      (error: unknown) => {
        // Cancelled (or otherwise settled) while waiting: nothing was taken.
        if (isSettled(run.state)) return undefined
        throw error
      },
    )
}

provide({ tagSlots })
