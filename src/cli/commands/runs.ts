import type { Command } from 'commander'
import type { CliResult } from '../cli-result.ts'

/** `ptr runs list|show|prune`: look at the task-worker queue, and clear old runs off it. */
export function defineRunsCommand(program: Command, result: CliResult): void {
  const runs = program.command('runs').description('look at the runs on the task-worker queue')
  runs
    .command('list')
    .description('the newest runs on the queue')
    .option('-s, --state <state>', 'only runs in this state (Scheduled, Running, Completed, Failed, Crashed, Cancelled)')
    .option('-t, --task <name>', 'only runs of this task (its name)')
    .option('-n, --limit <n>', 'at most this many (default 50)')
    .option('-q, --queue <url>', 'queue URL (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for one')
    .option('--json', 'JSON for scripts')
    .action(async (options: { state?: string; task?: string; limit?: string; queue?: string; config?: string; json?: boolean }) => {
      const { runsListCommand } = await import('../runs-view.ts')
      result.exitCode = await runsListCommand(options)
    })
  runs
    .command('show')
    .description('one run: state history, attempts, worker, timings, error, logs')
    .argument('<id>', 'the run id (from ptr runs list, or future.taskRunId)')
    .option('-q, --queue <url>', 'queue URL (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for one')
    .option('--json', 'JSON for scripts')
    .action(async (id: string, options: { queue?: string; config?: string; json?: boolean }) => {
      const { runsShowCommand } = await import('../runs-view.ts')
      result.exitCode = await runsShowCommand({ id, ...options })
    })
  runs
    .command('prune')
    .description('delete finished runs (Completed, Failed, Crashed, Cancelled) and their logs that ended long enough ago')
    .requiredOption('--older-than <age>', 'how long ago they ended: 30s, 15m, 12h, 7d')
    .option('-q, --queue <url>', 'queue URL (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for one')
    .option('--json', 'JSON for scripts: { "pruned": N }')
    .action(async (options: { olderThan: string; queue?: string; config?: string; json?: boolean }) => {
      const { runsPruneCommand } = await import('../runs-view.ts')
      result.exitCode = await runsPruneCommand(options)
    })
}
