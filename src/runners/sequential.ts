import { TaskRunner } from '../engine/task-runner.ts'

/**
 * Runs one task run at a time, in submission order, on the main event loop. `submit()` still
 * returns a future at once; a run waiting for an upstream does not hold up runs behind it.
 */
export class SequentialTaskRunner extends TaskRunner {
  readonly name = 'sequential'
  readonly options: Readonly<Record<string, never>> = Object.freeze({})

  constructor() {
    super(1)
  }

  duplicate(): SequentialTaskRunner {
    return new SequentialTaskRunner()
  }
}
