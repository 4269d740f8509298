import type { Command } from 'commander'
import type { CliResult } from '../cli-result.ts'

const QUEUE = 'queue URL: the limits live where the queue lives (default PREFECT_QUEUE_URL, queue.url in .prefectrc, or sqlite:<localDir>/queue.db)'
const CONFIG = 'read settings from this config file instead of searching for one'

type Common = { queue?: string; config?: string; json?: boolean }

/** `ptr concurrency-limit create|ls|inspect|reset|delete`: tag concurrency limits, named slots and rate limits. */
export function defineConcurrencyLimitCommand(program: Command, result: CliResult): void {
  const limits = program
    .command('concurrency-limit')
    .description('limits that hold across processes and machines: task runs by tag, concurrency(name), rateLimit(name)')
    .addHelpText(
      'after',
      `
Examples:
  $ ptr concurrency-limit create db 2                  at most 2 task runs tagged db at once, everywhere
  $ ptr concurrency-limit create api 10 --slot-decay-per-second 10   rateLimit('api'): 10 a second
  $ ptr concurrency-limit inspect db                   slots in use, and by which runs
  $ ptr concurrency-limit delete db                    its waiters go ahead`,
    )
  const run = async (fn: (view: typeof import('../concurrency-limit-view.ts')) => Promise<number>) => {
    const view = await import('../concurrency-limit-view.ts')
    result.exitCode = await fn(view)
  }
  limits
    .command('create')
    .description('create a limit (or change its size): TAG limits task runs with that tag; any NAME serves concurrency() and rateLimit()')
    .argument('<tag>', 'the tag or name')
    .argument('<limit>', 'most slots in use at once (an integer from 1 and up)')
    .option('--slot-decay-per-second <n>', 'slots given back per second by themselves: a rate limit for rateLimit(name)')
    .option('-q, --queue <url>', QUEUE)
    .option('-c, --config <path>', CONFIG)
    .option('--json', 'JSON for scripts')
    .action((tag: string, limit: string, options: Common & { slotDecayPerSecond?: string }) =>
      run((view) => view.createLimitCommand({ tag, limit, ...options })),
    )
  limits
    .command('ls')
    .alias('list')
    .description('every limit: its size, slots in use, runs waiting')
    .option('-q, --queue <url>', QUEUE)
    .option('-c, --config <path>', CONFIG)
    .option('--json', 'JSON for scripts')
    .action((options: Common) => run((view) => view.listLimitsCommand(options)))
  limits
    .command('inspect')
    .description('one limit: slots in use, and by which runs (holder, process, lease)')
    .argument('<tag>', 'the tag or name')
    .option('-q, --queue <url>', QUEUE)
    .option('-c, --config <path>', CONFIG)
    .option('--json', 'JSON for scripts')
    .action((tag: string, options: Common) => run((view) => view.inspectLimitCommand({ tag, ...options })))
  limits
    .command('reset')
    .description('free every slot of a limit (runs holding them go on; new runs count from zero)')
    .argument('<tag>', 'the tag or name')
    .option('-q, --queue <url>', QUEUE)
    .option('-c, --config <path>', CONFIG)
    .action((tag: string, options: Common) => run((view) => view.resetLimitCommand({ tag, ...options })))
  limits
    .command('delete')
    .description('delete a limit: runs waiting for it go ahead, unlimited')
    .argument('<tag>', 'the tag or name')
    .option('-q, --queue <url>', QUEUE)
    .option('-c, --config <path>', CONFIG)
    .action((tag: string, options: Common) => run((view) => view.deleteLimitCommand({ tag, ...options })))
}
