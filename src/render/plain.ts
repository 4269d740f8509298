import type { Writable } from 'node:stream'
import { Chalk, type ChalkInstance } from 'chalk'
import type { LogLevel, RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import type { RunRecorder } from './recorder.ts'
import type { Renderer } from './renderer.ts'
import { colorState } from './style.ts'
import { formatSummary } from './summary.ts'

export interface PlainRendererOptions {
  /** Colour the state names. @default chalk's detection (NO_COLOR, FORCE_COLOR, TTY) */
  color?: boolean
  /**
   * Thins the lines: `debug` and `info` show every state change; `warning` only retries,
   * failures, crashes, cancellations and NotReady; `error` only failures and crashes.
   * Log lines below the level are dropped. @default 'info'
   */
  logLevel?: LogLevel
  /** Only failures and the summary. @default false */
  quiet?: boolean
}

const pad2 = (n: number) => String(n).padStart(2, '0')
export function clock(timestamp: number): string {
  const d = new Date(timestamp)
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

export function stateDetail(state: State, attempt: number): string {
  if (state.name === 'AwaitingRetry') {
    const wait = Math.max(0, ((state.scheduledTime ?? state.timestamp) - state.timestamp) / 1000)
    return ` attempt ${attempt} failed: ${state.message ?? ''}; retrying in ${wait.toFixed(1)} s`
  }
  // A retry with no delay goes straight to Retrying, carrying the failed attempt's error.
  if (state.name === 'Retrying') return state.error ? ` ${state.message ?? ''}` : ` attempt ${attempt}`
  return state.message ? `: ${state.message}` : ''
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

  constructor(out: Writable, options: PlainRendererOptions = {}) {
    this.#out = out
    this.#chalk = options.color === undefined ? new Chalk() : new Chalk({ level: options.color ? 1 : 0 })
    this.#quiet = options.quiet ?? false
    this.#min = this.#quiet ? LEVELS.error : LEVELS[options.logLevel ?? 'info']
  }

  onEvent = (event: RunEvent): void => {
    const c = this.#chalk
    switch (event.kind) {
      case 'flow-run-state':
        if (event.state.name === 'Pending' || this.#quiet) return
        this.#out.write(`${c.dim(clock(event.state.timestamp))} flow run ${c.bold(event.flowRun.name)} ${colorState(c, event.state.name, event.state.type)}\n`)
        return
      case 'task-run-state': {
        const { taskRun, state } = event
        if (LEVELS[stateLevel(state)] < this.#min) return
        this.#out.write(`${c.dim(clock(state.timestamp))} ${taskRun.name} ${colorState(c, state.name, state.type)}${stateDetail(state, taskRun.attempt)}\n`)
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
    this.#out.write(formatSummary(recorder, flowState, this.#chalk))
  }

  abort(): void {}
}
