import type { Command } from 'commander'
import { UsageError } from '../../errors.ts'
import type { CliResult } from '../cli-result.ts'
import { addRunExecutionOptions, runExecutionOptions } from './run-options.ts'
import type { RunExecutionFlags } from './run-options.ts'

const collect = (value: string, previous: string[] = []) => [...previous, value]

interface RunCommandFlags extends RunExecutionFlags {
  param?: string[]
  params?: string
  help?: boolean
  resume?: boolean
}

/** `ptr run FILE [FLOW]`: load a flow file and run one of its flows. */
export function defineRunCommand(program: Command, result: CliResult): void {
  const command = program
    .command('run')
    .description("run a flow from a TypeScript file (its default export, or the flow named)")
    .argument('[file]', 'the .ts (or .js) file that exports the flow')
    .argument('[flow]', 'the flow to run, by export name or flow name, when the file has several')
    // Our own --help: with a flow file it also lists that flow's parameters.
    .helpOption(false)
    .option('-h, --help', "show this help; with a flow file, also the flow's parameters")
    .option('-p, --param <name=value>', 'a flow parameter; the value is parsed as JSON when it parses (repeatable)', collect)
    .option('--params <json>', 'all flow parameters as one JSON object')
  addRunExecutionOptions(command)
    .option('--resume', "run again the latest run of this flow that did not complete, with its parameters: task runs that completed in it are not run again (they show as Cached)")
    .addHelpText(
      'after',
      `
Examples:
  $ ptr run flows/hello.ts
  $ ptr run flows/hello.ts --param name=Ada
  $ ptr run flows/map.ts --params '{"n": 5}' --runner sequential
  $ ptr run flows/elevator.ts elevator    run the flow exported as (or named) elevator
  $ ptr run flows/hello.ts --help         the flow's parameters
  $ ptr run flows/failures.ts --output json --output-file report.json --junit junit.xml
  $ ptr run flows/pipeline.ts --resume    go on from the last failed (or killed) run
  $ ptr run flows/elevator.ts --report run.html      then open run.html in a browser

Output: a live view on a terminal; one timestamped line per task-run state change when stdout is
not a terminal or CI is set; then a summary. Settings (runner, sizes, output) also come from
PREFECT_* variables and .prefectrc: see ptr config view --show-sources.
Exit codes: 0 completed, 1 failed or crashed, 2 usage error, 130 Ctrl-C, 143 SIGTERM.`,
    )
    .action(async (fileArg: string | undefined, flowArg: string | undefined, options: RunCommandFlags, command: Command) => {
      let [file, flowName, outputFile] = [fileArg, flowArg, options.outputFile]
      // `--output json report.json` (the old form): a .json positional is the report file, never the flow file.
      if (options.output === 'json' && outputFile === undefined) {
        if (flowName?.endsWith('.json')) [flowName, outputFile] = [undefined, flowName]
        else if (file?.endsWith('.json') && flowName !== undefined) [file, flowName, outputFile] = [flowName, undefined, file]
      }
      if (options.help) {
        command.outputHelp()
        if (file !== undefined) {
          const { flowParametersHelp } = await import('../run-flow.ts')
          process.stdout.write(`\n${await flowParametersHelp(file, flowName)}`)
        }
        return
      }
      if (file === undefined) throw new UsageError("ptr run needs a flow file: ptr run FILE [FLOW] (see ptr run --help)", 'PTR_USAGE')
      // The bundle and the pool's workers start while the modules that run a flow load.
      ;(await import('../early-start.ts')).startEarly(file, options)
      const { runFlowCommand } = await import('../run-flow.ts')
      result.exitCode = await runFlowCommand({
        ...runExecutionOptions(options),
        file,
        flowName,
        param: options.param ?? [],
        params: options.params,
        outputFile,
        resume: options.resume ?? false,
        debug: Boolean(program.opts().debug),
      })
    })
}
