import { PtrError } from '../errors.ts'
import { emitRunLog } from './log.ts'
import type { CachePolicy, CachePolicyName, MemoOwner, TaskResultOptions, ResultStore, StoredResult, TaskRunMemo } from './result-types.ts'
import type { AnyTask } from './task-types.ts'
import { UnhashableValue, canonical, digest } from './value-hash.ts'

/**
 * Results that outlive a run: caching (Prefect 3's cache policies) and resuming a flow run that
 * did not complete. The engine decides, before a task run's first attempt, whether a stored
 * value stands in for it; where values are stored is the business of a {@link ResultStore},
 * which the CLI gives a flow run (the run history's SQLite file).
 */

const POLICY_NAMES: readonly CachePolicyName[] = ['inputs', 'taskSource', 'flowParameters', 'runId', 'none']

function policyNames(policy: CachePolicy | undefined): readonly CachePolicyName[] {
  if (policy === undefined) return []
  const names = typeof policy === 'string' ? [policy] : policy
  return names.includes('none') ? [] : names
}

/** Checks a task's caching options at definition; throws a PtrError saying what to change. */
export function validateResultOptions(what: string, code: string, options: TaskResultOptions<any[]>): void {
  const bad = (message: string) => new PtrError(`${what}: ${message}`, { code, exitCode: 2 })
  const { cachePolicy, cacheKeyFn, cacheExpirationSeconds, persistResult } = options
  if (cachePolicy !== undefined) {
    if (typeof cachePolicy !== 'string' && !Array.isArray(cachePolicy)) throw bad(`cachePolicy must be a policy name or a list of them (${POLICY_NAMES.join(', ')})`)
    for (const name of typeof cachePolicy === 'string' ? [cachePolicy] : cachePolicy) {
      if (!POLICY_NAMES.includes(name)) throw bad(`unknown cachePolicy '${String(name)}'; use ${POLICY_NAMES.join(', ')}, or a list of them`)
    }
    if (cacheKeyFn !== undefined && policyNames(cachePolicy).length > 0) throw bad('give cachePolicy or cacheKeyFn, not both')
  }
  if (cacheKeyFn !== undefined && typeof cacheKeyFn !== 'function') throw bad('cacheKeyFn must be a function (context, args) => string')
  if (cacheExpirationSeconds !== undefined && !(typeof cacheExpirationSeconds === 'number' && cacheExpirationSeconds > 0)) {
    throw bad(`cacheExpirationSeconds must be a number of seconds above 0, got ${String(cacheExpirationSeconds)}`)
  }
  if (persistResult === false && (cacheKeyFn !== undefined || policyNames(cachePolicy).length > 0)) {
    throw bad('a cached task must keep its result; drop persistResult: false, or the cachePolicy')
  }
}

/** The policy `task` caches by in a flow run with `results`: its own, else the default (unless it keeps no results). */
function policyOf(task: AnyTask, results: ResultStore): readonly CachePolicyName[] {
  const { cachePolicy, persistResult } = task.options
  if (cachePolicy !== undefined) return policyNames(cachePolicy)
  return persistResult === false ? [] : policyNames(results.defaultCachePolicy)
}

/** The run's cache key from its task's policy (`inputs`: the arguments' canonical text, already made), or why it has none. */
function cacheKeyOf(task: AnyTask, owner: MemoOwner, args: readonly unknown[], inputs: string | UnhashableValue): string | UnhashableValue | undefined {
  const { cacheKeyFn } = task.options
  if (cacheKeyFn !== undefined) {
    const key = cacheKeyFn({ taskName: task.name, taskKey: task.key, flowRunId: owner.flowRunId, flowName: owner.flowName, parameters: owner.parameters }, args as never)
    return key === null || key === undefined ? undefined : `fn:${String(key)}`
  }
  const parts = [task.key]
  for (const name of policyOf(task, owner.results)) {
    if (name === 'inputs') {
      if (inputs instanceof UnhashableValue) return inputs
      parts.push(`inputs:${inputs}`)
    } else if (name === 'taskSource') parts.push(`source:${task.fn.toString()}`)
    else if (name === 'flowParameters') {
      const text = canonical(owner.parameters, 'the flow parameters')
      if (text instanceof UnhashableValue) return text
      parts.push(`parameters:${text}`)
    } else if (name === 'runId') parts.push(`run:${owner.flowRunId}`)
  }
  return digest(...parts)
}

/**
 * A task run's memo (see {@link TaskRunMemo}), from its resolved arguments. A value that cannot be
 * hashed, or a `cacheKeyFn` that throws, makes the run uncacheable (and not resumable) with a
 * warning against the run, never a failure.
 */
export function memoize(run: { readonly id: string; readonly name: string; readonly task: AnyTask }, owner: MemoOwner, args: readonly unknown[]): TaskRunMemo {
  const { task } = run
  const persist = task.options.persistResult ?? owner.results.persistByDefault
  const inputs = canonical(args, 'args')
  const position = owner.nextPosition(task.key)
  const identity = inputs instanceof UnhashableValue ? undefined : digest(owner.memoPath, task.key, String(position), inputs)
  let cacheKey: string | undefined
  let unhashable = inputs instanceof UnhashableValue ? inputs.message : undefined
  if (task.options.cacheKeyFn !== undefined || policyOf(task, owner.results).length > 0) {
    let key: string | UnhashableValue | undefined
    try {
      key = cacheKeyOf(task, owner, args, inputs)
    } catch (error) {
      key = new UnhashableValue('cacheKeyFn', `a function that threw (${(error as Error)?.message ?? String(error)})`)
    }
    if (key instanceof UnhashableValue) {
      unhashable = key.message
      emitRunLog({ taskRunId: run.id, taskRunName: run.name, flowRunId: owner.flowRunId }, 'warning', `'${run.name}' is not cached: ${key.message}, which has no stable hash`, 'logger')
    } else cacheKey = key
  }
  const ttl = task.options.cacheExpirationSeconds
  return { identity, cacheKey, cacheTtlMs: cacheKey !== undefined && ttl !== undefined ? ttl * 1000 : undefined, persist, unhashable }
}

/** The stored value that stands in for the run, if any: the resumed run's first, then the cache's (unless refreshCache). */
export function storedOutcome(task: AnyTask, memo: TaskRunMemo, results: ResultStore): StoredResult | undefined {
  if (memo.identity !== undefined) {
    const resumed = results.resumed(memo.identity)
    if (resumed) return resumed
  }
  if (memo.cacheKey !== undefined && task.options.refreshCache !== true) return results.cached(memo.cacheKey)
  return undefined
}
