import { PtrError } from '../errors.ts'
import type { TaskRunInfo } from './events.ts'
import { emitRunLog } from './log.ts'
import type { AnyTask } from './task-types.ts'
import { UnhashableValue, canonical, digest } from './value-hash.ts'

/**
 * Results that outlive a run: caching (Prefect 3's cache policies) and resuming a flow run that
 * did not complete. The engine decides, before a task run's first attempt, whether a stored
 * value stands in for it; where values are stored is the business of a {@link ResultStore},
 * which the CLI gives a flow run (the run history's SQLite file).
 */

/**
 * What a cache key is made of. `inputs`: the task's arguments (with futures resolved);
 * `taskSource`: the task function's source text; `flowParameters`: the parameters of the flow run
 * the task runs in; `runId`: that flow run's id (a cache for one run only). Combine them in a
 * list; `none` turns caching off. The task's key (its module and name) is always part of the key.
 */
export type CachePolicyName = 'inputs' | 'taskSource' | 'flowParameters' | 'runId' | 'none'
export type CachePolicy = CachePolicyName | readonly CachePolicyName[]
const POLICY_NAMES: readonly CachePolicyName[] = ['inputs', 'taskSource', 'flowParameters', 'runId', 'none']

/** What `cacheKeyFn` is given besides the arguments. */
export interface CacheKeyContext {
  readonly taskName: string
  readonly taskKey: string
  readonly flowRunId: string | undefined
  readonly flowName: string | undefined
  /** The parameters of the flow run the task runs in. */
  readonly parameters: Readonly<Record<string, unknown>>
}

/** Task options for caching and result persistence (part of `TaskOptions`). */
export interface ResultOptions<Args extends unknown[] = unknown[]> {
  /**
   * Reuse the value of an earlier run with the same key instead of running: the run ends
   * Completed, named Cached. @default 'none' (no caching)
   */
  cachePolicy?: CachePolicy
  /**
   * The cache key from the arguments, instead of a `cachePolicy`; `null` or `undefined` means
   * "do not cache this call". The key is used as given, so two tasks can share entries.
   */
  // A method, so that a task with any arguments is still an AnyTask (method parameters are bivariant).
  cacheKeyFn?(context: CacheKeyContext, args: Args): string | null | undefined
  /** How long a cached value stays valid. @default forever */
  cacheExpirationSeconds?: number
  /** Run even when a cached value exists, and store the new value in its place. @default false */
  refreshCache?: boolean
  /**
   * Keep the run's value (in `<localDir>`, next to the run history), so that `ptr run --resume`
   * can reuse it. @default the `results.persistByDefault` setting (true)
   */
  persistResult?: boolean
}

/** A stored value that stands in for a run, and where it came from (shown in the Cached state's message). */
export interface StoredResult {
  readonly value: unknown
  readonly from: string
}

/** Where results live: provided to a flow run by `FlowRunOptions.results`, inherited by its subflows. */
export interface ResultStore {
  /** Whether runs whose task (or flow) sets no `persistResult` keep their values. */
  readonly persistByDefault: boolean
  /** The policy of tasks that set no `cachePolicy` or `cacheKeyFn` (and keep their results). @default none */
  readonly defaultCachePolicy?: CachePolicy | undefined
  /** When the flow run resumes an earlier one: that run's value for the task run with this identity. */
  resumed(identity: string): StoredResult | undefined
  /** The cached value under `key`, unless it expired. */
  cached(key: string): StoredResult | undefined
}

/**
 * What a task run is known by across runs, set before its first attempt when its flow run has a
 * result store. The recorder stores the run's value under these keys when it completes.
 */
export interface TaskRunMemo {
  /**
   * Matches the run with the same run of another flow run of the same flow: its flow run's place
   * among subflows, its task, its place among that task's calls, and its inputs. Unset when an
   * argument cannot be hashed (see `unhashable`).
   */
  readonly identity: string | undefined
  /** The cache key, when the task caches. */
  readonly cacheKey: string | undefined
  /** How long a cache entry of this run stays valid (ms), when it has a limit. */
  readonly cacheTtlMs: number | undefined
  /** Whether the run's value is to be stored. */
  readonly persist: boolean
  /** Why the run cannot be matched or cached: the argument that cannot be hashed. */
  readonly unhashable: string | undefined
}

/** Where a task run stands among the runs of its flow run: what {@link memoize} needs of its owner. */
export interface MemoOwner {
  readonly results: ResultStore
  /** The flow run's place: '' for a root flow run, `<parent's>/<flow name>#<n>` for a subflow. */
  readonly memoPath: string
  readonly flowRunId: string
  readonly flowName: string
  readonly parameters: Readonly<Record<string, unknown>>
  /** The run's place among calls of `key` in this flow run attempt: 0, 1, 2, ... */
  nextPosition(key: string): number
}

function policyNames(policy: CachePolicy | undefined): readonly CachePolicyName[] {
  if (policy === undefined) return []
  const names = typeof policy === 'string' ? [policy] : policy
  return names.includes('none') ? [] : names
}

/** Checks a task's caching options at definition; throws a PtrError saying what to change. */
export function validateResultOptions(what: string, code: string, options: ResultOptions<any[]>): void {
  const bad = (message: string) => new PtrError(`${what}: ${message}`, { code, exitCode: 2 })
  const { cachePolicy, cacheKeyFn, cacheExpirationSeconds, persistResult } = options
  if (cachePolicy !== undefined) {
    const names = typeof cachePolicy === 'string' ? [cachePolicy] : cachePolicy
    if (!Array.isArray(names) && typeof cachePolicy !== 'string') throw bad(`cachePolicy must be a policy name or a list of them (${POLICY_NAMES.join(', ')})`)
    for (const name of names) {
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

function cacheKeyOf(task: AnyTask, owner: MemoOwner, args: readonly unknown[], inputs: string | UnhashableValue | undefined): string | UnhashableValue | undefined {
  const { cacheKeyFn } = task.options
  if (cacheKeyFn !== undefined) {
    const key = cacheKeyFn({ taskName: task.name, taskKey: task.key, flowRunId: owner.flowRunId, flowName: owner.flowName, parameters: owner.parameters }, args as never)
    return key === null || key === undefined ? undefined : `fn:${String(key)}`
  }
  const parts = [task.key]
  for (const name of policyOf(task, owner.results)) {
    if (name === 'inputs') {
      const text = inputs ?? canonical(args, 'args')
      if (text instanceof UnhashableValue) return text
      parts.push(`inputs:${text}`)
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
export function memoize(run: TaskRunInfo & { readonly task: AnyTask }, owner: MemoOwner, args: readonly unknown[]): TaskRunMemo {
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
