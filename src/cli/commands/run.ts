import type { Command } from 'commander'
import { Option } from 'commander'
import { UsageError } from '../../errors.ts'
import type { CliResult } from '../cli-result.ts'

const collect = (value: string, previous: string[] = []) => [...previous, value]

const parseMaxWorkers = (value: string): number => {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1) {
    throw new UsageError(`--max-workers expects an integer from 1 and up, got \`${value}\``, 'PTR_INVALID_MAX_WORKERS')
  }
  return Number(value)
}

/** `ptr run FILE [FLOW]`: load a flow file and run one of its flows. */
export function defineRunCommand(program: Command, result: CliResult): void {
  program
    .command('run')
    .description("run a flow from a TypeScript file (its default export, or the flow named)")
    .argument('<file>', 'the .ts (or .js) file that exports the flow')
    .argument('[flow]', 'the flow to run, by export name or flow name, when the file has several')
    .addOption(new Option('-r, --runner <kind>', 'task runner for this run (overrides the flow\'s own)'))
    .addOption(new Option('-w, --max-workers <n>', 'workers of the thread or process pool (default: the number of CPUs)').argParser(parseMaxWorkers))
    .option('-p, --param <name=value>', 'a flow parameter; the value is parsed as JSON when it parses (repeatable)', collect)
    .option('--params <json>', 'all flow parameters as one JSON object')
    .addHelpText(
      'after',
      `
Examples:
  $ ptr run flows/hello.ts
  $ ptr run flows/hello.ts --param name=Ada
  $ ptr run flows/map.ts --params '{"n": 5}' --runner sequential
  $ ptr run flows/multi.ts nightly        run the flow exported as (or named) nightly

Runners: thread (default), process, concurrent, sequential.
Output: one timestamped line per task-run state change, then a summary.
Exit codes: 0 completed, 1 failed or crashed, 2 usage error, 130 Ctrl-C, 143 SIGTERM.`,
    )
    .action(async (file: string, flowName: string | undefined, options: { runner?: string; maxWorkers?: number; param?: string[]; params?: string }) => {
      const { runFlowCommand } = await import('../run-flow.ts')
      result.exitCode = await runFlowCommand({
        file,
        flowName,
        runner: options.runner,
        maxWorkers: options.maxWorkers,
        param: options.param ?? [],
        params: options.params,
      })
    })
}
