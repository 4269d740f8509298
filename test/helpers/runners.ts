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
