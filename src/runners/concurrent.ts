import { PtrError } from '../errors.ts'
import { TaskRunner } from '../engine/task-runner.ts'

export interface ConcurrentTaskRunnerOptions {
  /** Most task runs in progress at once; the rest wait in submission order. @default no limit */
  maxConcurrency?: number
}

/**
 * Runs tasks concurrently on the main event loop: right for I/O-bound async tasks.
 * CPU-bound tasks block each other here; use a thread or process pool for those.
 */
export class ConcurrentTaskRunner extends TaskRunner {
  readonly name = 'concurrent'
  readonly options: Readonly<ConcurrentTaskRunnerOptions>

  constructor(options: ConcurrentTaskRunnerOptions = {}) {
    const { maxConcurrency } = options
    if (maxConcurrency !== undefined && !(Number.isInteger(maxConcurrency) && maxConcurrency >= 1)) {
      throw new PtrError(`ConcurrentTaskRunner: expected \`maxConcurrency\` to be an integer from 1 and up, got \`${String(maxConcurrency)}\` (${typeof maxConcurrency})`, {
        code: 'PTR_INVALID_RUNNER_OPTION',
        exitCode: 2,
      })
    }
    super(maxConcurrency)
    this.options = Object.freeze({ ...options })
  }

  duplicate(): ConcurrentTaskRunner {
    return new ConcurrentTaskRunner(this.options)
  }
}
