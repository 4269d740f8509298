import { ExitCode } from '../errors.ts'
import { captureConsole } from '../engine/context.ts'
import { runEvents } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { DEFAULT_RUNNER_KIND, createTaskRunner } from '../runners/kinds.ts'
import { PlainRenderer } from '../render/plain.ts'
import { RunRecorder } from '../render/recorder.ts'
import { importFlowFile, selectFlow } from './load-flow.ts'
import { parseFlowParameters } from './params.ts'

export interface RunFlowCommandOptions {
  file: string
  flowName: string | undefined
  runner: string | undefined
  /** `--max-workers`: pool size for the thread/process runner (the flag's or the flow's own). */
  maxWorkers?: number | undefined
  param: readonly string[]
  params: string | undefined
  stdout?: NodeJS.WritableStream
}

const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: ExitCode.Sigint, SIGTERM: ExitCode.Sigterm }

/** `ptr run`: loads the file, runs the flow with a renderer attached, returns the exit code. */
export async function runFlowCommand(options: RunFlowCommandOptions): Promise<number> {
  const parameters = parseFlowParameters(options.param, options.params)
  let taskRunner = options.runner === undefined ? undefined : createTaskRunner(options.runner, { maxWorkers: options.maxWorkers })
  const { exports } = await importFlowFile(options.file)
  const flow = selectFlow(options.file, exports, options.flowName)
  if (!taskRunner && options.maxWorkers !== undefined) {
    // --max-workers alone resizes the flow's own pool (or the default one), keeping its kind.
    const kind = flow.options.taskRunner?.name ?? DEFAULT_RUNNER_KIND
    if (kind === 'thread' || kind === 'process') taskRunner = createTaskRunner(kind, { maxWorkers: options.maxWorkers })
  }

  const out = (options.stdout ?? process.stdout) as NodeJS.WritableStream & import('node:stream').Writable
  const recorder = new RunRecorder()
  const renderer = new PlainRenderer(out)
  const unsubscribe = [runEvents.on(recorder.onEvent), runEvents.on(renderer.onEvent)]
  const restoreConsole = captureConsole()

  const controller = new AbortController()
  let signalled: 'SIGINT' | 'SIGTERM' | undefined
  const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
    if (signalled) {
      // A second signal: stop waiting for anything.
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
    ;({ state } = await flow.run(parameters, { taskRunner, signal: controller.signal }))
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
    restoreConsole()
    for (const off of unsubscribe) off()
  }
  recorder.endedAt = Date.now()
  renderer.summary(recorder, state)
  if (signalled) return SIGNAL_EXIT[signalled]
  return state.type === 'Completed' ? ExitCode.Completed : ExitCode.Failed
}
