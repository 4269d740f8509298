import type { Command } from 'commander'
import { Option } from 'commander'
import { RUNNER_KINDS } from '../../runners/kind-names.ts'
import { UsageError } from '../../errors.ts'
import type { CliResult } from '../cli-result.ts'

const collect = (value: string, previous: string[] = []) => [...previous, value]

interface RunCommandFlags {
  runner?: string
  param?: string[]
  params?: string
  config?: string
  maxWorkers?: string
  maxConcurrency?: string
  queue?: string
  output?: string
  outputFile?: string
  junit?: string
  report?: string
  help?: boolean
  quiet?: boolean
  logLevel?: string
  color?: string
  resume?: boolean
}

/** `ptr run FILE [FLOW]`: load a flow file and run one of its flows. */
export function defineRunCommand(program: Command, result: CliResult): void {
  program
    .command('run')
    .description("run a flow from a TypeScript file (its default export, or the flow named)")
    .argument('[file]', 'the .ts (or .js) file that exports the flow')
    .argument('[flow]', 'the flow to run, by export name or flow name, when the file has several')
    // Our own --help: with a flow file it also lists that flow's parameters.
    .helpOption(false)
    .option('-h, --help', "show this help; with a flow file, also the flow's parameters")
    .addOption(new Option('-r, --runner <kind>', `task runner for this run, overriding the flow's own: ${RUNNER_KINDS.join(', ')}`))
    .option('-p, --param <name=value>', 'a flow parameter; the value is parsed as JSON when it parses (repeatable)', collect)
    .option('--params <json>', 'all flow parameters as one JSON object')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for .prefectrc and co.')
    .option('--max-workers <n>', 'workers of the thread or process pool runner this run uses')
    .option('--max-concurrency <n>', 'most task runs at once on the concurrent runner')
    .option('--queue <url>', 'the task-worker queue for --runner prefect and t.delay() (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-o, --output <mode>', 'auto (live view on a terminal, plain lines otherwise), live, plain, or json: the whole run as JSON, to --output-file or to stdout')
    .option('--output-file <file>', 'with --output json: write the report to this file (the view stays on the terminal)')
    .option('--junit <file>', 'also write a JUnit XML report (one test case per task run) to this file')
    .option('--report <file>', 'also write an HTML report (timeline, task graph, runs with errors and logs) to this .html file: one page, no network needed')
    .option('-q, --quiet', 'print only failures and the summary')
    .option('--log-level <level>', 'thin the plain output: debug, info, warning (retries, failures, cancellations) or error (failures)')
    .option('--color <when>', 'auto, always or never (auto honours NO_COLOR and FORCE_COLOR)')
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
        file,
        flowName,
        runner: options.runner,
        param: options.param ?? [],
        params: options.params,
        config: options.config,
        maxWorkers: options.maxWorkers,
        maxConcurrency: options.maxConcurrency,
        queue: options.queue,
        output: options.output,
        outputFile,
        junit: options.junit,
        report: options.report,
        quiet: options.quiet ?? false,
        logLevel: options.logLevel,
        color: options.color,
        resume: options.resume ?? false,
        debug: Boolean(program.opts().debug),
      })
    })
}
