/**
 * The types of results that outlive a run (caching, resume): task options, what a result store
 * provides, and what a task run is known by. Kept apart from results.ts, which computes keys and
 * needs the task types, so that events.ts and task-types.ts can name them without a circle.
 */

/**
 * What a cache key is made of. `inputs`: the task's arguments (with futures resolved);
 * `taskSource`: the task function's source text; `flowParameters`: the parameters of the flow run
 * the task runs in; `runId`: that flow run's id (a cache for one run only). Combine them in a
 * list; `none` turns caching off. The task's key (its module and name) is always part of the key.
 */
export type CachePolicyName = 'inputs' | 'taskSource' | 'flowParameters' | 'runId' | 'none'
export type CachePolicy = CachePolicyName | readonly CachePolicyName[]

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
export interface TaskResultOptions<Args extends unknown[] = unknown[]> {
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
