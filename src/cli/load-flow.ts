import { existsSync, statSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { UsageError, isPtrError } from '../errors.ts'
import type { AnyFlow } from '../engine/flow.ts'
import { isFlow } from '../engine/flow.ts'
import { registerTypeScript } from '../runners/bundles.ts'
import { bundleFlowFile } from './bundle-flow.ts'
import type { FlowBundle } from './bundle-flow.ts'

export interface ImportedFlowFile {
  readonly path: string
  readonly exports: Record<string, unknown>
  /** The bundle the module came from (with `bundle: true`, when it could be bundled); the caller disposes of it. */
  readonly bundle?: FlowBundle | undefined
}

/**
 * Imports a flow file and returns its module namespace. With `bundle`, from a bundle of the file
 * and the user's files it imports (see bundle-flow.ts), which pool workers then import too;
 * otherwise, or when the file cannot be bundled, the file itself through tsx.
 */
export async function importFlowFile(file: string, cwd = process.cwd(), options: { bundle?: boolean } = {}): Promise<ImportedFlowFile> {
  const absolute = path.resolve(cwd, file)
  if (!existsSync(absolute)) {
    throw new UsageError(`flow file not found: ${file} (looked in ${path.dirname(absolute)}); check the path, it is relative to ${cwd}`, 'PTR_FILE_NOT_FOUND')
  }
  if (!statSync(absolute).isFile()) {
    throw new UsageError(`${file} is a directory, not a flow file; give the .ts file that exports the flow`, 'PTR_FILE_NOT_FOUND')
  }
  const bundle = options.bundle ? await bundleFlowFile(absolute) : undefined
  let namespace: Record<string, unknown>
  try {
    if (!bundle || bundle.typescript) await registerTypeScript()
    namespace = (await import(bundle ? bundle.url : pathToFileURL(absolute).href)) as Record<string, unknown>
  } catch (error) {
    bundle?.dispose()
    throw describeLoadError(error, file, absolute)
  }
  return { path: absolute, exports: unwrapCommonJs(namespace), bundle }
}

/** A CommonJS-scoped .ts file comes back as `{ default: module.exports }`: look inside it too. */
function unwrapCommonJs(namespace: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(namespace)
  const inner = namespace.default
  if (keys.length === 1 && keys[0] === 'default' && inner && typeof inner === 'object' && !isFlow(inner)) {
    return { ...(inner as Record<string, unknown>) }
  }
  return namespace
}

function describeLoadError(error: unknown, file: string, absolute: string): Error {
  if (isPtrError(error)) return new UsageError(`${file}: ${error.message}`, error.code, error)
  const err = error instanceof Error ? error : new Error(String(error))
  if (err.name === 'TransformError' || err.name === 'SyntaxError') {
    // esbuild: "Transform failed with 1 error:\n/abs/file.ts:2:4: ERROR: Expected ..."
    const match = /([^\s]+\.[cm]?[jt]sx?):(\d+):(\d+): ERROR: (.*)/.exec(err.message)
    if (match) {
      const where = path.relative(process.cwd(), match[1]!) || match[1]!
      return new UsageError(`syntax error in ${where}:${match[2]}:${match[3]}: ${match[4]}; fix the file and run again`, 'PTR_SYNTAX_ERROR', err)
    }
    const at = stackLocation(err, absolute)
    return new UsageError(`syntax error in ${file}${at}: ${err.message.split('\n')[0]}; fix the file and run again`, 'PTR_SYNTAX_ERROR', err)
  }
  if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' || (err as { code?: string }).code === 'MODULE_NOT_FOUND') {
    return new UsageError(`${file} could not be loaded: ${err.message.split('\n')[0]}; install the missing package or fix the import`, 'PTR_IMPORT_FAILED', err)
  }
  const at = stackLocation(err, absolute)
  return new UsageError(`${file} threw while loading${at}: ${err.message.split('\n')[0]}; importing a flow file must only define flows and tasks`, 'PTR_IMPORT_FAILED', err)
}

function stackLocation(error: Error, absolute: string): string {
  const url = pathToFileURL(absolute).href
  for (const line of (error.stack ?? '').split('\n')) {
    const index = line.indexOf(url) >= 0 ? line.indexOf(url) + url.length : line.indexOf(absolute) >= 0 ? line.indexOf(absolute) + absolute.length : -1
    if (index < 0) continue
    const position = /^:(\d+)(?::(\d+))?/.exec(line.slice(index))
    if (position) return ` (line ${position[1]})`
  }
  return ''
}

export interface FoundFlow {
  readonly exportName: string
  readonly flow: AnyFlow
}

/** The flows a module exports, default first. */
export function findFlows(exports: Record<string, unknown>): FoundFlow[] {
  const found: FoundFlow[] = []
  const seen = new Set<AnyFlow>()
  const entries = Object.entries(exports).sort(([a], [b]) => (a === 'default' ? -1 : b === 'default' ? 1 : 0))
  for (const [exportName, value] of entries) {
    if (isFlow(value) && !seen.has(value)) {
      seen.add(value)
      found.push({ exportName, flow: value })
    }
  }
  return found
}

/** Picks the flow to run: the one named (by export or flow name), else the default export, else the only one. */
export function selectFlow(file: string, exports: Record<string, unknown>, name: string | undefined): AnyFlow {
  const flows = findFlows(exports)
  const listing = () => flows.map((f) => (f.exportName === f.flow.name ? f.flow.name : `${f.flow.name} (export ${f.exportName})`)).join(', ')
  if (flows.length === 0) {
    throw new UsageError(`${file} exports no flow; define one with flow() and export it: export default flow({ name: 'main' }, async () => { ... })`, 'PTR_NO_FLOW')
  }
  if (name !== undefined) {
    const match = flows.find((f) => f.exportName === name) ?? flows.find((f) => f.flow.name === name)
    if (!match) throw new UsageError(`${file} has no flow named '${name}'; its flows: ${listing()}`, 'PTR_UNKNOWN_FLOW')
    return match.flow
  }
  const byDefault = flows.find((f) => f.exportName === 'default')
  if (byDefault) return byDefault.flow
  if (flows.length === 1) return flows[0]!.flow
  throw new UsageError(`${file} exports several flows and no default; name one: ptr run ${file} <flow>, where <flow> is one of: ${listing()}`, 'PTR_AMBIGUOUS_FLOW')
}
