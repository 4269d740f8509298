import { UsageError } from '../errors.ts'
import os from 'node:os'
import { ConcurrentTaskRunner } from './concurrent.ts'
import { ProcessPoolTaskRunner } from './process-pool.ts'
import { PrefectTaskRunner } from './prefect.ts'
import { SequentialTaskRunner } from './sequential.ts'
import type { TaskRunner } from '../engine/task-runner.ts'
import { ThreadPoolTaskRunner } from './thread-pool.ts'

/** The runner kinds `--runner` accepts, and how to build each. */
export const RUNNER_KINDS = ['sequential', 'concurrent', 'thread', 'process', 'prefect'] as const
export type RunnerKind = (typeof RUNNER_KINDS)[number]
/** The runner flows get when nothing (flag, flow code, environment, config file) names one. */
export const DEFAULT_RUNNER_KIND: RunnerKind = 'thread'

export interface RunnerSettings {
  /** Pool size (thread and process runners). @default os.availableParallelism() */
  maxWorkers?: number | undefined
  /** Limit for the concurrent runner. */
  maxConcurrency?: number | undefined
}

/** Builds a runner of `kind`; `source` names where the kind came from, for the error message. */
export function createTaskRunner(kind: string, settings: RunnerSettings = {}, source = '--runner'): TaskRunner {
  switch (kind) {
    case 'thread':
      return new ThreadPoolTaskRunner({ maxWorkers: settings.maxWorkers ?? os.availableParallelism() })
    case 'process':
      return new ProcessPoolTaskRunner({ maxWorkers: settings.maxWorkers ?? os.availableParallelism() })
    case 'sequential':
      return new SequentialTaskRunner()
    case 'concurrent':
      return new ConcurrentTaskRunner(settings.maxConcurrency === undefined ? {} : { maxConcurrency: settings.maxConcurrency })
    case 'prefect':
      // Every submit goes to the task-worker queue (PREFECT_QUEUE_URL, or sqlite:.ptr/queue.db).
      return new PrefectTaskRunner()
    default:
      throw new UsageError(`unknown runner '${kind}' (from ${source}); use one of: ${RUNNER_KINDS.join(', ')}`, 'PTR_UNKNOWN_RUNNER')
  }
}
