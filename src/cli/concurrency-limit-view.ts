import { ExitCode, UsageError } from '../errors.ts'
import { openLimitStore } from '../limits/open.ts'
import type { LimitInfo, LimitStore } from '../limits/store.ts'
import { resolveQueueSettings } from '../settings/queue.ts'
import { redactUrl } from '../queue/url.ts'
import { formatTable } from './table.ts'

interface Common {
  queue?: string | undefined
  config?: string | undefined
  json?: boolean | undefined
  stdout?: NodeJS.WritableStream
}

/** Runs `fn` on the limits of the queue the settings name. `create`: a missing queue file is made; otherwise none is, and `fn` sees no store. */
async function withStore<T>(options: Common, fn: (store: LimitStore) => Promise<T>, missing?: (url: string) => T): Promise<T> {
  const { url, source } = await resolveQueueSettings({ cwd: process.cwd(), env: process.env, configPath: options.config, flags: { '--queue': options.queue } })
  const store = await openLimitStore(url, { source, mustExist: missing !== undefined })
  if (!store) return missing!(redactUrl(url))
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

function checkName(tag: string): void {
  if (tag.trim() === '' || tag !== tag.trim()) throw new UsageError(`limit name '${tag}' is empty or has spaces around it; write e.g. ptr concurrency-limit create db 5`, 'PTR_BAD_LIMIT_NAME')
}

const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 23)
const toJson = (info: LimitInfo) => ({
  ...info,
  createdAt: new Date(info.createdAt).toISOString(),
  holders: info.holders.map((h) => ({ ...h, acquiredAt: new Date(h.acquiredAt).toISOString(), leaseUntil: new Date(h.leaseUntil).toISOString() })),
})

/** `ptr concurrency-limit create TAG N [--slot-decay-per-second R]` */
export async function createLimitCommand(options: Common & { tag: string; limit: string; slotDecayPerSecond?: string | undefined }): Promise<number> {
  const out = options.stdout ?? process.stdout
  checkName(options.tag)
  const limit = Number(options.limit)
  if (!/^\s*\d+\s*$/.test(options.limit) || !(Number.isInteger(limit) && limit >= 1)) {
    throw new UsageError(`the limit of '${options.tag}' must be an integer from 1 and up, got '${options.limit}'; write ptr concurrency-limit create ${options.tag} 5`, 'PTR_BAD_OPTION')
  }
  const decay = options.slotDecayPerSecond === undefined ? 0 : Number(options.slotDecayPerSecond)
  if (!(Number.isFinite(decay) && decay > 0) && options.slotDecayPerSecond !== undefined) {
    throw new UsageError(`--slot-decay-per-second must be a number above 0, got '${options.slotDecayPerSecond}'`, 'PTR_BAD_OPTION')
  }
  return withStore(options, async (store) => {
    const what = await store.create(options.tag, limit, decay)
    if (options.json) out.write(`${JSON.stringify({ name: options.tag, limit, slotDecayPerSecond: decay, [what]: true })}\n`)
    else out.write(`${what} concurrency limit '${options.tag}': ${limit} slot${limit === 1 ? '' : 's'}${decay > 0 ? `, ${decay} freed per second` : ''} (in ${store.url})\n`)
    return ExitCode.Completed
  })
}

/** `ptr concurrency-limit ls [--json]` */
export async function listLimitsCommand(options: Common): Promise<number> {
  const out = options.stdout ?? process.stdout
  const none = (url: string) => {
    out.write(options.json ? '[]\n' : `no concurrency limits in ${url}; create one with: ptr concurrency-limit create TAG N\n`)
    return ExitCode.Completed
  }
  return withStore(options, async (store) => {
    const limits = await store.list()
    if (limits.length === 0) return none(store.url)
    if (options.json) {
      out.write(`${JSON.stringify(limits.map(toJson), null, 2)}\n`)
      return ExitCode.Completed
    }
    out.write(
      formatTable(
        ['NAME', 'LIMIT', 'ACTIVE', 'WAITING', 'DECAY/S', 'CREATED'],
        limits.map((l) => [l.name, String(l.limit), String(l.active), String(l.waiting), l.slotDecayPerSecond > 0 ? String(l.slotDecayPerSecond) : '-', iso(l.createdAt)]),
      ),
    )
    return ExitCode.Completed
  }, none)
}

const noSuchLimit = (tag: string, url: string) =>
  new UsageError(`no concurrency limit named '${tag}' in ${url}; see them with ptr concurrency-limit ls, or create it: ptr concurrency-limit create ${tag} 5`, 'PTR_NO_SUCH_LIMIT')
const noQueueFile = (tag: string) => (url: string): never => {
  throw noSuchLimit(tag, url)
}

async function existing(store: LimitStore, tag: string): Promise<LimitInfo> {
  const info = await store.get(tag)
  if (!info) throw noSuchLimit(tag, store.url)
  return info
}

/** `ptr concurrency-limit inspect TAG [--json]` */
export async function inspectLimitCommand(options: Common & { tag: string }): Promise<number> {
  const out = options.stdout ?? process.stdout
  return withStore(options, async (store) => {
    const info = await existing(store, options.tag)
    if (options.json) {
      out.write(`${JSON.stringify(toJson(info), null, 2)}\n`)
      return ExitCode.Completed
    }
    out.write(`${info.name}: ${info.active} of ${info.limit} slot${info.limit === 1 ? '' : 's'} in use, ${info.waiting} waiting`)
    out.write(info.slotDecayPerSecond > 0 ? `, ${info.slotDecayPerSecond} freed per second\n` : '\n')
    if (info.holders.length > 0) {
      const now = Date.now()
      out.write(
        formatTable(
          ['HOLDER', 'SLOTS', 'PROCESS', 'SINCE', 'LEASE LEFT'],
          info.holders.map((h) => [h.holder, String(h.occupy), h.owner, iso(h.acquiredAt), `${Math.max(0, (h.leaseUntil - now) / 1000).toFixed(1)} s`]),
        ),
      )
    }
    return ExitCode.Completed
  }, noQueueFile(options.tag))
}

/** `ptr concurrency-limit reset TAG` */
export async function resetLimitCommand(options: Common & { tag: string }): Promise<number> {
  const out = options.stdout ?? process.stdout
  return withStore(options, async (store) => {
    const info = await existing(store, options.tag)
    await store.reset(options.tag)
    out.write(`reset concurrency limit '${options.tag}': freed ${info.active} slot${info.active === 1 ? '' : 's'}\n`)
    return ExitCode.Completed
  }, noQueueFile(options.tag))
}

/** `ptr concurrency-limit delete TAG` */
export async function deleteLimitCommand(options: Common & { tag: string }): Promise<number> {
  const out = options.stdout ?? process.stdout
  return withStore(options, async (store) => {
    if (!(await store.delete(options.tag))) throw noSuchLimit(options.tag, store.url)
    out.write(`deleted concurrency limit '${options.tag}'\n`)
    return ExitCode.Completed
  }, noQueueFile(options.tag))
}
