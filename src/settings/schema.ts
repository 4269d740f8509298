import * as z from 'zod'
import { DEFAULT_RESULT_SETTINGS } from '../history/result-settings.ts'
import { DEFAULT_SLOT_LEASE_SECONDS } from '../limits/limits.ts'
import { DEFAULT_RUNNER_KIND, RUNNER_KINDS } from '../runners/kinds.ts'

/**
 * Every ptr setting, in one table: its type (a zod schema), default, environment variables,
 * config-file key, CLI flag and a one-line description. `docs/settings.md` and
 * `.prefectrc.example` mirror this table (a test checks the example file against it).
 */
export interface SettingSpec<T = unknown> {
  /** The config-file key; dotted keys are nested objects in the file (`threadPool: { maxWorkers: 4 }`). */
  readonly key: string
  /** Environment variables, the canonical one first (the others are aliases). */
  readonly env: readonly string[]
  /** The CLI flag that sets it, if any. */
  readonly flag: string | undefined
  /** Flags shared by several settings (`--max-workers`) set the one whose runner kind is in use. */
  readonly appliesTo: string | undefined
  readonly description: string
  /** What the value may be, for error messages: "an integer from 1 and up". */
  readonly accepts: string
  /** Validates one value (after {@link SettingSpec.fromString} for env vars and flags). */
  readonly schema: z.ZodType<T | null>
  /** `null` means "not set": the consumer's own default applies (shown in `describeDefault`). */
  readonly default: T | null
  /** What `null` means, for docs and `ptr config view`. */
  readonly nullMeans?: string
  /** Env vars and flags are strings: turn one into a candidate value (validated afterwards). */
  readonly fromString: (raw: string) => unknown
}

const asInteger = (raw: string): unknown => (/^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : raw)
const asString = (raw: string): unknown => raw
const asNumber = (raw: string): unknown => (/^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$/.test(raw) ? Number(raw) : raw)
const asLowerCase = (raw: string): unknown => raw.trim().toLowerCase()
const BOOLEAN_WORDS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false, yes: true, no: false, on: true, off: false }
const asBoolean = (raw: string): unknown => BOOLEAN_WORDS[raw.trim().toLowerCase()] ?? raw

const positiveInt = z.int().min(1)
const nullable = <T extends z.ZodType>(schema: T) => schema.nullable()

const OUTPUT_MODES = ['auto', 'live', 'plain', 'json'] as const
const LOG_LEVELS = ['debug', 'info', 'warning', 'error'] as const
const COLOR_MODES = ['auto', 'always', 'never'] as const

const CACHE_POLICIES = ['none', 'inputs', 'taskSource', 'flowParameters', 'runId'] as const

const QUEUE_URL = z.string().refine((value) => /^(sqlite:.+|redis:\/\/.*|rediss:\/\/.*)$/.test(value))

const setting = <T, const K extends string>(
  spec: Omit<SettingSpec<T>, 'appliesTo' | 'flag' | 'key'> & { key: K; flag?: string; appliesTo?: string },
): SettingSpec<T> & { readonly key: K } => Object.freeze({ appliesTo: undefined, flag: undefined, ...spec })

/** The settings, in the order `ptr config view` shows them. */
export const SETTINGS = [
  setting<string, 'runner'>({
    key: 'runner',
    env: ['PREFECT_TASK_RUNNER'],
    flag: '--runner',
    description: "the task runner for flows whose code names none (a flag also overrides the flow's own)",
    accepts: `one of: ${RUNNER_KINDS.join(', ')}`,
    schema: z.enum(RUNNER_KINDS as unknown as [string, ...string[]]),
    default: DEFAULT_RUNNER_KIND,
    fromString: asLowerCase,
  }),
  setting<number, 'threadPool.maxWorkers'>({
    key: 'threadPool.maxWorkers',
    env: ['PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS', 'PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS'],
    flag: '--max-workers',
    appliesTo: 'thread',
    description: 'worker threads of the thread-pool runner',
    accepts: 'an integer from 1 and up',
    schema: nullable(positiveInt),
    default: null,
    nullMeans: "the runner's own default",
    fromString: asInteger,
  }),
  setting<number, 'processPool.maxWorkers'>({
    key: 'processPool.maxWorkers',
    env: ['PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS', 'PREFECT_TASK_RUNNER_PROCESS_POOL_MAX_WORKERS'],
    flag: '--max-workers',
    appliesTo: 'process',
    description: 'child processes of the process-pool runner',
    accepts: 'an integer from 1 and up',
    schema: nullable(positiveInt),
    default: null,
    nullMeans: "the runner's own default",
    fromString: asInteger,
  }),
  setting<number, 'concurrent.maxConcurrency'>({
    key: 'concurrent.maxConcurrency',
    env: ['PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY'],
    flag: '--max-concurrency',
    appliesTo: 'concurrent',
    description: 'most task runs in progress at once on the concurrent runner',
    accepts: 'an integer from 1 and up',
    schema: nullable(positiveInt),
    default: null,
    nullMeans: 'no limit',
    fromString: asInteger,
  }),
  setting<number, 'tasks.defaultRetries'>({
    key: 'tasks.defaultRetries',
    env: ['PREFECT_TASK_DEFAULT_RETRIES'],
    description: "retries of a task run whose task sets no `retries` of its own",
    accepts: 'an integer from 0 and up',
    schema: z.int().min(0),
    default: 0,
    fromString: asInteger,
  }),
  setting<number, 'tasks.defaultRetryDelaySeconds'>({
    key: 'tasks.defaultRetryDelaySeconds',
    env: ['PREFECT_TASK_DEFAULT_RETRY_DELAY_SECONDS'],
    description: "seconds before each retry of a task run whose task sets no `retryDelaySeconds` of its own",
    accepts: 'a number of seconds from 0 and up',
    schema: z.number().min(0),
    default: 0,
    fromString: asNumber,
  }),
  setting<number, 'flows.defaultRetries'>({
    key: 'flows.defaultRetries',
    env: ['PREFECT_FLOW_DEFAULT_RETRIES'],
    description: "retries of a flow run whose flow sets no `retries` of its own",
    accepts: 'an integer from 0 and up',
    schema: z.int().min(0),
    default: 0,
    fromString: asInteger,
  }),
  setting<number, 'flows.defaultRetryDelaySeconds'>({
    key: 'flows.defaultRetryDelaySeconds',
    env: ['PREFECT_FLOW_DEFAULT_RETRY_DELAY_SECONDS'],
    description: "seconds before each retry of a flow run whose flow sets no `retryDelaySeconds` of its own",
    accepts: 'a number of seconds from 0 and up',
    schema: z.number().min(0),
    default: 0,
    fromString: asNumber,
  }),
  setting<string, 'output'>({
    key: 'output',
    env: ['PREFECT_OUTPUT'],
    flag: '--output',
    description: 'how a run is shown: auto (live on a terminal, plain otherwise), live, plain, json',
    accepts: `one of: ${OUTPUT_MODES.join(', ')}`,
    schema: z.enum(OUTPUT_MODES),
    default: 'auto',
    fromString: asLowerCase,
  }),
  setting<string, 'logLevel'>({
    key: 'logLevel',
    env: ['PREFECT_LOGGING_LEVEL'],
    flag: '--log-level',
    description: 'the lowest level of run log lines that is shown',
    accepts: `one of: ${LOG_LEVELS.join(', ')} (any case)`,
    // Prefect users write INFO; accept any case from a file too.
    schema: z.preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(LOG_LEVELS)) as unknown as z.ZodType<string>,
    default: 'info',
    fromString: asLowerCase,
  }),
  setting<string, 'color'>({
    key: 'color',
    env: ['PREFECT_COLOR'],
    flag: '--color',
    description: 'colour in output: auto (a terminal, and NO_COLOR/FORCE_COLOR decide), always, never',
    accepts: `one of: ${COLOR_MODES.join(', ')}`,
    schema: z.enum(COLOR_MODES),
    default: 'auto',
    fromString: asLowerCase,
  }),
  setting<string, 'queue.url'>({
    key: 'queue.url',
    env: ['PREFECT_QUEUE_URL'],
    flag: '--queue',
    description: 'the task-worker queue: sqlite:PATH (one machine) or redis://[user:password@]HOST:PORT/DB (rediss:// for TLS)',
    accepts: 'a queue URL: sqlite:PATH, redis://[user:password@]HOST:PORT/DB or rediss://... (TLS)',
    schema: nullable(QUEUE_URL),
    default: null,
    nullMeans: 'sqlite:<localDir>/queue.db',
    fromString: asString,
  }),
  setting<number, 'worker.limit'>({
    key: 'worker.limit',
    env: ['PREFECT_TASK_WORKER_LIMIT'],
    flag: '--limit',
    description: 'most task runs a task worker (ptr worker serve) runs at once',
    accepts: 'an integer from 1 and up',
    schema: positiveInt,
    default: 10,
    fromString: asInteger,
  }),
  setting<number, 'worker.leaseSeconds'>({
    key: 'worker.leaseSeconds',
    env: ['PREFECT_TASK_WORKER_LEASE_SECONDS'],
    flag: '--lease',
    description: "how long a claim holds a run without renewal: a dead worker's runs go back to the queue after about this long",
    accepts: 'a number of seconds above 0',
    schema: z.number().positive(),
    default: 10,
    fromString: asNumber,
  }),
  setting<number, 'worker.maxLostLeases'>({
    key: 'worker.maxLostLeases',
    env: ['PREFECT_TASK_WORKER_MAX_LOST_LEASES'],
    description: 'times a run may lose its worker (killed, hung) before it ends Crashed instead of going back to the queue',
    accepts: 'an integer from 1 and up',
    schema: positiveInt,
    default: 3,
    fromString: asInteger,
  }),
  setting<number, 'concurrency.slotLeaseSeconds'>({
    key: 'concurrency.slotLeaseSeconds',
    env: ['PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS'],
    description: 'how long a concurrency slot is held without renewal: the slots of a killed process are free again after about this long',
    accepts: 'a number of seconds from 0.001 up',
    schema: z.number().min(0.001),
    default: DEFAULT_SLOT_LEASE_SECONDS,
    fromString: asNumber,
  }),
  setting<string, 'localDir'>({
    key: 'localDir',
    env: ['PREFECT_LOCAL_DIR'],
    flag: '--local-dir',
    description: "the folder for ptr's local files (queue database, run records); relative to the current folder, or to the config file that sets it",
    accepts: 'a non-empty folder path',
    schema: z.string().trim().min(1),
    default: '.ptr',
    fromString: asString,
  }),
  setting<boolean, 'history'>({
    key: 'history',
    env: ['PREFECT_HISTORY'],
    description: 'record every flow run and task run of ptr run in <localDir>/history.db, for ptr flow-runs',
    accepts: 'true or false (also 1/0, yes/no, on/off)',
    schema: z.boolean(),
    default: true,
    fromString: asBoolean,
  }),
  setting<boolean, 'results.persistByDefault'>({
    key: 'results.persistByDefault',
    env: ['PREFECT_RESULTS_PERSIST_BY_DEFAULT'],
    description: 'keep the values of task runs and flow runs whose code sets no persistResult, next to the run history, so ptr run --resume can reuse them',
    accepts: 'true or false (also 1/0, yes/no, on/off)',
    schema: z.boolean(),
    default: DEFAULT_RESULT_SETTINGS.persistByDefault,
    fromString: asBoolean,
  }),
  setting<number, 'results.maxBytes'>({
    key: 'results.maxBytes',
    env: ['PREFECT_RESULTS_MAX_BYTES'],
    description: 'the largest value (serialized) that is kept; a bigger one is not, and its run cannot be resumed from',
    accepts: 'an integer from 1 and up',
    schema: positiveInt,
    default: DEFAULT_RESULT_SETTINGS.maxBytes,
    fromString: asInteger,
  }),
  setting<string, 'tasks.defaultCachePolicy'>({
    key: 'tasks.defaultCachePolicy',
    env: ['PREFECT_TASK_DEFAULT_CACHE_POLICY'],
    description: 'the cache policy of tasks that set no cachePolicy or cacheKeyFn (and keep their results)',
    accepts: `none, or policies joined by +: ${CACHE_POLICIES.join(', ')}`,
    schema: z.string().refine((value) => value.split('+').every((name) => (CACHE_POLICIES as readonly string[]).includes(name.trim()))),
    default: 'none',
    fromString: asString,
  }),
] as const satisfies readonly SettingSpec<any>[]

export type SettingKey = (typeof SETTINGS)[number]['key']
export type SettingValue = string | number | boolean | null

export const SETTING_KEYS: readonly SettingKey[] = SETTINGS.map((s) => s.key)

export const settingByKey = (key: string): SettingSpec<any> | undefined => SETTINGS.find((s) => s.key === key)

/** Every environment variable ptr reads, with its setting. */
export const ENV_VARS: ReadonlyMap<string, SettingSpec<any>> = new Map(SETTINGS.flatMap((s) => s.env.map((name) => [name, s] as const)))

/** The setting that holds the size of each runner kind (sequential has none). */
export function sizeSettingFor(kind: string): SettingSpec<any> | undefined {
  return SETTINGS.find((s) => s.appliesTo === kind)
}

/** The default as a string for docs: `4`, `auto`, or what "not set" means. */
export function describeDefault(spec: SettingSpec<any>): string {
  return spec.default === null ? `not set (${spec.nullMeans ?? 'no value'})` : String(spec.default)
}
