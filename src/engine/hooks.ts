import { PtrError, toError } from '../errors.ts'
import type { LogTarget } from './log.ts'
import { emitRunLog } from './log.ts'
import type { State } from './states.ts'

/**
 * State hooks (Prefect's `on_completion`, `on_failure`, ...): functions a task or flow calls when
 * one of its runs enters a state. They run in the main process, where the engine drives states;
 * one that throws is logged against the run and changes nothing.
 */
export const HOOK_NAMES = ['onCompletion', 'onFailure', 'onCrashed', 'onCancellation', 'onRunning'] as const
export type HookName = (typeof HOOK_NAMES)[number]

/** A hook: called with the task (or flow), the run's info and the state it entered. May be async. */
export type StateHook<Owner, Info> = (owner: Owner, run: Info, state: State) => unknown

/** The hook options of tasks and flows: each a function or a list of functions, called in order. */
export type HookOptions<Owner, Info> = {
  /** Called when a run ends Completed. @default none */
  onCompletion?: StateHook<Owner, Info> | readonly StateHook<Owner, Info>[]
  /** Called when a run ends Failed (TimedOut included), after its last retry. @default none */
  onFailure?: StateHook<Owner, Info> | readonly StateHook<Owner, Info>[]
  /** Called when a run ends Crashed (its worker died, ptr failed under it). @default none */
  onCrashed?: StateHook<Owner, Info> | readonly StateHook<Owner, Info>[]
  /** Called when a run ends Cancelled. @default none */
  onCancellation?: StateHook<Owner, Info> | readonly StateHook<Owner, Info>[]
  /** Called when an attempt starts (Running, and Retrying for each retry), before its code runs. @default none */
  onRunning?: StateHook<Owner, Info> | readonly StateHook<Owner, Info>[]
}

type AnyHook = (owner: never, run: never, state: State) => unknown
/** The hooks of a task or flow, by name, as lists; `undefined` when it has none (the usual case). */
export type ResolvedHooks = Partial<Record<HookName, readonly AnyHook[]>>

const HOOK_FOR: Partial<Record<State['type'], HookName>> = {
  Completed: 'onCompletion',
  Failed: 'onFailure',
  Crashed: 'onCrashed',
  Cancelled: 'onCancellation',
  Running: 'onRunning',
}

/** Checks and collects hook options; a hook that is not a function is an exit-2 error naming it. */
export function resolveHooks(what: string, code: string, options: HookOptions<never, never>): ResolvedHooks | undefined {
  let hooks: ResolvedHooks | undefined
  for (const name of HOOK_NAMES) {
    const given = options[name]
    if (given === undefined) continue
    const list = (typeof given === 'function' ? [given] : given) as readonly unknown[]
    if (!Array.isArray(list)) {
      throw new PtrError(`${what}: expected \`${name}\` to be a function or a list of functions, got ${typeof given}`, { code, exitCode: 2 })
    }
    list.forEach((hook, index) => {
      if (typeof hook !== 'function') {
        throw new PtrError(`${what}: expected \`${name}\`[${index}] to be a function, got ${hook === null ? 'null' : typeof hook}`, { code, exitCode: 2 })
      }
    })
    if (list.length > 0) (hooks ??= {})[name] = list as AnyHook[]
  }
  return hooks
}

/** Whether `hooks` has any for `state`. */
export const hasHooksFor = (hooks: ResolvedHooks, state: State): boolean => {
  const name = HOOK_FOR[state.type]
  return name !== undefined && hooks[name] !== undefined
}

/**
 * Calls the hooks for `state`, one after another, each awaited; a hook that throws is logged
 * against the run (`target`) and the next one runs. Returns nothing when there are none.
 */
export function callHooks(hooks: ResolvedHooks, state: State, owner: unknown, info: unknown, target: LogTarget, runName: string): Promise<void> | undefined {
  const name = HOOK_FOR[state.type]
  const list = name && hooks[name]
  if (!list) return undefined
  return (async () => {
    for (const hook of list) {
      try {
        await (hook as (owner: unknown, run: unknown, state: State) => unknown)(owner, info, state)
      } catch (thrown) {
        const error = toError(thrown)
        emitRunLog(target, 'error', `${name} hook '${hook.name || 'anonymous'}' of '${runName}' failed (the run stays ${state.name}): ${error.name}: ${error.message}`, 'logger')
      }
    }
  })()
}
