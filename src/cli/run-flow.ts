import path from 'node:path'
import { ExitCode, UsageError } from '../errors.ts'
import { captureConsole } from '../engine/context.ts'
import type { LogLevel } from '../engine/events.ts'
import { runEvents } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { LiveRenderer } from '../render/live.ts'
import { PlainRenderer } from '../render/plain.ts'
import { RunRecorder } from '../render/recorder.ts'
import type { Renderer } from '../render/renderer.ts'
import { buildRunReport } from '../render/report-json.ts'
import { buildJUnitXml } from '../render/report-junit.ts'
import { RunHistory } from '../render/run-history.ts'
import { chooseColor, chooseRenderer } from '../render/select.ts'
import { importFlowFile, selectFlow } from './load-flow.ts'
import { describeParameters, parseFlowParameters } from './params.ts'
import { setDefaultQueue } from '../queue/open.ts'
import { closeDefaultLimits, setSlotLease } from '../limits/open.ts'
import { queueSettingsFrom } from '../settings/queue.ts'
import { historySettingsFrom } from '../settings/history.ts'
import type { HistoryRecorder } from '../history/recorder.ts'
import type { HistoryStore } from '../history/store.ts'
import type { ResolvedHistorySettings } from '../settings/history.ts'
import { runnerSettingsForRun } from './run-settings.ts'
import { checkReportPath, writeReport } from './report-files.ts'
import { startupMark } from '../runners/startup-trace.ts'
import { forgetInheritedBundle, useModuleBundle } from '../runners/bundles.ts'
import type { FlowBundle } from './bundle-flow.ts'
import { loadBundleInEarlyWorkers, stopEarlyWorkers } from './early-start.ts'

export interface RunFlowCommandOptions {
  file: string
  flowName: string | undefined
  runner: string | undefined
  /** `--config PATH`, `--max-workers N`, `--max-concurrency N`: see src/cli/run-settings.ts. */
  config?: string | undefined
  maxWorkers?: string | undefined
  maxConcurrency?: string | undefined
  /** `--queue URL`: the queue for --runner prefect and t.delay(). */
  queue?: string | undefined
  param: readonly string[]
  params: string | undefined
  /** `--output MODE`. */
  output?: string | undefined
  /** `--output-file FILE`: where `--output json` writes the report (else stdout). */
  outputFile?: string | undefined
  junit?: string | undefined
  /** `--report FILE`: a self-contained HTML report of the run (src/render/report-html/). */
  report?: string | undefined
  quiet?: boolean
  logLevel?: string | undefined
  color?: string | undefined
  /** `--debug`: whole stacks in the summary. */
  debug?: boolean
  /** `--resume`: reuse the completed task runs of this flow's latest flow run that did not complete. */
  resume?: boolean
  /** `ptr flow-runs retry ID`: reuse the completed task runs of this root flow run (and take its parameters). */
  resumeFrom?: string | undefined
}

const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: ExitCode.Sigint, SIGTERM: ExitCode.Sigterm }

/** `--output json --output-file report.json`; the file must be a .json path (or `-`), so a flow file can never be overwritten. */
function parseOutput(mode: string | undefined, file: string | undefined): { mode: string | undefined; file: string | undefined } {
  if (file !== undefined && mode !== 'json') {
    throw new UsageError(`--output-file ${file} needs --output json (it is where the JSON report goes)`, 'PTR_BAD_OUTPUT')
  }
  checkReportPath(file, '--output-file', 'json')
  return { mode, file: file === '-' ? undefined : file }
}

/** `ptr run FILE --help`: what the flow takes. */
export async function flowParametersHelp(file: string, flowName: string | undefined): Promise<string> {
  const { exports } = await importFlowFile(file)
  return describeParameters(selectFlow(file, exports, flowName))
}

/**
 * The run history for this run, or undefined when it is off. A history that cannot be opened or
 * written is a warning, never a reason to fail the flow run.
 */
async function startHistory(
  settings: ResolvedHistorySettings,
  flowFile: string,
): Promise<{ recorder: HistoryRecorder; store: HistoryStore; close: () => void } | undefined> {
  const warn = (error: Error) => process.stderr.write(`ptr: the run history is off for this run: ${error.message}\n`)
  try {
    const [{ HistoryStore }, { HistoryRecorder }] = await historyModules()
    const store = HistoryStore.open(settings.file)
    let recorder: HistoryRecorder
    try {
      recorder = new HistoryRecorder(store, { results: settings.results, file: flowFile })
    } catch (error) {
      store.close()
      throw error
    }
    recorder.onError = warn
    return {
      recorder,
      store,
      close: () => {
        recorder.close()
        store.close()
      },
    }
  } catch (error) {
    warn(error as Error)
    return undefined
  }
}

/**
 * Points the recorder at the flow run to resume (the latest of `flowName` that did not complete,
 * or `id`) and returns that run's parameters. Says on stderr what it resumes.
 */
function resumeFrom(stored: { recorder: HistoryRecorder; store: HistoryStore }, flowName: string, id: string | undefined): { parameters: Record<string, unknown>; notice: string } {
  const earlier = id === undefined ? stored.store.latestUnfinished(flowName) : stored.store.flowRun(id)
  if (!earlier) {
    throw new UsageError(
      `no flow run of '${flowName}' to resume in ${stored.store.file}: every recorded one completed or is still running (or none was recorded); run it without --resume, or see ptr flow-runs list --flow ${flowName}`,
      'PTR_NOTHING_TO_RESUME',
    )
  }
  const count = stored.recorder.resumeFrom(earlier.id)
  return {
    parameters: (earlier.record.parameters ?? {}) as Record<string, unknown>,
    notice: `ptr: resuming flow run ${earlier.id} (${earlier.record.state.name}): ${count} completed task run${count === 1 ? '' : 's'} to reuse\n`,
  }
}

/** The run history's modules, imported once (see runFlowCommand). */
let historyImport: Promise<[typeof import('../history/store.ts'), typeof import('../history/recorder.ts')]> | undefined
const historyModules = () => (historyImport ??= Promise.all([import('../history/store.ts'), import('../history/recorder.ts')]))

/** `ptr run`: loads the file, runs the flow with a renderer attached, returns the exit code. */
export async function runFlowCommand(options: RunFlowCommandOptions): Promise<number> {
  startupMark('run: command started')
  // The history's modules (better-sqlite3 with them) load while the flow file does: most runs
  // keep a history. A failure here is reported where the history opens.
  historyModules().catch(() => {})
  forgetInheritedBundle()
  let stopBundle: (() => void) | undefined
  let bundle: FlowBundle | undefined
  // Inside the try: a usage error must still stop the workers started early (see early-start.ts).
  try {
    const output = parseOutput(options.output, options.outputFile)
    const resuming = options.resume === true || options.resumeFrom !== undefined
    if (resuming && (options.param.length > 0 || options.params !== undefined)) {
      throw new UsageError(`${options.resumeFrom ? 'ptr flow-runs retry' : '--resume'} runs the flow again with the parameters of the run it resumes; drop --param/--params (or run without --resume)`, 'PTR_USAGE')
    }
    checkReportPath(options.junit, '--junit', 'xml')
    const htmlReport = checkReportPath(options.report, '--report', 'html')
    // The flow file and the user's files it imports, bundled once for this run: the pool workers
    // import the same bundle (see bundle-flow.ts).
    const imported = await importFlowFile(options.file, process.cwd(), { bundle: true })
    startupMark('run: flow file imported')
    bundle = imported.bundle
    if (bundle) {
      stopBundle = useModuleBundle(bundle)
      loadBundleInEarlyWorkers()
    }
    return await runImportedFlow(options, { output, resuming, htmlReport }, imported.exports)
  } finally {
    await stopEarlyWorkers()
    stopBundle?.()
    bundle?.dispose()
  }
}

async function runImportedFlow(
  options: RunFlowCommandOptions,
  { output, resuming, htmlReport }: { output: ReturnType<typeof parseOutput>; resuming: boolean; htmlReport: string | undefined },
  exports: Record<string, unknown>,
): Promise<number> {
  const flow = selectFlow(options.file, exports, options.flowName)
  let parameters = resuming ? undefined : parseFlowParameters(options.param, options.params, flow)
  const { taskRunner, defaultTaskRunner, retryDefaults, settings } = await runnerSettingsForRun(flow, { ...options, output: output.mode })
  startupMark('run: settings resolved')
  // --runner prefect and t.delay() in the flow use the queue the settings name.
  const queue = queueSettingsFrom(settings, process.cwd())
  setDefaultQueue(queue.url, undefined, { source: queue.source, leaseMs: queue.leaseMs, maxLostLeases: queue.maxLostLeases })
  // Tag concurrency limits live in the same store; their slots' lease is a setting too.
  setSlotLease(Math.round(Number(settings.settings['concurrency.slotLeaseSeconds'].value) * 1000))
  const mode = String(settings.settings.output.value)
  const jsonToStdout = mode === 'json' && output.file === undefined

  // With the JSON report on stdout, the human view goes to stderr.
  const screen = jsonToStdout ? process.stderr : process.stdout
  const isTTY = Boolean(screen.isTTY)
  const color = chooseColor(String(settings.settings.color.value), isTTY, process.env)
  const kind = chooseRenderer({ output: mode, isTTY, env: process.env })
  const renderer: Renderer =
    kind === 'live' && !options.quiet
      ? new LiveRenderer({ color, debug: options.debug ?? false })
      : new PlainRenderer(screen, { color, debug: options.debug ?? false, quiet: options.quiet ?? false, logLevel: String(settings.settings.logLevel.value).toLowerCase() as LogLevel })
  const recorder = new RunRecorder()
  const history = mode === 'json' || options.junit || htmlReport ? new RunHistory() : undefined
  const historySettings = historySettingsFrom(settings, process.cwd())
  if (resuming && !historySettings.enabled) {
    throw new UsageError('the run history is off (history: false / PREFECT_HISTORY=false), so there is no earlier run to resume; turn it on to use --resume', 'PTR_USAGE')
  }
  const stored = historySettings.enabled ? await startHistory(historySettings, path.resolve(options.file)) : undefined
  startupMark('run: history opened')
  let notice: string | undefined
  if (resuming) {
    if (!stored) throw new UsageError(`cannot resume: the run history ${historySettings.file} cannot be opened (see the line above)`, 'PTR_USAGE')
    try {
      ;({ parameters, notice } = resumeFrom(stored, flow.name, options.resumeFrom))
    } catch (error) {
      stored.close()
      throw error
    }
  }
  const unsubscribe = [runEvents.on(recorder.onEvent), runEvents.on(renderer.onEvent)]
  if (history) unsubscribe.push(runEvents.on(history.onEvent))
  if (stored) unsubscribe.push(runEvents.on(stored.recorder.onEvent))
  const restoreConsole = captureConsole()

  const controller = new AbortController()
  let signalled: 'SIGINT' | 'SIGTERM' | undefined
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (signalled) {
      // A second signal: stop waiting for anything.
      renderer.abort()
      process.stderr.write(`\nptr: ${signal} again, exiting now\n`)
      process.exit(SIGNAL_EXIT[signal])
    }
    signalled = signal
    process.stderr.write(`\nptr: ${signal} received, cancelling the flow run (press Ctrl-C again to exit at once)\n`)
    controller.abort(new Error(`cancelled by ${signal}`))
  }
  const onSigint = () => onSignal('SIGINT')
  const onSigterm = () => onSignal('SIGTERM')
  process.on('SIGINT', onSigint)
  process.on('SIGTERM', onSigterm)

  let state: State
  try {
    await renderer.start()
    startupMark('run: renderer started, flow starts')
    // After start: the live view puts other writes above itself.
    if (notice) process.stderr.write(notice)
    ;({ state } = await flow.run(parameters, { taskRunner, defaultTaskRunner, retryDefaults, signal: controller.signal, results: stored?.recorder }))
  } catch (error) {
    renderer.abort()
    throw error
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
    restoreConsole()
    for (const off of unsubscribe) off()
    stored?.close()
    await closeDefaultLimits()
  }
  startupMark('run: flow run ended')
  recorder.endedAt = Date.now()
  await renderer.end(recorder, state)
  if (history) {
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string }
    const report = buildRunReport(history, recorder, version)
    if (mode === 'json') {
      const text = `${JSON.stringify(report, null, 2)}\n`
      if (output.file) writeReport(output.file, text, '--output-file')
      else process.stdout.write(text)
    }
    if (options.junit) writeReport(options.junit, buildJUnitXml(report), '--junit')
    if (htmlReport) {
      const { buildHtmlReport } = await import('../render/report-html/index.ts')
      writeReport(htmlReport, await buildHtmlReport(report, { source: 'run' }), '--report')
      process.stderr.write(`ptr: wrote the HTML report to ${htmlReport} (open it in a browser)\n`)
    }
  }
  if (signalled) return SIGNAL_EXIT[signalled]
  return state.type === 'Completed' ? ExitCode.Completed : ExitCode.Failed
}
