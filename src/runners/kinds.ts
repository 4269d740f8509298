import { UsageError } from '../errors.ts'
import os from 'node:os'
import { ConcurrentTaskRunner } from './concurrent.ts'
import { ProcessPoolTaskRunner } from './process-pool.ts'
import { PrefectTaskRunner } from './prefect.ts'
import { SequentialTaskRunner } from './sequential.ts'
import type { TaskRunner } from '../engine/task-runner.ts'
import { ThreadPoolTaskRunner } from './thread-pool.ts'

import { RUNNER_KINDS } from './kind-names.ts'

export { DEFAULT_RUNNER_KIND, RUNNER_KINDS } from './kind-names.ts'
export type { RunnerKind } from './kind-names.ts'

export interface RunnerSettings {
  /** Pool size (thread and process runners). @default os.availableParallelism() */
  maxWorkers?: number | undefined
  /** Limit for the concurrent runner. */
  maxConcurrency?: number | undefined
}

/** Builds a runner of `kind` (one of RUNNER_KINDS); `source` names where the kind came from, for the error message. */
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
