import { existsSync } from 'node:fs'
import { ExitCode, UsageError } from '../errors.ts'
import type { HistoryStore } from '../history/store.ts'
import type { RunReport } from '../render/report-json.ts'
import { REPORT_SCHEMA_VERSION } from '../render/report-json.ts'
import type { ErrorRecord, FlowRunRecord, TaskRunRecord } from '../render/run-history.ts'
import { STATE_TYPES } from '../history/writer-protocol.ts'
import { historySettingsFrom } from '../settings/history.ts'
import { resolveSettings } from '../settings/resolve.ts'
import { parseAge } from './runs-view.ts'
import { formatTable } from './table.ts'
import type { RunFlowCommandOptions } from './run-flow.ts'
import { checkReportPath, writeReport } from './report-files.ts'

interface HistoryCommandOptions {
  config?: string | undefined
  json?: boolean | undefined
  stdout?: NodeJS.WritableStream
}

/** Opens the history the settings name (`<localDir>/history.db`); it must exist already. */
async function openHistory(config: string | undefined): Promise<HistoryStore> {
  const settings = await resolveSettings({ cwd: process.cwd(), env: process.env, configPath: config })
  const { file } = historySettingsFrom(settings, process.cwd())
  if (!existsSync(file)) {
    throw new UsageError(`no run history at ${file}: ptr run records into it (unless PREFECT_HISTORY=false); run a flow first, or set localDir to where the history is`, 'PTR_NO_HISTORY')
  }
  const { HistoryStore } = await import('../history/store.ts')
  return HistoryStore.open(file)
}

const when = (iso: string | null) => (iso === null ? '-' : iso.replace('T', ' ').slice(0, 19))
const seconds = (value: number | null) => (value === null ? '-' : `${value.toFixed(value < 10 ? 2 : 1)} s`)
const stateOf = (record: { state: { type: string; name: string } }) => (record.state.name === record.state.type ? record.state.type : `${record.state.type}/${record.state.name}`)
const countsText = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, n]) => `${n} ${name}`)
    .join(', ') || '-'

/** The names of states ptr gives flow runs, besides their types (a flow's own code may name others). */
const STATE_NAMES = ['TimedOut', 'AwaitingRetry', 'Retrying', 'NotReady', 'Cached']

/** A `--state` that matched nothing must be a state ptr has, or one a recorded run was in: else it is a typo, and an error. */
function checkStateName(state: string, store: HistoryStore): void {
  const known = [...STATE_TYPES, ...STATE_NAMES, ...store.stateNames()]
  if (known.some((name) => name.toLowerCase() === state.toLowerCase())) return
  throw new UsageError(`--state '${state}' is no state: use a state type (${STATE_TYPES.join(', ')}) or a state name (${STATE_NAMES.join(', ')}, ...)`, 'PTR_BAD_OPTION')
}

export interface FlowRunsListOptions extends HistoryCommandOptions {
  flow?: string | undefined
  state?: string | undefined
  limit?: string | undefined
}

/** `ptr flow-runs list`: the newest flow runs in the history (not subflows), optionally by flow and state. */
export async function flowRunsListCommand(options: FlowRunsListOptions): Promise<number> {
  const out = options.stdout ?? process.stdout
  const limit = options.limit === undefined ? 50 : Number(options.limit)
  if (!(Number.isInteger(limit) && limit >= 1)) throw new UsageError(`--limit must be an integer from 1 and up, got '${options.limit}'`, 'PTR_BAD_OPTION')
  const store = await openHistory(options.config)
  try {
    const runs = store.list({ flowName: options.flow, stateName: options.state, limit })
    if (runs.length === 0 && options.state !== undefined) checkStateName(options.state, store)
    if (options.json) {
      const rows = runs.map(({ record, counts, taskRuns }) => {
        const { logs: _logs, stateHistory: _history, ...rest } = record
        return { ...rest, taskRuns, counts }
      })
      out.write(`${JSON.stringify(rows, null, 2)}\n`)
      return ExitCode.Completed
    }
    if (runs.length === 0) {
      out.write(`no flow runs in ${store.file}${options.flow ? ` of flow ${options.flow}` : ''}${options.state ? ` in state ${options.state}` : ''}\n`)
      return ExitCode.Completed
    }
    const rows = runs.map(({ record, counts }) => [record.id.slice(0, 8), record.flowName, record.name, stateOf(record), when(record.startTime), seconds(record.durationSeconds), countsText(counts)])
    out.write(formatTable(['ID', 'FLOW', 'NAME', 'STATE', 'STARTED', 'DURATION', 'TASK RUNS'], rows))
    return ExitCode.Completed
  } finally {
    store.close()
  }
}

export interface FlowRunsShowOptions extends HistoryCommandOptions {
  id: string
  /** `ptr --debug`: each failure's whole stack, not only its first frame in the user's code. */
  debug?: boolean | undefined
  /** `--report FILE`: the HTML report of the stored run, instead of the text view. */
  report?: string | undefined
}

/** The report (docs/report.schema.json) of a stored flow run, as `ptr run --output json` writes it. */
function reportOf(flowRuns: FlowRunRecord[], taskRuns: TaskRunRecord[], version: string): RunReport {
  const counts: Record<string, number> = {}
  for (const run of taskRuns) if (run.endTime !== null || run.state.name === 'NotReady') counts[run.state.name] = (counts[run.state.name] ?? 0) + 1
  const root = flowRuns[0] ?? null
  const start = root?.stateHistory[0] ? Date.parse(root.stateHistory[0].timestamp) : undefined
  const end = root?.endTime ? Date.parse(root.endTime) : undefined
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: 'ptr', version },
    flowRun: root,
    flowRuns,
    taskRuns,
    counts,
    wallSeconds: start !== undefined && end !== undefined ? (end - start) / 1000 : 0,
  }
}

/** `ptr flow-runs show ID`: a flow run with its subflows and task runs (states, durations, errors, logs). */
export async function flowRunsShowCommand(options: FlowRunsShowOptions): Promise<number> {
  const out = options.stdout ?? process.stdout
  const htmlReport = checkReportPath(options.report, '--report', 'html')
  const store = await openHistory(options.config)
  try {
    const id = store.resolveId(options.id)
    const found = store.get(id)!
    if (options.json || htmlReport) {
      const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string }
      const report = reportOf(found.flowRuns, found.taskRuns, version)
      if (options.json) out.write(`${JSON.stringify(report, null, 2)}\n`)
      if (htmlReport) {
        const { buildHtmlReport } = await import('../render/report-html/index.ts')
        writeReport(htmlReport, await buildHtmlReport(report, { source: 'history' }), '--report')
        ;(options.json ? process.stderr : out).write(`wrote the HTML report of flow run ${id} to ${htmlReport}\n`)
      }
      return ExitCode.Completed
    }
    const [root, ...subflows] = found.flowRuns
    const lines: string[] = []
    const results = store.flowResults(root!.id)
    const [values, summary] = results.size > 0 ? await Promise.all([import('../history/values.ts'), import('../render/summary.ts')]) : []
    const describeFlow = (run: FlowRunRecord, indent: string) => {
      lines.push(`${indent}flow run ${run.name} (${run.flowName}) ${stateOf(run)}`)
      lines.push(`${indent}  id ${run.id}, runner ${run.taskRunner}, started ${when(run.startTime)}, took ${seconds(run.durationSeconds)}`)
      if (run.parameters && typeof run.parameters === 'object' && Object.keys(run.parameters).length > 0) lines.push(`${indent}  parameters ${JSON.stringify(run.parameters)}`)
      if (run.error) lines.push(`${indent}  error ${run.error.name}: ${run.error.message}`)
      const bytes = results.get(run.id)
      if (bytes && values && summary) {
        try {
          lines.push(`${indent}  result ${summary.shortValue(values.decodeResult(bytes))}`)
        } catch {
          // Kept by a ptr whose serialization this one cannot read: said nothing of, as before.
        }
      }
    }
    describeFlow(root!, '')
    for (const subflow of subflows) describeFlow(subflow, '  ')
    if (found.taskRuns.length > 0) {
      lines.push('')
      const rows = found.taskRuns.map((t) => [t.name, stateOf(t), String(t.attempts), seconds(t.durationSeconds), t.error ? `${t.error.name}: ${t.error.message}`.split('\n')[0]!.slice(0, 120) : ''])
      lines.push(formatTable(['TASK RUN', 'STATE', 'ATTEMPTS', 'DURATION', 'ERROR'], rows).trimEnd())
    }
    lines.push(...(await failureLines(found.flowRuns, found.taskRuns, options.debug === true)))
    const notKept = found.taskRuns.filter((t) => t.resultNotStored !== undefined && t.state.type === 'Completed')
    if (notKept.length > 0) {
      lines.push('', 'values not kept (a resume of this run runs these again):')
      for (const run of notKept) lines.push(`  ${run.name}: ${run.resultNotStored}`)
    }
    const logged = [...found.flowRuns, ...found.taskRuns].filter((r) => r.logs.length > 0)
    if (logged.length > 0) {
      lines.push('', 'logs:')
      for (const run of logged) {
        for (const log of run.logs) lines.push(`  ${log.timestamp.slice(11, 23)} ${run.name} | ${log.message}`)
        if (run.logsOmitted > 0) lines.push(`  (${run.logsOmitted} more lines of ${run.name} not kept)`)
      }
    }
    out.write(`${lines.join('\n')}\n`)
    return ExitCode.Completed
  } finally {
    store.close()
  }
}

/** A stored error as an Error again (class name, message, stack, causes), for the lines ptr run's summary shows. */
function errorOf(record: ErrorRecord): Error {
  const error = new Error(record.message, record.cause ? { cause: errorOf(record.cause) } : undefined)
  error.name = record.name
  error.stack = record.stack ?? `${record.name}: ${record.message}`
  return error
}

/**
 * Each failed task run as ptr run's summary shows it (its error, where in the user's code, the
 * code around it), then the flow runs' errors that are not one of those.
 */
async function failureLines(flowRuns: readonly FlowRunRecord[], taskRuns: readonly TaskRunRecord[], debug: boolean): Promise<string[]> {
  const failed = taskRuns.filter((t) => t.error && (t.state.type === 'Failed' || t.state.type === 'Crashed'))
  const shown = new Set(failed.map((t) => `${t.error!.name}: ${t.error!.message}`))
  const flowsFailed = flowRuns.filter((f) => f.error && !shown.has(`${f.error.name}: ${f.error.message}`))
  if (failed.length === 0 && flowsFailed.length === 0) return []
  const [{ Chalk }, { attemptsText, errorLines, stateWord }] = await Promise.all([import('chalk'), import('../render/failure.ts')])
  const c = new Chalk()
  const lines = ['', 'failures:']
  for (const run of failed) {
    lines.push(`  ${run.name} ${stateWord(run.state.name)} ${attemptsText(run.attempts)}`, ...errorLines(errorOf(run.error!), c, { debug, indent: '    ' }))
  }
  for (const run of flowsFailed) lines.push(`  flow run ${run.name} ${stateWord(run.state.name)}`, ...errorLines(errorOf(run.error!), c, { debug, indent: '    ' }))
  return lines
}

export interface FlowRunsRetryOptions extends Omit<RunFlowCommandOptions, 'file' | 'flowName' | 'param' | 'params' | 'resume' | 'resumeFrom'> {
  id: string
}

/**
 * `ptr flow-runs retry ID`: runs the flow of a recorded root flow run again, from the same file,
 * with its parameters; its completed task runs are reused (they show as Cached), the rest run.
 */
export async function flowRunsRetryCommand(options: FlowRunsRetryOptions): Promise<number> {
  const store = await openHistory(options.config)
  let earlier: NonNullable<ReturnType<HistoryStore['flowRun']>>
  try {
    earlier = store.flowRun(store.resolveId(options.id))!
  } finally {
    store.close()
  }
  if (earlier.parentId !== null) {
    throw new UsageError(`flow run ${earlier.id} is a subflow run of flow run ${earlier.rootId}; retry that one: ptr flow-runs retry ${earlier.rootId}`, 'PTR_USAGE')
  }
  // As --resume: a run another ptr run is still running is not a candidate (a dead one's was marked Crashed on open).
  if (earlier.ended === null) throw new UsageError(`flow run ${earlier.id} is still running (its ptr run has not ended); retry it once it has`, 'PTR_USAGE')
  if (earlier.file === null) throw new UsageError(`flow run ${earlier.id} was recorded by an older ptr that did not keep its flow file; run the file with ptr run FILE --resume`, 'PTR_USAGE')
  if (!existsSync(earlier.file)) throw new UsageError(`flow run ${earlier.id} ran ${earlier.file}, which is gone; restore it, or run the flow's new file with ptr run FILE --resume`, 'PTR_USAGE')
  const { runFlowCommand } = await import('./run-flow.ts')
  const { id: _id, ...rest } = options
  return runFlowCommand({ ...rest, file: earlier.file, flowName: earlier.record.flowName, param: [], params: undefined, resumeFrom: earlier.id })
}

export interface FlowRunsPruneOptions extends HistoryCommandOptions {
  /** How old a finished flow run must be to go: `30s`, `15m`, `12h`, `7d`. */
  olderThan: string
}

/** `ptr flow-runs prune --older-than 7d`: deletes finished flow runs (with their subflows and task runs) that ended that long ago. */
export async function flowRunsPruneCommand(options: FlowRunsPruneOptions): Promise<number> {
  const out = options.stdout ?? process.stdout
  const age = parseAge(options.olderThan)
  const store = await openHistory(options.config)
  try {
    const pruned = store.prune(Date.now() - age)
    out.write(options.json ? `${JSON.stringify({ pruned })}\n` : `pruned ${pruned} finished flow run${pruned === 1 ? '' : 's'} older than ${options.olderThan} from ${store.file}\n`)
    return ExitCode.Completed
  } finally {
    store.close()
  }
}
