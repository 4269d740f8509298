import { mkdirSync, writeFileSync } from 'node:fs'
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
import { parseFlowParameters } from './params.ts'
import { setDefaultQueue } from '../queue/open.ts'
import { queueSettingsFrom } from '../settings/queue.ts'
import { runnerSettingsForRun } from './run-settings.ts'

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
  /** `--output MODE [FILE]`: the mode, and for json an optional file. */
  output?: readonly string[] | undefined
  junit?: string | undefined
  quiet?: boolean
  logLevel?: string | undefined
  color?: string | undefined
}

const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: ExitCode.Sigint, SIGTERM: ExitCode.Sigterm }

/** `--output json report.json` → mode and file; the file must be a .json path (or `-`), so a flow file can never be overwritten. */
function parseOutput(values: readonly string[] | undefined): { mode: string | undefined; file: string | undefined } {
  if (!values || values.length === 0) return { mode: undefined, file: undefined }
  const [mode, file, ...rest] = values
  if (rest.length > 0 || (file !== undefined && mode !== 'json')) {
    throw new UsageError(`--output takes a mode and, for json, one file: got '${values.join(' ')}'; e.g. --output json report.json (put the flow file before --output)`, 'PTR_BAD_OUTPUT')
  }
  if (file !== undefined && file !== '-' && !file.endsWith('.json')) {
    throw new UsageError(`--output json ${file}: the report file must end in .json (or be - for stdout); put the flow file before --output`, 'PTR_BAD_OUTPUT')
  }
  return { mode, file: file === '-' ? undefined : file }
}

function writeReport(file: string, text: string, flag: string): void {
  try {
    mkdirSync(path.dirname(path.resolve(file)), { recursive: true })
    writeFileSync(file, text)
  } catch (error) {
    throw new UsageError(`${flag} ${file}: cannot write the report (${(error as Error).message}); choose a writable path`, 'PTR_REPORT_WRITE')
  }
}

/** `ptr run`: loads the file, runs the flow with a renderer attached, returns the exit code. */
export async function runFlowCommand(options: RunFlowCommandOptions): Promise<number> {
  const parameters = parseFlowParameters(options.param, options.params)
  const output = parseOutput(options.output)
  const { exports } = await importFlowFile(options.file)
  const flow = selectFlow(options.file, exports, options.flowName)
  const { taskRunner, defaultTaskRunner, retryDefaults, settings } = await runnerSettingsForRun(flow, { ...options, output: output.mode })
  // --runner prefect and t.delay() in the flow use the queue the settings name.
  const queue = queueSettingsFrom(settings, process.cwd())
  setDefaultQueue(queue.url, undefined, { source: queue.source, leaseMs: queue.leaseMs, maxLostLeases: queue.maxLostLeases })
  const mode = String(settings.settings.output.value)
  const jsonToStdout = mode === 'json' && output.file === undefined

  // With the JSON report on stdout, the human view goes to stderr.
  const screen = jsonToStdout ? process.stderr : process.stdout
  const isTTY = Boolean(screen.isTTY)
  const color = chooseColor(String(settings.settings.color.value), isTTY, process.env)
  const kind = chooseRenderer({ output: mode, isTTY, env: process.env })
  const renderer: Renderer =
    kind === 'live' && !options.quiet
      ? new LiveRenderer({ color })
      : new PlainRenderer(screen, { color, quiet: options.quiet ?? false, logLevel: String(settings.settings.logLevel.value).toLowerCase() as LogLevel })
  const recorder = new RunRecorder()
  const history = mode === 'json' || options.junit ? new RunHistory() : undefined
  const unsubscribe = [runEvents.on(recorder.onEvent), runEvents.on(renderer.onEvent)]
  if (history) unsubscribe.push(runEvents.on(history.onEvent))
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
    ;({ state } = await flow.run(parameters, { taskRunner, defaultTaskRunner, retryDefaults, signal: controller.signal }))
  } catch (error) {
    renderer.abort()
    throw error
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
    restoreConsole()
    for (const off of unsubscribe) off()
  }
  recorder.endedAt = Date.now()
  await renderer.end(recorder, state)
  if (history) {
    const { version } = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string }
    const report = buildRunReport(history, recorder, version)
    if (mode === 'json') {
      const text = `${JSON.stringify(report, null, 2)}\n`
      if (output.file) writeReport(output.file, text, '--output json')
      else process.stdout.write(text)
    }
    if (options.junit) writeReport(options.junit, buildJUnitXml(report), '--junit')
  }
  if (signalled) return SIGNAL_EXIT[signalled]
  return state.type === 'Completed' ? ExitCode.Completed : ExitCode.Failed
}
