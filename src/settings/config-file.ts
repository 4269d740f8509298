import { existsSync, statSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Loader } from 'cosmiconfig'
import { UsageError } from '../errors.ts'

/** The cosmiconfig module name: `.prefectrc`, `prefect.config.ts`, `package.json#prefect`, ... */
export const MODULE_NAME = 'prefect'

export interface LoadedConfigFile {
  /** Absolute path of the file the settings came from. */
  readonly path: string
  /** What the file holds (not validated yet). */
  readonly config: unknown
}

const TS_EXTENSIONS = ['.ts', '.mts', '.cts'] as const

/**
 * Loads `.ts`, `.mts` and `.cts` config files through tsx: they may import other `.ts` files,
 * nothing is written to disk, and `typescript` is not needed at run time (cosmiconfig's own TS
 * loader needs all three). `tsImport` keeps its registration scoped to this import.
 */
export const loadTypeScriptConfig: Loader = async (filepath) => {
  const { tsImport } = await import('tsx/esm/api')
  const namespace = (await tsImport(pathToFileURL(filepath).href, import.meta.url)) as Record<string, unknown>
  // `export default {...}` (ESM) and `module.exports = {...}` (CJS: `{ default: exports }`).
  let config: unknown = 'default' in namespace ? namespace.default : namespace
  // A CJS file compiled with an ES-module interop flag nests the default once more.
  if (config && typeof config === 'object' && '__esModule' in config && 'default' in config) config = (config as { default: unknown }).default
  return config ?? null
}

function searchPlaces(getDefaults: (name: string) => string[]): string[] {
  const places = getDefaults(MODULE_NAME)
  // cosmiconfig knows `.ts`; add the ESM- and CJS-scoped TypeScript extensions beside it.
  const extra = [`.${MODULE_NAME}rc`, `.config/${MODULE_NAME}rc`, `${MODULE_NAME}.config`].flatMap((stem) => [`${stem}.mts`, `${stem}.cts`])
  return [...places, ...extra]
}

/**
 * Finds the config file: the one `--config` names, else the first one cosmiconfig's search finds
 * from `cwd` upwards to the project root (the nearest folder with a package.json). Returns
 * undefined when there is none.
 */
export async function loadConfigFile(options: { cwd: string; configPath?: string | undefined }): Promise<LoadedConfigFile | undefined> {
  const { cosmiconfig, getDefaultSearchPlaces } = await import('cosmiconfig')
  const loaders = Object.fromEntries(TS_EXTENSIONS.map((ext) => [ext, loadTypeScriptConfig]))
  const explorer = cosmiconfig(MODULE_NAME, {
    searchStrategy: 'project',
    searchPlaces: searchPlaces(getDefaultSearchPlaces),
    loaders,
    cache: false,
  })
  let result: Awaited<ReturnType<typeof explorer.search>>
  let where: string
  if (options.configPath !== undefined) {
    where = path.resolve(options.cwd, options.configPath)
    if (!existsSync(where) || !statSync(where).isFile()) {
      throw new UsageError(`config file not found: ${options.configPath} (from --config; looked for ${where})`, 'PTR_CONFIG_NOT_FOUND')
    }
    result = await explorer.load(where).catch((error: unknown) => {
      throw describeConfigError(error, where)
    })
    if (result === null) return { path: where, config: {} }
  } else {
    try {
      result = await explorer.search(options.cwd)
    } catch (error) {
      throw describeConfigError(error, (error as { filepath?: string }).filepath)
    }
    if (result === null) return undefined
  }
  return { path: result.filepath, config: result.isEmpty ? {} : result.config }
}

function describeConfigError(error: unknown, filepath: string | undefined): UsageError {
  const err = error instanceof Error ? error : new Error(String(error))
  // cosmiconfig prefixes parse errors with the path: `JSON Error in /x/.prefectrc.json:`.
  const file = filepath ?? /in (\/[^\s:]+)/.exec(err.message)?.[1] ?? 'config file'
  // esbuild (through tsx): "Transform failed with 1 error:\n/abs/file.ts:2:4: ERROR: Expected ..."
  const esbuild = /[^\s]+\.[cm]?[jt]sx?:(\d+):(\d+): ERROR: (.*)/.exec(err.message)
  const firstLine = esbuild
    ? `line ${esbuild[1]}:${esbuild[2]}: ${esbuild[3]}`
    : (err.message.split('\n').find((line) => line.trim() !== '' && !line.includes(file)) ?? err.message.split('\n')[0])
  const what = err.name === 'YAMLException' || /YAML|JSON/.test(err.message) ? 'could not be parsed' : 'could not be loaded'
  return new UsageError(`config file ${file} ${what}: ${firstLine?.trim()}; fix the file or name another with --config`, 'PTR_CONFIG_INVALID', err)
}
