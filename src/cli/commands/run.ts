import type { Command } from 'commander'
import { Option } from 'commander'
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
  output?: string[]
  junit?: string
  quiet?: boolean
  logLevel?: string
  color?: string
}

/** `ptr run FILE [FLOW]`: load a flow file and run one of its flows. */
export function defineRunCommand(program: Command, result: CliResult): void {
  program
    .command('run')
    .description("run a flow from a TypeScript file (its default export, or the flow named)")
    .argument('<file>', 'the .ts (or .js) file that exports the flow')
    .argument('[flow]', 'the flow to run, by export name or flow name, when the file has several')
    .addOption(new Option('-r, --runner <kind>', 'task runner for this run (overrides the flow\'s own)'))
    .option('-p, --param <name=value>', 'a flow parameter; the value is parsed as JSON when it parses (repeatable)', collect)
    .option('--params <json>', 'all flow parameters as one JSON object')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for .prefectrc and co.')
    .option('--max-workers <n>', 'workers of the thread or process pool runner this run uses')
    .option('--max-concurrency <n>', 'most task runs at once on the concurrent runner')
    .option('--queue <url>', 'the task-worker queue for --runner prefect and t.delay() (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-o, --output <mode...>', 'auto (live view on a terminal, plain lines otherwise), live, plain, or json [FILE.json]: the whole run as JSON, to the file or to stdout')
    .option('--junit <file>', 'also write a JUnit XML report (one test case per task run) to this file')
    .option('-q, --quiet', 'print only failures and the summary')
    .option('--log-level <level>', 'thin the plain output: debug, info, warning (retries, failures, cancellations) or error (failures)')
    .option('--color <when>', 'auto, always or never (auto honours NO_COLOR and FORCE_COLOR)')
    .addHelpText(
      'after',
      `
Examples:
  $ ptr run flows/hello.ts
  $ ptr run flows/hello.ts --param name=Ada
  $ ptr run flows/map.ts --params '{"n": 5}' --runner sequential
  $ ptr run flows/multi.ts nightly        run the flow exported as (or named) nightly

  $ ptr run flows/failures.ts --output json report.json --junit junit.xml

Output: a live view on a terminal; one timestamped line per task-run state change when stdout is
not a terminal or CI is set; then a summary. Settings (runner, sizes, output) also come from
PREFECT_* variables and .prefectrc: see ptr config view --show-sources.
Exit codes: 0 completed, 1 failed or crashed, 2 usage error, 130 Ctrl-C, 143 SIGTERM.`,
    )
    .action(async (file: string, flowName: string | undefined, options: RunCommandFlags) => {
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
        junit: options.junit,
        quiet: options.quiet ?? false,
        logLevel: options.logLevel,
        color: options.color,
        debug: Boolean(program.opts().debug),
      })
    })
}
