import { Command, CommanderError } from 'commander'
import { ExitCode, isPtrError } from '../errors.ts'
import type { CliResult } from './cli-result.ts'
import { defineRunCommand } from './commands/run.ts'
import { defineConfigCommand } from './commands/config.ts'
import { defineWorkerCommand } from './commands/worker.ts'
import { defineRunsCommand } from './commands/runs.ts'
import { defineFlowRunsCommand } from './commands/flow-runs.ts'

/**
 * Builds the `ptr` program. Each command lives in its own file under `commands/`, parses its
 * options and calls a plain function; heavy modules load lazily inside the action.
 */
export function buildProgram(result: CliResult): Command {
  const program = new Command('ptr')
    .description('Run TypeScript flows and tasks with Prefect-style task runners.')
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
  $ ptr config view --show-sources               every setting and where it came from
  $ ptr worker serve tasks.ts --limit 10         run queued task runs (t.delay())
  $ ptr flow-runs list                           the flow runs ptr run recorded
  $ ptr run --help                               more about running flows

Exit codes: 0 completed, 1 failed or crashed, 2 usage or configuration error,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).`,
    )
  defineRunCommand(program, result)
  defineConfigCommand(program, result)
  defineWorkerCommand(program, result)
  defineRunsCommand(program, result)
  defineFlowRunsCommand(program, result)
  return program
}

/** Runs the CLI and returns the process exit code; never calls process.exit itself. */
export async function main(argv: readonly string[]): Promise<number> {
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
