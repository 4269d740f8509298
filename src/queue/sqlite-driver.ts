import { createRequire } from 'node:module'
import path from 'node:path'
import Database from 'better-sqlite3'
import { UsageError } from '../errors.ts'

/**
 * Every SQLite file ptr opens (the queue, the limits, the run history and its writer) is opened
 * here, so that a driver that cannot load says so in one line, whichever part needed it.
 * better-sqlite3 is a native module: its install script builds it (or fetches a prebuilt one),
 * and a project installed with `npm install --ignore-scripts`, with npm's `allowScripts` not
 * naming it, or moved to another Node since, has none it can load: the `bindings` package's error
 * then lists a dozen paths it tried, and says nothing of what to do.
 */
export function openDatabase(file: string, options?: Database.Options): Database.Database {
  try {
    return new Database(file, options)
  } catch (error) {
    throw driverError(error) ?? error
  }
}

/** The one-line error for a driver that cannot load, or undefined for any other failure. */
function driverError(error: unknown): UsageError | undefined {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  const text = typeof message === 'string' ? message : ''
  const cannotLoad = text.includes('Could not locate the bindings file') || text.includes('NODE_MODULE_VERSION') || code === 'ERR_DLOPEN_FAILED'
  if (!cannotLoad) return undefined
  let where = 'better-sqlite3'
  try {
    where = path.dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'))
  } catch {
    // Named by the package's name alone.
  }
  return new UsageError(
    `ptr's SQLite driver (${where}) has no build it can load on Node ${process.version} (its install script did not run, or ran for another Node): ` +
      'run npm rebuild better-sqlite3 in your project (where npm asks to approve install scripts: npm install-scripts approve better-sqlite3 first)',
    'PTR_SQLITE_DRIVER',
    error,
  )
}
