import type { Writable } from 'node:stream'
import { Chalk, type ChalkInstance } from 'chalk'
import type { RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import type { RunRecorder } from './recorder.ts'

export interface PlainRendererOptions {
  /** Colour the state names. @default chalk's detection (NO_COLOR, FORCE_COLOR, TTY) */
  color?: boolean
}

const pad2 = (n: number) => String(n).padStart(2, '0')
export function clock(timestamp: number): string {
  const d = new Date(timestamp)
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

export function colorState(chalk: ChalkInstance, name: string, type: State['type']): string {
  switch (type) {
    case 'Completed':
      return chalk.green(name)
    case 'Failed':
    case 'Crashed':
      return chalk.red(name)
    case 'Cancelled':
      return chalk.yellow(name)
    case 'Running':
      return chalk.cyan(name)
    default:
      return name === 'NotReady' ? chalk.yellow(name) : chalk.dim(name)
  }
}

function stateDetail(state: State, attempt: number): string {
  if (state.name === 'AwaitingRetry') {
    const wait = Math.max(0, ((state.scheduledTime ?? state.timestamp) - state.timestamp) / 1000)
    return ` attempt ${attempt} failed: ${state.message ?? ''}; retrying in ${wait.toFixed(1)} s`
  }
  if (state.name === 'Retrying') return ` attempt ${attempt}`
  return state.message ? `: ${state.message}` : ''
}

/** One timestamped line per state change, no cursor codes: for pipes, files and CI logs. */
export class PlainRenderer {
  readonly #out: Writable
  readonly #chalk: ChalkInstance

  constructor(out: Writable, options: PlainRendererOptions = {}) {
    this.#out = out
    this.#chalk = options.color === undefined ? new Chalk() : new Chalk({ level: options.color ? 1 : 0 })
  }

  onEvent = (event: RunEvent): void => {
    const c = this.#chalk
    switch (event.kind) {
      case 'flow-run-state':
        if (event.state.name === 'Pending') return
        this.#out.write(`${c.dim(clock(event.state.timestamp))} flow run ${c.bold(event.flowRun.name)} ${colorState(c, event.state.name, event.state.type)}\n`)
        return
      case 'task-run-state': {
        const { taskRun, state } = event
        this.#out.write(`${c.dim(clock(state.timestamp))} ${taskRun.name} ${colorState(c, state.name, state.type)}${stateDetail(state, taskRun.attempt)}\n`)
        return
      }
      case 'log': {
        const who = event.taskRunName ?? 'flow'
        const line = event.level === 'error' ? c.red(event.message) : event.level === 'warning' ? c.yellow(event.message) : event.message
        this.#out.write(`${c.dim(clock(event.timestamp))} ${c.dim(`${who} |`)} ${line}\n`)
        return
      }
    }
  }

  /** The end of the run: the flow's outcome, failures, slowest runs and one line of counts. */
  summary(recorder: RunRecorder, flowState: State | undefined): void {
    const c = this.#chalk
    const lines: string[] = ['']
    for (const failure of recorder.failures) {
      const attempts = failure.attempts === 1 ? '1 attempt' : `${failure.attempts} attempts`
      lines.push(`${c.red('✗')} ${failure.taskRunName} ${colorState(c, failure.state.name, failure.state.type)} after ${attempts}: ${failure.state.message ?? ''}`)
    }
    if (recorder.failureCount > recorder.failures.length) lines.push(`  … and ${recorder.failureCount - recorder.failures.length} more failures`)
    if (recorder.slowest.length > 0) {
      lines.push(`slowest: ${recorder.slowest.map((s) => `${s.taskRunName} ${s.seconds.toFixed(2)} s`).join(', ')}`)
    }
    if (flowState) {
      const name = recorder.flowRun?.name ?? 'flow run'
      const why = flowState.type === 'Completed' ? '' : `: ${flowState.message ?? ''}`
      lines.push(`flow run ${c.bold(name)} ${colorState(c, flowState.name, flowState.type)}${why}`)
    }
    const counts = [...recorder.counts.entries()].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${n} ${name}`)
    const total = `${recorder.taskRuns} task run${recorder.taskRuns === 1 ? '' : 's'}`
    lines.push(`${total}${counts.length ? `: ${counts.join(', ')}` : ''} in ${recorder.wallSeconds.toFixed(2)} s`)
    this.#out.write(`${lines.join('\n')}\n`)
  }
}
