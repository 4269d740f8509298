import type { ResolvedSettings, SettingSource } from '../settings/resolve.ts'
import { formatSource, resolveSettings } from '../settings/resolve.ts'
import { settingByKey } from '../settings/schema.ts'
import type { SettingValue } from '../settings/schema.ts'
import { flowRunnerInfo } from '../settings/runner.ts'
import { ExitCode } from '../errors.ts'
import { redactUrl } from '../queue/url.ts'

export interface ConfigViewOptions {
  /** A flow file: include what its code says (the `flow` stage), as `ptr run FILE` would. */
  file?: string | undefined
  flowName?: string | undefined
  configPath?: string | undefined
  /** Setting flags as given: `{ '--runner': 'thread' }`. */
  flags: Readonly<Record<string, string | undefined>>
  showSources: boolean
  json: boolean
  cwd?: string
  env?: Readonly<Record<string, string | undefined>>
  stdout?: NodeJS.WritableStream
  stderr?: NodeJS.WritableStream
}

/** A queue URL may carry a password: never print it (the one redaction rule: `redactUrl`). */
export function redact(value: SettingValue): SettingValue {
  return typeof value === 'string' ? redactUrl(value) : value
}

/** The JSON `ptr config view --json` prints; see docs/settings.md. */
export interface ConfigViewJson {
  configFile: string | null
  settings: Record<string, { value: SettingValue; source: string; origin: SettingSource }>
  hints: string[]
}

export function toJson(resolved: ResolvedSettings): ConfigViewJson {
  return {
    configFile: resolved.configFile ?? null,
    settings: Object.fromEntries(
      Object.values(resolved.settings).map((s) => [s.key, { value: redact(s.value), source: formatSource(s.source), origin: s.source }]),
    ),
    hints: [...resolved.hints],
  }
}

export function toText(resolved: ResolvedSettings, showSources: boolean): string {
  const rows = Object.values(resolved.settings).map((s) => {
    const spec = settingByKey(s.key)
    const value = s.value === null ? `not set (${spec?.nullMeans ?? 'no value'})` : String(redact(s.value))
    return [s.key, value, formatSource(s.source)] as const
  })
  const keyWidth = Math.max(...rows.map((r) => r[0].length))
  const valueWidth = Math.max(...rows.map((r) => r[1].length))
  return rows
    .map(([key, value, source]) => (showSources ? `${key.padEnd(keyWidth)}  ${value.padEnd(valueWidth)}  ${source}` : `${key.padEnd(keyWidth)}  ${value}`))
    .join('\n')
}

/** `ptr config view`: resolves the settings as `ptr run` would and prints them. */
export async function configViewCommand(options: ConfigViewOptions): Promise<number> {
  const cwd = options.cwd ?? process.cwd()
  let flowRunner
  if (options.file !== undefined) {
    const { importFlowFile, selectFlow } = await import('./load-flow.ts')
    const { exports } = await importFlowFile(options.file, cwd)
    flowRunner = flowRunnerInfo(selectFlow(options.file, exports, options.flowName))
  }
  const resolved = await resolveSettings({ cwd, env: options.env ?? process.env, configPath: options.configPath, flags: options.flags, flowRunner })
  const stdout = options.stdout ?? process.stdout
  const stderr = options.stderr ?? process.stderr
  for (const hint of resolved.hints) stderr.write(`ptr: hint: ${hint}\n`)
  stdout.write(options.json ? `${JSON.stringify(toJson(resolved), null, 2)}\n` : `${toText(resolved, options.showSources)}\n`)
  return ExitCode.Completed
}
