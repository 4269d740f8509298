import type { WorkerPoolOptions } from 'workerpool'
import type { Crossing } from './crossing.ts'
import { PoolTaskRunner } from './pool-runner.ts'
import type { PoolTaskRunnerOptions } from './pool-runner.ts'

/** Options of {@link ProcessPoolTaskRunner}. */
export interface ProcessPoolTaskRunnerOptions extends PoolTaskRunnerOptions {}

/**
 * Runs each task run in a child process (workerpool): full isolation (a crash or `process.exit`
 * takes down only its worker) and CPU-bound work in parallel. Arguments and results cross with
 * v8 serialization. Tasks must be defined at the top level of a module: each worker imports it.
 */
export class ProcessPoolTaskRunner extends PoolTaskRunner {
  readonly name = 'process'

  constructor(options: ProcessPoolTaskRunnerOptions = {}) {
    super('ProcessPoolTaskRunner', options)
  }

  duplicate(): ProcessPoolTaskRunner {
    return new ProcessPoolTaskRunner(this.options)
  }

  protected get crossing(): Crossing {
    return 'process'
  }

  protected override get capturesStdStreams(): boolean {
    return true
  }

  /** @internal */
  protected poolOptions(execArgv: readonly string[]): WorkerPoolOptions {
    const { maxOldGenerationSizeMb } = this.options
    return {
      workerType: 'process',
      // Pipes the child's stdout and stderr to the pool runner (workerpool overrides forkOpts.stdio):
      // V8's report of a heap out of memory must not tear the live view.
      emitStdStreams: true,
      forkOpts: {
        // Without 'advanced', workerpool sends JSON: Date, Map, Set, BigInt and Errors would not survive.
        serialization: 'advanced',
        execArgv: [...execArgv, ...(maxOldGenerationSizeMb === undefined ? [] : [`--max-old-space-size=${maxOldGenerationSizeMb}`])],
      },
    }
  }
}
