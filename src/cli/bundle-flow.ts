import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { ModuleBundle } from '../runners/bundles.ts'
import { isPtrOwnFile } from '../engine/stack.ts'
import { startupMark } from '../runners/startup-trace.ts'

/**
 * One ES module made from the user's flow file and every file of theirs it imports, once per
 * `ptr run` (never cached: a changed file is in the next run's bundle). The main process and every
 * pool worker import it as plain JavaScript instead of loading each file through tsx. Packages
 * (node_modules) and ptr itself stay outside, imported by absolute URL as Node resolves them
 * from the user's file. An inline source map keeps stacks and task keys on the user's `.ts` lines.
 */
export interface FlowBundle extends ModuleBundle {
  /** Deletes the bundle's folder. */
  dispose(): void
}

type Esbuild = typeof import('esbuild')

/** Why a flow is not bundled: it uses what a bundle cannot keep (ptr then loads it through tsx). */
class NotBundleable extends Error {}

// Read this way, each user file behaves in the bundle as in its own module; anything else is left to tsx.
const CJS_ONLY = /\b(?:__dirname|__filename|require\s*[(.]|module\.exports|exports\.)/
const IMPORT_META = /\bimport\.meta\b(?!\s*\.\s*(?:url|filename|dirname)\b)/
const COMPUTED_IMPORT = /\bimport\s*\(\s*(?!['"][^'"`]*['"]\s*\))/
const SOURCE = /\.([cm]?)([jt])sx?$/
const TYPESCRIPT = /\.[cm]?tsx?$/
/** What `import.meta` becomes in the bundle: a variable of each module's own (esbuild renames it per module). */
const META = '__ptrMeta'
/**
 * A bundle's folder: `ptr-run-<pid>@<host>-XXXXXX` in the temp folder, so one a killed run left is
 * known by its dead pid (on this host: a temp folder may be shared with other machines' containers).
 */
const HOST = os.hostname().replace(/[^\w.-]/g, '_')
const FOLDER = new RegExp(`^ptr-run-(\\d+)@${HOST.replace(/\./g, '\\.')}-`)

let esbuild: Esbuild | undefined
function loadEsbuild(): Esbuild {
  // esbuild is CommonJS: require() loads it in about a fifth of the time an ESM import takes.
  return (esbuild ??= createRequire(import.meta.url)('esbuild') as Esbuild)
}

/** Bundles started ahead of bundleFlowFile(), by absolute path. */
const early = new Map<string, Promise<FlowBundle | undefined>>()

/** Starts bundling `file` (absolute) now; bundleFlowFile() takes the result. */
export function startBundling(file: string): void {
  if (!early.has(file)) early.set(file, build(file))
}

/**
 * Bundles `file` (absolute) for this run, or returns undefined when it cannot be bundled
 * faithfully (CommonJS globals, computed imports, a syntax error...): the caller then imports
 * the file through tsx, which reports any error in the user's terms.
 */
export function bundleFlowFile(file: string): Promise<FlowBundle | undefined> {
  const started = early.get(file)
  if (started) {
    early.delete(file)
    return started
  }
  return build(file)
}

async function build(file: string): Promise<FlowBundle | undefined> {
  let build: Esbuild
  try {
    build = loadEsbuild()
  } catch {
    return undefined
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `ptr-run-${process.pid}@${HOST}-`))
  const outfile = path.join(dir, `${path.basename(file).replace(SOURCE, '')}.mjs`)
  const modules: string[] = []
  let typescript = false
  try {
    await build.build({
      entryPoints: [file],
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      // As Node resolves: no "module" condition or field.
      conditions: [],
      mainFields: ['main'],
      // Every top-level statement runs, as it would in the file's own module.
      treeShaking: false,
      sourcemap: 'inline',
      define: { 'import.meta': META },
      sourcesContent: false,
      logLevel: 'silent',
      write: true,
      plugins: [
        {
          name: 'ptr-flow-bundle',
          setup(b) {
            b.onResolve({ filter: /.*/ }, async (args) => {
              if (args.kind === 'entry-point' || args.pluginData === 'ptr') return undefined
              // esbuild resolves paths, not file URLs.
              const specifier = args.path.startsWith('file:') ? fileURLToPath(args.path) : args.path
              const resolved = await b.resolve(specifier, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: 'ptr' })
              if (resolved.errors.length > 0) throw new NotBundleable(resolved.errors[0]!.text)
              if (resolved.external || !path.isAbsolute(resolved.path)) return { path: args.path, external: true }
              // Packages and ptr itself stay one shared copy, loaded by Node.
              if (resolved.path.includes(`${path.sep}node_modules${path.sep}`) || isPtrOwnFile(resolved.path)) {
                if (args.kind !== 'import-statement' && args.kind !== 'dynamic-import') throw new NotBundleable(`${args.kind} of ${args.path}`)
                if (TYPESCRIPT.test(resolved.path)) typescript = true
                return { path: pathToFileURL(resolved.path).href, external: true }
              }
              return { path: resolved.path }
            })
            b.onLoad({ filter: SOURCE }, async (args) => {
              const source = readFileSync(args.path, 'utf8')
              const [, , kind] = SOURCE.exec(args.path)!
              const loader = kind === 't' ? (args.path.endsWith('x') ? 'tsx' : 'ts') : args.path.endsWith('x') ? 'jsx' : 'js'
              const unbundleable = (text: string) => CJS_ONLY.exec(text) ?? IMPORT_META.exec(text) ?? COMPUTED_IMPORT.exec(text)
              // The text first (most files say none of it); a match is looked for again in the
              // code without its comments, where a word that is only written about does not count.
              let found = unbundleable(source)
              if (found) found = unbundleable((await build.transform(source, { loader, sourcefile: args.path, logLevel: 'silent' })).code)
              if (found) throw new NotBundleable(`${args.path} uses ${found[0]}`)
              const url = pathToFileURL(args.path).href
              modules.push(url)
              const meta = JSON.stringify({ url, filename: args.path, dirname: path.dirname(args.path) })
              // esbuild puts the module's own variable where `import.meta` is (see `define`), never in a
              // string; it is declared on the first line (after a #! line), so other lines keep their columns.
              const shebang = source.startsWith('#!') ? source.indexOf('\n') + 1 || source.length : 0
              const contents = source.includes('import.meta') ? `${source.slice(0, shebang)}var ${META} = ${meta};${source.slice(shebang)}` : source
              return { contents, loader, resolveDir: path.dirname(args.path) }
            })
          },
        },
      ],
    })
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    const why = error instanceof NotBundleable ? error.message : ((error as Error)?.message ?? String(error)).split('\n')[0]
    startupMark(`bundle: not bundled (${why}); loading through tsx`)
    return undefined
  } finally {
    // esbuild's service is a child process: it must not outlive the bundling (nor show as a worker).
    void build.stop()
  }
  // However the process ends (a flow that calls process.exit, a second Ctrl-C), the folder goes.
  const dispose = (): void => {
    process.removeListener('exit', dispose)
    rmSync(dir, { recursive: true, force: true })
    removeFoldersOfDeadRuns()
  }
  process.once('exit', dispose)
  return { url: pathToFileURL(outfile).href, modules, typescript, dispose }
}

/** Deletes bundle folders whose `ptr run` is gone (killed with SIGKILL, or the machine stopped). */
function removeFoldersOfDeadRuns(): void {
  try {
    for (const name of readdirSync(os.tmpdir())) {
      const pid = Number(FOLDER.exec(name)?.[1])
      if (!pid || pid === process.pid || isAlive(pid)) continue
      rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true })
    }
  } catch {
    // Best effort: another run may be removing the same folder.
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH'
  }
}
