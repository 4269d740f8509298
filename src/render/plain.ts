import { attemptEnded } from '../errors.ts'
import type { Writable } from 'node:stream'
import { Chalk, type ChalkInstance } from 'chalk'
import type { LogLevel, RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { RunRecorder } from './recorder.ts'
import type { Renderer } from './renderer.ts'
import { colorState } from './style.ts'
import { errorHeadline } from './failure.ts'
import type { SummaryOptions } from './summary.ts'
import { formatSummary, notReadyReason } from './summary.ts'

export interface PlainRendererOptions {
  /** Colour the state names. @default chalk's detection (NO_COLOR, FORCE_COLOR, TTY) */
  color?: boolean
  /**
   * Thins the lines: `debug` and `info` show every state change; `warning` only retries,
   * failures, crashes, cancellations and NotReady; `error` only failures and crashes.
   * Log lines below the level are dropped. @default 'info'
   */
  logLevel?: LogLevel
  /** Only failures and the summary (without the flow's return value). @default false */
  quiet?: boolean
  /** Whole stacks in the summary. @default false */
  debug?: boolean
}

const pad2 = (n: number) => String(n).padStart(2, '0')
export function clock(timestamp: number): string {
  const d = new Date(timestamp)
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

/** What follows a state's name on its line: the error's class and message, a retry's delay. */
export function stateDetail(state: State, attempt: number): string {
  const message = state.error ? errorHeadline(state.error) : (state.message ?? '')
  if (state.name === 'AwaitingRetry') {
    const wait = Math.max(0, ((state.scheduledTime ?? state.timestamp) - state.timestamp) / 1000)
    return ` attempt ${attempt} ${attemptEnded(state.error)}: ${message}; retrying in ${wait.toFixed(1)} s`
  }
  // A retry with no delay goes straight to Retrying, carrying the failed attempt's error.
  if (state.name === 'Retrying') return state.error ? ` ${state.message ?? ''}` : ` attempt ${attempt}`
  return message ? `: ${message}` : ''
}

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 }

/** The level a state change is logged at, for `--log-level` thinning. */
export function stateLevel(state: State): LogLevel {
  if (state.type === 'Failed' || state.type === 'Crashed') return 'error'
  if (state.type === 'Cancelled' || state.name === 'NotReady' || state.name === 'AwaitingRetry') return 'warning'
  if (state.name === 'Retrying' && state.error) return 'warning'
  return 'info'
}

/** One timestamped line per state change, no cursor codes: for pipes, files and CI logs. */
export class PlainRenderer implements Renderer {
  readonly #out: Writable
  readonly #chalk: ChalkInstance
  readonly #min: number
  readonly #quiet: boolean
  readonly #summary: SummaryOptions
  /** Runs that did not complete, so a NotReady line can name its root cause. */
  readonly #unsuccessful = new Map<string, { name: string; stateName: string }>()

  constructor(out: Writable, options: PlainRendererOptions = {}) {
    this.#out = out
    this.#summary = { debug: options.debug ?? false, showResult: !options.quiet }
    this.#chalk = options.color === undefined ? new Chalk() : new Chalk({ level: options.color ? 1 : 0 })
    this.#quiet = options.quiet ?? false
    this.#min = this.#quiet ? LEVELS.error : LEVELS[options.logLevel ?? 'info']
  }

  onEvent = (event: RunEvent): void => {
    const c = this.#chalk
    switch (event.kind) {
      case 'flow-run-state':
        if (event.state.name === 'Pending' || this.#quiet) return
        {
          // Which runner runs a flow run's tasks: said once, when it starts.
          const { flowRun, state } = event
          const kind = flowRun.parentFlowRunId === undefined ? 'flow run' : 'subflow run'
          const runner = state.type === 'Running' && state.name === 'Running' ? c.dim(` on ${flowRun.taskRunnerName}`) : ''
          this.#out.write(`${c.dim(clock(state.timestamp))} ${kind} ${c.bold(flowRun.name)} ${colorState(c, state.name, state.type)}${runner}\n`)
        }
        return
      case 'task-run-state': {
        const { taskRun, state } = event
        if (state.type !== 'Completed' && isSettled(state) && this.#unsuccessful.size < 10_000) this.#unsuccessful.set(taskRun.id, { name: taskRun.name, stateName: state.name })
        if (LEVELS[stateLevel(state)] < this.#min) return
        const detail = state.name === 'NotReady' ? `: ${notReadyReason(state, this.#unsuccessful)}` : stateDetail(state, taskRun.attempt)
        this.#out.write(`${c.dim(clock(state.timestamp))} ${taskRun.name} ${colorState(c, state.name, state.type)}${detail}\n`)
        return
      }
      case 'log': {
        if (LEVELS[event.level] < this.#min) return
        const who = event.taskRunName ?? 'flow'
        const line = event.level === 'error' ? c.red(event.message) : event.level === 'warning' ? c.yellow(event.message) : event.message
        this.#out.write(`${c.dim(clock(event.timestamp))} ${c.dim(`${who} |`)} ${line}\n`)
        return
      }
    }
  }

  async start(): Promise<void> {}

  async end(recorder: RunRecorder, flowState: State | undefined): Promise<void> {
    this.#out.write(formatSummary(recorder, flowState, this.#chalk, this.#summary))
  }

  abort(): void {}
}
