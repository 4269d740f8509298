import type { FlowRunInfo, RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'

export interface RunFailure {
  readonly taskRunId: string
  readonly taskRunName: string
  readonly state: State
  readonly attempts: number
}

/** A run that failed an attempt and was retried: the errors of its failed attempts, and how it ended. */
export interface RetriedRun {
  readonly taskRunId: string
  readonly taskRunName: string
  /** The failed attempts (the first `RunRecorder.MAX_ATTEMPT_ERRORS`). */
  readonly attempts: { readonly attempt: number; readonly error: Error | undefined; readonly message: string | undefined }[]
  retries: number
  final: State | undefined
}

export interface SlowRun {
  readonly taskRunName: string
  readonly seconds: number
}

/**
 * Keeps what a summary needs from the event stream, in constant memory per run: counts by
 * final state, the slowest runs, the first failures, NotReady runs and retried runs, and the
 * names of the runs that did not complete (so a NotReady run can name its root cause).
 */
export class RunRecorder {
  readonly counts = new Map<string, number>()
  readonly failures: RunFailure[] = []
  failureCount = 0
  readonly notReady: RunFailure[] = []
  notReadyCount = 0
  readonly retried = new Map<string, RetriedRun>()
  /** Runs with at least one retry, counted past `MAX_RETRIED` too. */
  retriedCount = 0
  /** Task runs that ended other than Completed: id → name and final state name. */
  readonly unsuccessful = new Map<string, { name: string; stateName: string }>()
  slowest: SlowRun[] = []
  taskRuns = 0
  flowRun: FlowRunInfo | undefined
  readonly startedAt = Date.now()
  endedAt: number | undefined
  static readonly MAX_FAILURES = 20
  static readonly MAX_RETRIED = 20
  static readonly MAX_ATTEMPT_ERRORS = 5
  static readonly MAX_UNSUCCESSFUL = 10_000
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
    if (state.name === 'AwaitingRetry') return this.#retry(taskRun.id, taskRun.name, taskRun.attempt, state)
    if (!isSettled(state)) return
    this.counts.set(state.name, (this.counts.get(state.name) ?? 0) + 1)
    const started = taskRun.startTime
    if (started !== undefined) this.#noteDuration(taskRun.name, (state.timestamp - started) / 1000)
    const retried = this.retried.get(taskRun.id)
    if (retried) retried.final = state
    if (state.type === 'Completed') return
    if (this.unsuccessful.size < RunRecorder.MAX_UNSUCCESSFUL) this.unsuccessful.set(taskRun.id, { name: taskRun.name, stateName: state.name })
    const record = { taskRunId: taskRun.id, taskRunName: taskRun.name, state, attempts: taskRun.attempt }
    if (state.type === 'Failed' || state.type === 'Crashed') {
      this.failureCount++
      if (this.failures.length < RunRecorder.MAX_FAILURES) this.failures.push(record)
    } else if (state.name === 'NotReady') {
      this.notReadyCount++
      if (this.notReady.length < RunRecorder.MAX_FAILURES) this.notReady.push(record)
    }
  }

  #retry(taskRunId: string, taskRunName: string, attempt: number, state: State): void {
    let run = this.retried.get(taskRunId)
    if (!run) {
      this.retriedCount++
      if (this.retried.size >= RunRecorder.MAX_RETRIED) return
      run = { taskRunId, taskRunName, attempts: [], retries: 0, final: undefined }
      this.retried.set(taskRunId, run)
    }
    run.retries++
    if (run.attempts.length < RunRecorder.MAX_ATTEMPT_ERRORS) run.attempts.push({ attempt, error: state.error, message: state.message })
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
