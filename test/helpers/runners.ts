import { after } from 'node:test'
import type { TaskRunner } from '../../src/index.ts'
import { ConcurrentTaskRunner, ProcessPoolTaskRunner, SequentialTaskRunner, ThreadPoolTaskRunner } from '../../src/index.ts'

export interface RunnerUnderTest {
  readonly kind: string
  /** A runner that may run at least `parallel` attempts at once (sequential ignores it). */
  create(parallel?: number): TaskRunner
  /** Whether runs can overlap in time. */
  readonly parallel: boolean
}

/** Every runner the contract suite checks. Pool runners join this list. */
export const RUNNERS_UNDER_TEST: readonly RunnerUnderTest[] = [
  { kind: 'sequential', create: () => new SequentialTaskRunner(), parallel: false },
  { kind: 'concurrent', create: (parallel) => new ConcurrentTaskRunner(parallel ? { maxConcurrency: parallel } : {}), parallel: true },
  { kind: 'thread', create: (parallel) => new ThreadPoolTaskRunner({ maxWorkers: parallel ?? 2 }), parallel: true },
  { kind: 'process', create: (parallel) => new ProcessPoolTaskRunner({ maxWorkers: parallel ?? 2 }), parallel: true },
]

/**
 * Runners for one describe block: `make(parallel)` creates one of `runnerUnderTest`, `track(r)`
 * adopts one made otherwise (a duplicate()); every one is closed in the block's after().
 */
export function runnersClosedAfter(runnerUnderTest: RunnerUnderTest): { make: (parallel?: number) => TaskRunner; track: (runner: TaskRunner) => TaskRunner } {
  const opened: TaskRunner[] = []
  after(async () => {
    await Promise.all(opened.map((r) => r.close()))
  })
  const track = (runner: TaskRunner) => {
    opened.push(runner)
    return runner
  }
  return { make: (parallel) => track(runnerUnderTest.create(parallel)), track }
}
