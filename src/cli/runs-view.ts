import { inspect } from 'node:util'
import { ExitCode, UsageError } from '../errors.ts'
import type { QueueRunState, RunRecord } from '../queue/backend.ts'
import { decodeValue } from '../queue/codec.ts'
import { resolveQueueSettings } from '../settings/queue.ts'
import { openQueue } from '../queue/open.ts'
import { formatTable } from './table.ts'

const STATES: readonly QueueRunState[] = ['Scheduled', 'Running', 'Completed', 'Failed', 'Crashed', 'Cancelled']

export interface RunsListOptions {
  queue?: string | undefined
  config?: string | undefined
  state?: string | undefined
  task?: string | undefined
  limit?: string | undefined
  json?: boolean | undefined
  stdout?: NodeJS.WritableStream
}

async function open(flag: string | undefined, config: string | undefined) {
  const { url, source, leaseMs, maxLostLeases } = await resolveQueueSettings({ cwd: process.cwd(), env: process.env, configPath: config, flags: { '--queue': flag } })
  return openQueue(url, { source, leaseMs, maxLostLeases })
}

const iso = (ms: number | undefined) => (ms === undefined ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 23))
const duration = (r: RunRecord) => (r.startedAt !== undefined && r.endedAt !== undefined ? `${((r.endedAt - r.startedAt) / 1000).toFixed(3)} s` : '-')

function safeDecode(bytes: Uint8Array | undefined): unknown {
  if (bytes === undefined) return undefined
  try {
    return decodeValue(bytes)
  } catch {
    return '<undecodable>'
  }
}

/** A record as JSON for scripts: values decoded, no raw bytes. */
function toJson(r: RunRecord, full: boolean): Record<string, unknown> {
  const { args, result, ...rest } = r
  return full ? { ...rest, args: safeDecode(args), result: safeDecode(result) } : { ...rest, result: undefined, history: undefined }
}

/** `ptr runs list`: the newest runs on the queue, optionally by state and task. */
export async function runsListCommand(options: RunsListOptions): Promise<number> {
  const out = options.stdout ?? process.stdout
  if (options.state !== undefined && !STATES.includes(options.state as QueueRunState)) {
    throw new UsageError(`--state must be one of ${STATES.join(', ')}, got '${options.state}'`, 'PTR_BAD_OPTION')
  }
  const limit = options.limit === undefined ? 50 : Number(options.limit)
  if (!(Number.isInteger(limit) && limit >= 1)) throw new UsageError(`--limit must be an integer from 1 and up, got '${options.limit}'`, 'PTR_BAD_OPTION')
  const backend = await open(options.queue, options.config)
  try {
    const runs = await backend.list({ state: options.state as QueueRunState | undefined, task: options.task, limit })
    if (options.json) {
      out.write(`${JSON.stringify(runs.map((r) => toJson(r, false)), null, 2)}\n`)
      return ExitCode.Completed
    }
    if (runs.length === 0) {
      out.write(`no runs on ${backend.url}${options.state ? ` in state ${options.state}` : ''}${options.task ? ` of task ${options.task}` : ''}\n`)
      return ExitCode.Completed
    }
    const rows = runs.map((r) => [r.id, r.task, r.name, r.stateName === r.state ? r.state : `${r.state}/${r.stateName}`, String(r.attempts), r.worker ?? '-', iso(r.createdAt), duration(r)])
    out.write(formatTable(['ID', 'TASK', 'NAME', 'STATE', 'ATTEMPTS', 'WORKER', 'CREATED', 'DURATION'], rows))
    return ExitCode.Completed
  } finally {
    await backend.close()
  }
}

/** `ptr runs show ID`: one run's state history, attempts, worker, timings, error, logs. */
export async function runsShowCommand(options: { id: string; queue?: string | undefined; config?: string | undefined; json?: boolean | undefined; stdout?: NodeJS.WritableStream }): Promise<number> {
  const out = options.stdout ?? process.stdout
  const backend = await open(options.queue, options.config)
  try {
    const run = await backend.get(options.id)
    if (!run) throw new UsageError(`no run ${options.id} on ${backend.url}; list runs with: ptr runs list`, 'PTR_UNKNOWN_RUN')
    const logs = await backend.logs(run.id)
    if (options.json) {
      out.write(`${JSON.stringify({ ...toJson(run, true), logs }, null, 2)}\n`)
      return ExitCode.Completed
    }
    const lines = [
      `run      ${run.id}`,
      `task     ${run.task}`,
      `name     ${run.name}`,
      `state    ${run.state}${run.stateName !== run.state ? ` (${run.stateName})` : ''}`,
      `attempts ${run.attempts} (failures ${run.failures}, lost leases ${run.lostLeases}, retries allowed ${run.retries})`,
      `worker   ${run.worker ?? '-'}`,
      `created  ${iso(run.createdAt)}`,
      `started  ${iso(run.startedAt)}`,
      `ended    ${iso(run.endedAt)}${run.endedAt !== undefined ? `  (ran ${duration(run)})` : ''}`,
      `args     ${inspect(safeDecode(run.args), { depth: 4, breakLength: Infinity })}`,
    ]
    if (run.state === 'Completed') lines.push(`result   ${inspect(safeDecode(run.result), { depth: 4, breakLength: Infinity })}`)
    if (run.error) lines.push(`error    ${run.error.name}: ${run.error.message}`)
    lines.push('history')
    for (const h of run.history) lines.push(`  ${iso(h.at)}  ${h.name}${h.worker ? `  on ${h.worker}` : ''}${h.message ? `  ${h.message}` : ''}`)
    if (logs.length > 0) {
      lines.push('logs')
      for (const l of logs) lines.push(`  ${iso(l.at)}  attempt ${l.attempt}  ${l.level.padEnd(7)} ${l.message}`)
    }
    out.write(`${lines.join('\n')}\n`)
    return ExitCode.Completed
  } finally {
    await backend.close()
  }
}

export interface RunsPruneOptions {
  queue?: string | undefined
  config?: string | undefined
  /** How old a finished run must be to go: `30s`, `15m`, `12h`, `7d`. */
  olderThan: string
  json?: boolean | undefined
  stdout?: NodeJS.WritableStream
}

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** `7d` → milliseconds; a usage error naming the flag otherwise. */
export function parseAge(text: string, flag = '--older-than'): number {
  const match = /^(\d+(?:\.\d+)?)\s*([smhd])$/.exec(text.trim())
  if (!match) throw new UsageError(`${flag} must be a duration like 30s, 15m, 12h or 7d, got '${text}'`, 'PTR_BAD_OPTION')
  return Number(match[1]) * UNIT_MS[match[2]!]!
}

/** `ptr runs prune --older-than 7d`: deletes finished runs (and their logs) that ended that long ago. */
export async function runsPruneCommand(options: RunsPruneOptions): Promise<number> {
  const out = options.stdout ?? process.stdout
  const age = parseAge(options.olderThan)
  const backend = await open(options.queue, options.config)
  try {
    const pruned = await backend.prune(Date.now() - age)
    out.write(options.json ? `${JSON.stringify({ pruned })}\n` : `pruned ${pruned} finished run${pruned === 1 ? '' : 's'} older than ${options.olderThan} from ${backend.url}\n`)
    return ExitCode.Completed
  } finally {
    await backend.close()
  }
}
