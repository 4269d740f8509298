import type { Command } from 'commander'
import { Option } from 'commander'
import { RUNNER_KINDS } from '../../runners/kind-names.ts'

/** The options that say how a flow runs and where its output goes: `ptr run` and `ptr flow-runs retry` take the same. */
export interface RunExecutionFlags {
  runner?: string
  config?: string
  maxWorkers?: string
  maxConcurrency?: string
  queue?: string
  output?: string
  outputFile?: string
  junit?: string
  report?: string
  quiet?: boolean
  logLevel?: string
  color?: string
}

/** Adds the {@link RunExecutionFlags} options to `command`. */
export function addRunExecutionOptions(command: Command): Command {
  return command
    .addOption(new Option('-r, --runner <kind>', `task runner for this run, overriding the flow's own: ${RUNNER_KINDS.join(', ')}`))
    .option('-c, --config <path>', 'read settings from this config file instead of searching for .prefectrc and co.')
    .option('--max-workers <n>', 'workers of the thread or process pool runner this run uses')
    .option('--max-concurrency <n>', 'most task runs at once on the concurrent runner')
    .option('--queue <url>', 'the task-worker queue for --runner prefect and t.delay() (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-o, --output <mode>', 'auto (live view on a terminal, plain lines otherwise), live, plain, or json: the whole run as JSON, to --output-file or to stdout')
    .option('--output-file <file>', 'with --output json: write the report to this file (the view stays on the terminal)')
    .option('--junit <file>', 'also write a JUnit XML report (one test case per task run) to this .xml file')
    .option('--report <file>', 'also write an HTML report (timeline, task graph, runs with errors and logs) to this .html file: one page, no network needed')
    .option('-q, --quiet', 'print only failures and the summary')
    .option('--log-level <level>', 'thin the plain output: debug, info, warning (retries, failures, cancellations) or error (failures)')
    .option('--color <when>', 'auto, always or never (auto honours NO_COLOR and FORCE_COLOR)')
}

/** The flags as `runFlowCommand` takes them. */
export function runExecutionOptions(flags: RunExecutionFlags) {
  return {
    runner: flags.runner,
    config: flags.config,
    maxWorkers: flags.maxWorkers,
    maxConcurrency: flags.maxConcurrency,
    queue: flags.queue,
    output: flags.output,
    outputFile: flags.outputFile,
    junit: flags.junit,
    report: flags.report,
    quiet: flags.quiet ?? false,
    logLevel: flags.logLevel,
    color: flags.color,
  }
}
