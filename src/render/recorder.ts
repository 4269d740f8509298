import type { FlowRunInfo, RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'

export interface RunFailure {
  readonly taskRunName: string
  readonly state: State
  readonly attempts: number
}

export interface SlowRun {
  readonly taskRunName: string
  readonly seconds: number
}

/**
 * Keeps what a summary needs from the event stream, in constant memory per run: counts by
 * final state, the slowest runs and the first failures.
 */
export class RunRecorder {
  readonly counts = new Map<string, number>()
  readonly failures: RunFailure[] = []
  failureCount = 0
  slowest: SlowRun[] = []
  taskRuns = 0
  flowRun: FlowRunInfo | undefined
  readonly startedAt = Date.now()
  endedAt: number | undefined
  static readonly MAX_FAILURES = 20
  static readonly MAX_SLOWEST = 3

  onEvent = (event: RunEvent): void => {
    if (event.kind === 'flow-run-state') {
      if (this.flowRun === undefined || event.flowRun.parentFlowRunId === undefined) this.flowRun = event.flowRun
      return
    }
    if (event.kind !== 'task-run-state') return
    const { taskRun, state } = event
    if (state.type === 'Pending' && state.name === 'Pending') {
      this.taskRuns++
      return
    }
    if (!isSettled(state)) return
    this.counts.set(state.name, (this.counts.get(state.name) ?? 0) + 1)
    const started = taskRun.startTime
    if (started !== undefined) this.#noteDuration(taskRun.name, (state.timestamp - started) / 1000)
    if (state.type === 'Failed' || state.type === 'Crashed') {
      this.failureCount++
      if (this.failures.length < RunRecorder.MAX_FAILURES) this.failures.push({ taskRunName: taskRun.name, state, attempts: taskRun.attempt })
    }
  }

  #noteDuration(taskRunName: string, seconds: number): void {
    const slowest = this.slowest
    if (slowest.length < RunRecorder.MAX_SLOWEST || seconds > slowest[slowest.length - 1]!.seconds) {
      slowest.push({ taskRunName, seconds })
      slowest.sort((a, b) => b.seconds - a.seconds)
      if (slowest.length > RunRecorder.MAX_SLOWEST) slowest.pop()
    }
  }

  get wallSeconds(): number {
    return ((this.endedAt ?? Date.now()) - this.startedAt) / 1000
  }
}
