import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { ExitCode, isPtrError } from '../errors.ts'
import type { CliResult } from './cli-result.ts'
import { defineRunCommand } from './commands/run.ts'
import { defineConfigCommand } from './commands/config.ts'
import { defineWorkerCommand } from './commands/worker.ts'
import { defineRunsCommand } from './commands/runs.ts'
import { defineFlowRunsCommand } from './commands/flow-runs.ts'
import { defineConcurrencyLimitCommand } from './commands/concurrency-limit.ts'

/**
 * Builds the `ptr` program. Each command lives in its own file under `commands/`, parses its
 * options and calls a plain function; heavy modules load lazily inside the action.
 */
export function buildProgram(result: CliResult): Command {
  const program = new Command('ptr')
    .description('Run TypeScript flows and tasks with Prefect-style task runners.')
    .version(packageVersion(), '-V, --version', 'print the version of ptr')
    .option('--debug', 'print stack traces for errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ ptr run flows/hello.ts                       run the file's default flow
  $ ptr run flows/elevator.ts --runner concurrent  run it on the event loop
  $ ptr run flows/map.ts --param n=5             pass flow parameters by name
  $ ptr run flows/map.ts --runner process --max-workers 4
  $ ptr run flows/hello.ts --help                the flow's parameters, and more about running
  $ ptr config view --show-sources               every setting and where it came from
  $ ptr worker serve tasks.ts --limit 10         run queued task runs (t.delay())
  $ ptr runs list                                what is on the task-worker queue
  $ ptr flow-runs list                           the flow runs ptr run recorded
  $ ptr concurrency-limit create db 2            at most 2 runs tagged db at once

Exit codes: 0 completed, 1 failed or crashed, 2 usage or configuration error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).`,
    )
  defineRunCommand(program, result)
  defineConfigCommand(program, result)
  defineWorkerCommand(program, result)
  defineRunsCommand(program, result)
  defineFlowRunsCommand(program, result)
  defineConcurrencyLimitCommand(program, result)
  return program
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}

let processSetUp = false

/**
 * Process-wide set-up, once: stacks mapped to the user's `.ts` lines, and a closed pipe
 * (`ptr ... | head`) that ends output quietly instead of crashing with an unhandled EPIPE.
 */
function setUpProcess(): void {
  if (processSetUp) return
  processSetUp = true
  process.setSourceMapsEnabled(true)
  for (const stream of [process.stdout, process.stderr]) stream.on('error', (error) => onStreamError(stream, error))
}

function onStreamError(stream: NodeJS.WriteStream, error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error
  // The reader went away: drop what is still to be written (calling back, so those awaiting a
  // flush go on) and let the command end with its own exit code.
  stream.write = ((...args: unknown[]) => {
    const callback = args.find((a) => typeof a === 'function') as (() => void) | undefined
    if (callback) process.nextTick(callback)
    return true
  }) as typeof stream.write
}

/** Runs the CLI and returns the process exit code; never calls process.exit itself. */
export async function main(argv: readonly string[]): Promise<number> {
  setUpProcess()
  const result: CliResult = { exitCode: ExitCode.Completed }
  const program = buildProgram(result)
  try {
    await program.parseAsync([...argv])
    return result.exitCode
  } catch (error) {
    return reportError(error, argv.includes('--debug'))
  }
}

function reportError(error: unknown, debug: boolean): number {
  if (error instanceof CommanderError) {
    // Commander already printed its message; help and version are not errors.
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
      return ExitCode.Completed
    }
    return ExitCode.Usage
  }
  if (isPtrError(error)) {
    process.stderr.write(`ptr: ${error.message}\n`)
    if (debug && error.stack) process.stderr.write(`${error.stack}\n`)
    return error.exitCode
  }
  // Not a user mistake: a bug in ptr. Show everything.
  process.stderr.write(`ptr: internal error (please report it):\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  return ExitCode.Failed
}
