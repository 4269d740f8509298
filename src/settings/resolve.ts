import { UsageError } from '../errors.ts'
import { redactUrl } from '../queue/url.ts'
import { loadConfigFile } from './config-file.ts'
import type { SettingKey, SettingSpec, SettingValue } from './schema.ts'
import { ENV_VARS, SETTINGS, SETTING_KEYS, settingByKey, sizeSettingFor } from './schema.ts'
import { closest } from './suggest.ts'

/** Where a resolved value came from. */
export type SettingSource =
  | { readonly type: 'default' }
  | { readonly type: 'file'; readonly path: string; readonly key: string }
  | { readonly type: 'env'; readonly name: string }
  | { readonly type: 'flow'; readonly flow: string }
  | { readonly type: 'flag'; readonly name: string }

export interface ResolvedSetting {
  readonly key: SettingKey
  readonly value: SettingValue
  readonly source: SettingSource
}

/** The outcome of resolution: frozen, every value with its source. */
export interface ResolvedSettings {
  /** Absolute path of the config file used, if any. */
  readonly configFile: string | undefined
  readonly settings: Readonly<Record<SettingKey, ResolvedSetting>>
  /** Non-fatal notes for the user (e.g. a PREFECT_* variable that looks like a typo). */
  readonly hints: readonly string[]
}

/** The task runner a flow's own code names: its kind (`name`) and its options. */
export interface FlowRunnerInfo {
  readonly flowName: string
  readonly name: string
  readonly options?: Readonly<Record<string, unknown>> | undefined
}

export interface ResolveSettingsOptions {
  cwd: string
  env: Readonly<Record<string, string | undefined>>
  /** `--config PATH`: use this file instead of searching. */
  configPath?: string | undefined
  /** Flag values as given on the command line, by flag name: `{ '--runner': 'thread' }`. */
  flags?: Readonly<Record<string, string | undefined>>
  /** The runner the flow's code names, when a flow is known. */
  flowRunner?: FlowRunnerInfo | undefined
}

/** `default`, `file /x/.prefectrc`, `env PREFECT_TASK_RUNNER`, `flow`, `flag --runner`. */
export function formatSource(source: SettingSource): string {
  switch (source.type) {
    case 'default':
      return 'default'
    case 'file':
      return `file ${source.path}`
    case 'env':
      return `env ${source.name}`
    case 'flow':
      return 'flow'
    case 'flag':
      return `flag ${source.name}`
  }
}

/** The source as the start of an error message. */
function describeSource(source: SettingSource): string {
  switch (source.type) {
    case 'file':
      return `config file ${source.path}`
    case 'env':
      return `environment variable ${source.name}`
    case 'flag':
      return `flag ${source.name}`
    default:
      return formatSource(source)
  }
}

const show = (value: unknown): string =>
  typeof value === 'string' ? `'${value}'` : value === null ? 'null' : typeof value === 'object' ? `${JSON.stringify(value)} (${Array.isArray(value) ? 'array' : 'object'})` : `${String(value)} (${typeof value})`

/** Validates one value for `spec`; the error names the source and the accepted values. */
function validate(spec: SettingSpec<any>, value: unknown, source: SettingSource, raw?: string): SettingValue {
  const parsed = spec.schema.safeParse(value)
  if (parsed.success) return parsed.data as SettingValue
  // A queue URL may carry a password: an error never repeats it.
  const got = redactUrl(raw === undefined ? show(value) : `'${raw}'`)
  const accepts = spec.default === null && source.type === 'file' ? `${spec.accepts} (or null: ${spec.nullMeans})` : spec.accepts
  // A flag may stand for several settings (--max-workers): name the flag alone.
  const what = source.type === 'flag' ? `flag ${source.name}` : `${describeSource(source)}: ${spec.key}`
  throw new UsageError(`${what} must be ${accepts}, got ${got}`, 'PTR_INVALID_SETTING')
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value) && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)

/** Flattens `{ threadPool: { maxWorkers: 4 } }` into setting keys, rejecting keys that are none. */
function fileValues(config: unknown, file: string): Map<SettingSpec<any>, SettingValue> {
  const values = new Map<SettingSpec<any>, SettingValue>()
  if (!isPlainObject(config)) {
    throw new UsageError(`config file ${file}: expected an object of settings (e.g. runner: thread), got ${show(config)}`, 'PTR_INVALID_SETTING')
  }
  const unknown: string[] = []
  const walk = (object: Record<string, unknown>, prefix: string) => {
    for (const [name, value] of Object.entries(object)) {
      const key = prefix + name
      const spec = settingByKey(key)
      if (spec) {
        values.set(spec, validate(spec, value, { type: 'file', path: file, key }))
      } else if (isPlainObject(value) && SETTING_KEYS.some((k) => k.startsWith(`${key}.`))) {
        walk(value, `${key}.`)
      } else {
        const guess = closest(key, SETTING_KEYS)
        unknown.push(`'${key}'${guess ? ` (did you mean '${guess}'?)` : ''}`)
      }
    }
  }
  walk(config, '')
  // Every unknown key at once, so one edit fixes the file.
  if (unknown.length > 0) {
    throw new UsageError(`config file ${file}: unknown key${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}; known keys: ${SETTING_KEYS.join(', ')}`, 'PTR_UNKNOWN_SETTING')
  }
  return values
}

/** A hint for each PREFECT_* variable that is not ptr's but is one or two typos from one. */
export function envHints(env: Readonly<Record<string, string | undefined>>): string[] {
  const hints: string[] = []
  for (const name of Object.keys(env)) {
    if (!name.toUpperCase().startsWith('PREFECT_') || ENV_VARS.has(name)) continue
    // Other PREFECT_ variables (a Prefect install's PREFECT_API_URL, ...) are left alone.
    const guess = closest(name, ENV_VARS.keys())
    if (guess) hints.push(`environment variable ${name} is not a ptr setting and is ignored; did you mean ${guess}?`)
  }
  return hints
}

/**
 * Resolves every setting in stages, each overriding the last: default → config file →
 * environment → the flow's own code → CLI flags. Each value is validated where it enters, so a
 * bad one names its source; the result is frozen.
 */
export async function resolveSettings(options: ResolveSettingsOptions): Promise<ResolvedSettings> {
  const resolved = new Map<SettingSpec<any>, { value: SettingValue; source: SettingSource }>()
  const set = (spec: SettingSpec<any>, value: SettingValue, source: SettingSource) => resolved.set(spec, { value, source })

  for (const spec of SETTINGS) set(spec, spec.default as SettingValue, { type: 'default' })

  const file = await loadConfigFile({ cwd: options.cwd, configPath: options.configPath })
  if (file) {
    for (const [spec, value] of fileValues(file.config, file.path)) set(spec, value, { type: 'file', path: file.path, key: spec.key })
  }

  for (const spec of SETTINGS) {
    // The canonical name first: it wins over an alias. An empty variable counts as unset.
    const name = spec.env.find((n) => (options.env[n] ?? '').trim() !== '')
    if (name === undefined) continue
    const raw = options.env[name]!
    const source: SettingSource = { type: 'env', name }
    set(spec, validate(spec, spec.fromString(raw), source, raw), source)
  }

  const flowRunner = options.flowRunner
  if (flowRunner) {
    const source: SettingSource = { type: 'flow', flow: flowRunner.flowName }
    // The flow's runner object was validated when its code built it: take it as it is.
    set(SETTINGS[0], flowRunner.name, source)
    const size = sizeSettingFor(flowRunner.name)
    const sizeOption = size ? flowRunner.options?.[size.key.split('.').pop()!] : undefined
    if (size && typeof sizeOption === 'number') set(size, sizeOption, source)
  }

  const flags = Object.entries(options.flags ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined)
  // The runner flag first: shared size flags (--max-workers) go to the runner kind in use.
  flags.sort(([a], [b]) => (a === SETTINGS[0].flag ? -1 : b === SETTINGS[0].flag ? 1 : 0))
  for (const [flag, raw] of flags) {
    const specs = SETTINGS.filter((s) => s.flag === flag)
    if (specs.length === 0) continue
    const source: SettingSource = { type: 'flag', name: flag }
    const first = specs[0]!
    const value = validate(first, first.fromString(raw), source, raw)
    const kind = resolved.get(SETTINGS[0])!
    const spec = first.appliesTo === undefined ? first : specs.find((s) => s.appliesTo === kind.value)
    if (!spec) {
      const kinds = specs.map((s) => s.appliesTo).join(' and ')
      throw new UsageError(
        `flag ${flag} applies to the ${kinds} runner${specs.length > 1 ? 's' : ''}, but this run uses the ${String(kind.value)} runner (from ${formatSource(kind.source)}); add --runner ${specs[0]!.appliesTo} or drop ${flag}`,
        'PTR_FLAG_NOT_APPLICABLE',
      )
    }
    set(spec, value, source)
  }

  const settings = Object.fromEntries(
    SETTINGS.map((spec) => {
      const { value, source } = resolved.get(spec)!
      return [spec.key, Object.freeze({ key: spec.key, value, source: Object.freeze(source) })]
    }),
  ) as Record<SettingKey, ResolvedSetting>
  return Object.freeze({ configFile: file?.path, settings: Object.freeze(settings), hints: Object.freeze(envHints(options.env)) })
}
