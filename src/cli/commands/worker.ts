import type { Command } from 'commander'
import type { CliResult } from '../cli-result.ts'

/** `ptr worker serve FILE...`: a long-lived task worker. */
export function defineWorkerCommand(program: Command, result: CliResult): void {
  const worker = program.command('worker').description('task workers that run queued task runs (t.delay(), --runner prefect)')
  worker
    .command('serve')
    .description('serve the tasks the files export: claim their queued runs and run them here')
    .argument('<files...>', '.ts (or .js) files whose exported tasks to serve')
    .option('-l, --limit <n>', 'most runs at once (exact; no prefetch)', undefined)
    .option('-q, --queue <url>', 'queue URL: sqlite:PATH or redis://[user:password@]host:port/db (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)')
    .option('-c, --config <path>', 'read settings from this config file instead of searching for .prefectrc and co.')
    .option('--status-port <port>', 'serve GET /status and /health on this port (0: any free port)')
    .option('--status-host <host>', 'address for the status server', undefined)
    .option('--grace <seconds>', 'on SIGTERM/Ctrl-C, time in-flight runs get to finish before they go back to the queue (default 10)')
    .option('--lease <seconds>', 'lease length: a dead worker\'s runs go back to the queue after about this long (default 10, or PREFECT_TASK_WORKER_LEASE_SECONDS)')
    .addHelpText(
      'after',
      `
Examples:
  $ ptr worker serve tasks.ts --limit 10
  $ ptr worker serve tasks.ts more.ts --queue sqlite:/var/lib/app/queue.db --status-port 8787
  $ PREFECT_QUEUE_URL=redis://:secret@redis.internal:6379/0 ptr worker serve tasks.ts

Runs find their task by name: served tasks must have unique names.
SIGTERM or Ctrl-C: stop claiming, let in-flight runs finish within --grace, hand the rest back, exit 0.`,
    )
    .action(async (files: string[], options: { limit?: string; queue?: string; config?: string; statusPort?: string; statusHost?: string; grace?: string; lease?: string }) => {
      const { serveCommand } = await import('../worker-serve.ts')
      result.exitCode = await serveCommand({
        files,
        limit: options.limit,
        queue: options.queue,
        config: options.config,
        statusPort: options.statusPort,
        statusHost: options.statusHost,
        grace: options.grace,
        lease: options.lease,
      })
    })
}
