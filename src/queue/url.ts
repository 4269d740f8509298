import path from 'node:path'
import { UsageError } from '../errors.ts'

/** The URL schemes `--queue` accepts. */
export const QUEUE_SCHEMES = ['sqlite:', 'redis:', 'rediss:'] as const

/** Where ptr keeps its local files (the default SQLite queue), relative to the working directory. */
export const LOCAL_FOLDER = '.ptr'

/**
 * The environment-only fallback for library use without the CLI (`t.delay()` in a plain script,
 * `new TaskWorker()` without a queue): `PREFECT_QUEUE_URL`, else `sqlite:<PREFECT_LOCAL_DIR or
 * .ptr>/queue.db`. It reads no config file. The CLI resolves the queue through the settings
 * module instead (src/settings/queue.ts), which also reads `.prefectrc`.
 */
export function resolveQueueUrl(flagValue?: string, env: NodeJS.ProcessEnv = process.env): { url: string; source: string } {
  if (flagValue !== undefined && flagValue !== '') return { url: flagValue, source: '--queue' }
  const fromEnv = env.PREFECT_QUEUE_URL?.trim()
  if (fromEnv) return { url: fromEnv, source: 'PREFECT_QUEUE_URL' }
  return { url: defaultQueueUrl(env.PREFECT_LOCAL_DIR?.trim() || LOCAL_FOLDER), source: 'default' }
}

/** `sqlite:<localDir>/queue.db`: the queue when none is named. */
export const defaultQueueUrl = (localDir: string): string => `sqlite:${path.join(localDir, 'queue.db')}`

/** The URL with any password replaced by `***`: the only form of a queue URL ever printed. */
export function redactUrl(url: string): string {
  // Anywhere in the text, so a URL quoted inside a message is covered too.
  return url
    .replace(/([a-z][a-z0-9+.-]*:\/\/)([^/@\s'"]*)@/gi, (_whole, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(':')
      return colon < 0 ? `${scheme}***@` : `${scheme}${userinfo.slice(0, colon)}:***@`
    })
    // ioredis also takes the password as a query parameter: redis://host:6379/0?password=...
    .replace(/([?&](?:password|pass|pwd)=)[^&#\s'"]*/gi, '$1***')
}

export type ParsedQueueUrl = { kind: 'sqlite'; path: string } | { kind: 'redis'; url: string; db: number }

const REDIS_FORM = 'redis://[user:password@]host:port/db'

/** Checks what ioredis would otherwise take silently or throw on as a bare TypeError: the port and the database number. */
function parseRedisUrl(url: string, source: string): ParsedQueueUrl {
  const bad = (what: string, fix: string) =>
    new UsageError(`queue URL '${redactUrl(url)}' (from ${source}) ${what}; write ${REDIS_FORM}${fix}`, 'PTR_BAD_QUEUE_URL')
  const match = /^rediss?:\/\/([^/?#]*)(\/[^?#]*)?(\?[^#]*)?$/i.exec(url)
  if (!match) throw bad('is not a Redis URL', ', e.g. redis://localhost:6379/0')
  const authority = match[1]!
  const hostPort = authority.slice(authority.lastIndexOf('@') + 1)
  const port = /^(?:\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(hostPort)?.[1]
  if (port !== undefined && port !== '' && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    throw bad(`has port '${port}'`, ' with port a number from 1 to 65535 (Redis listens on 6379 by default)')
  }
  const db = (match[2] ?? '').slice(1)
  if (db !== '' && !/^\d{1,9}$/.test(db)) throw bad(`names database '${db}'`, ' with db a number (0 unless the Redis server is set up otherwise)')
  return { kind: 'redis', url, db: db === '' ? 0 : Number(db) }
}

/** Parses a queue URL; an unknown scheme is a usage error naming the URL (redacted) and its source. */
export function parseQueueUrl(url: string, source = '--queue', cwd = process.cwd()): ParsedQueueUrl {
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase()
  if (scheme === 'sqlite:') {
    let file = url.slice('sqlite:'.length)
    if (file.startsWith('//')) file = file.slice(2)
    if (file === '') throw new UsageError(`queue URL '${redactUrl(url)}' (from ${source}) names no file; write sqlite:PATH, e.g. sqlite:.ptr/queue.db`, 'PTR_BAD_QUEUE_URL')
    return { kind: 'sqlite', path: file === ':memory:' ? file : path.resolve(cwd, file) }
  }
  if (scheme === 'redis:' || scheme === 'rediss:') return parseRedisUrl(url, source)
  throw new UsageError(
    `unknown queue URL '${redactUrl(url)}' (from ${source}); use sqlite:PATH or redis://[user:password@]host:port/db (schemes: ${QUEUE_SCHEMES.join(', ')})`,
    'PTR_BAD_QUEUE_URL',
  )
}
