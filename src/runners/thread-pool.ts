import type { WorkerPoolOptions } from 'workerpool'
import { provide } from '../engine/providers.ts'
import type { Crossing } from './crossing.ts'
import { PoolTaskRunner } from './pool-runner.ts'
import type { PoolTaskRunnerOptions } from './pool-runner.ts'

/** Options of {@link ThreadPoolTaskRunner}. */
export interface ThreadPoolTaskRunnerOptions extends PoolTaskRunnerOptions {}

/**
 * Runs each task run in a worker thread (workerpool): CPU-bound work in parallel, with less
 * start-up cost than processes. ptr's default runner. Arguments and results cross by structured
 * clone. Tasks must be defined at the top level of a module: each worker imports it.
 */
export class ThreadPoolTaskRunner extends PoolTaskRunner {
  readonly name = 'thread'

  constructor(options: ThreadPoolTaskRunnerOptions = {}) {
    super('ThreadPoolTaskRunner', options)
  }

  duplicate(): ThreadPoolTaskRunner {
    return new ThreadPoolTaskRunner(this.options)
  }

  protected get crossing(): Crossing {
    return 'thread'
  }

  /** @internal */
  protected poolOptions(execArgv: readonly string[]): WorkerPoolOptions {
    const { maxOldGenerationSizeMb } = this.options
    return {
      workerType: 'thread',
      workerThreadOpts: {
        // Worker threads do not inherit tsx; from ptr's sources, our own bootstrap registers it.
        execArgv: [...execArgv],
        ...(maxOldGenerationSizeMb === undefined ? {} : { resourceLimits: { maxOldGenerationSizeMb } }),
      },
    }
  }
}

// A flow that names no task runner runs on a thread pool, as in Prefect.
provide({ defaultTaskRunner: () => new ThreadPoolTaskRunner() })
