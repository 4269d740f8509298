import type { Command } from 'commander'
import type { CliResult } from '../cli-result.ts'
import { addRunExecutionOptions, runExecutionOptions } from './run-options.ts'
import type { RunExecutionFlags } from './run-options.ts'

const CONFIG = 'read settings (localDir) from this config file instead of searching for one'

/** `ptr flow-runs list|show|prune`: the run history `ptr run` records in <localDir>/history.db. */
export function defineFlowRunsCommand(program: Command, result: CliResult): void {
  const flowRuns = program.command('flow-runs').description('look at the flow runs ptr run recorded (the run history), and clear old ones')
  flowRuns
    .command('list')
    .description('the newest flow runs, with their task runs counted by state')
    .option('-f, --flow <name>', 'only runs of this flow (its name)')
    .option('-s, --state <state>', 'only runs that ended in this state (Completed, Failed, Crashed, Cancelled, TimedOut, ...) or are Running')
    .option('-n, --limit <n>', 'at most this many (default 50)')
    .option('-c, --config <path>', CONFIG)
    .option('--json', 'JSON for scripts')
    .action(async (options: { flow?: string; state?: string; limit?: string; config?: string; json?: boolean }) => {
      const { flowRunsListCommand } = await import('../flow-runs-view.ts')
      result.exitCode = await flowRunsListCommand(options)
    })
  flowRuns
    .command('show')
    .description('one flow run: its subflows and task runs, states, durations, errors and logs')
    .argument('<id>', 'the flow run id, or a unique prefix of it (at least 4 characters)')
    .option('-c, --config <path>', CONFIG)
    .option('--json', 'the JSON report of the run (docs/report.schema.json), as ptr run --output json writes it')
    .option('--report <file>', 'write the HTML report of the run (timeline, task graph, runs with errors and logs) to this .html file, as ptr run --report does')
    .action(async (id: string, options: { config?: string; json?: boolean; report?: string }) => {
      const { flowRunsShowCommand } = await import('../flow-runs-view.ts')
      result.exitCode = await flowRunsShowCommand({ id, ...options, debug: Boolean(program.opts().debug) })
    })
  const retry = flowRuns
    .command('retry')
    .description('run a recorded flow run again, from its file, with its parameters: task runs that completed in it are reused (shown as Cached), the rest run')
    .argument('<id>', 'the flow run id, or a unique prefix of it (at least 4 characters)')
  addRunExecutionOptions(retry).action(async (id: string, options: RunExecutionFlags) => {
    const { flowRunsRetryCommand } = await import('../flow-runs-view.ts')
    result.exitCode = await flowRunsRetryCommand({ id, ...runExecutionOptions(options), debug: Boolean(program.opts().debug) })
  })
  flowRuns
    .command('prune')
    .description('delete finished flow runs, with their subflows and task runs, that ended long enough ago')
    .requiredOption('--older-than <age>', 'how long ago they ended: 30s, 15m, 12h, 7d')
    .option('-c, --config <path>', CONFIG)
    .option('--json', 'JSON for scripts: { "pruned": N }')
    .action(async (options: { olderThan: string; config?: string; json?: boolean }) => {
      const { flowRunsPruneCommand } = await import('../flow-runs-view.ts')
      result.exitCode = await flowRunsPruneCommand(options)
    })
}
