import { Chalk, type ChalkInstance } from 'chalk'
import { Listr } from 'listr2'
import type { ListrTaskWrapper } from 'listr2'
import type { RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import type { RunRecorder } from './recorder.ts'
import type { Renderer } from './renderer.ts'
import { formatSummary } from './summary.ts'

export interface LiveRendererOptions {
  color?: boolean
  /** Terminal height, to keep the view on one screen. @default process.stdout.rows or 24 */
  rows?: number
  /** Milliseconds between redraws. @default 100 */
  intervalMs?: number
}

/** Runs of one task (or of one `map()` call): one row of the view however many runs it has. */
interface Group {
  readonly label: string
  total: number
  /** Runs that ended Completed (the common case, counted apart). */
  completed: number
  /** Runs that ended otherwise, by state name. */
  readonly counts: Map<string, number>
  /** How many runs are running now. */
  running: number
  /**
   * A few of the running runs, to show with their elapsed time (bounded: events stay O(1)). Keyed
   * by the run object: a lookup by identity, where an id string would be hashed for every run.
   */
  readonly sample: Map<object, { name: string; since: number; attempt: number }>
  failures: { name: string; state: State; attempts: number }[]
  failureCount: number
}

type Wrapper = ListrTaskWrapper<unknown, any, any>
interface Row {
  wrapper: Wrapper | undefined
  title: string
  output: string
  /** Ends the row's listr task; if listr has not started it yet, it ends as soon as it starts. */
  finish: (error?: Error) => void
  /** Set when `finish` came before listr started the row's task. */
  early?: { error: Error | undefined }
}

const LOG_LINES = 3
const bar = (done: number, total: number, width = 16) => {
  const filled = total === 0 ? 0 : Math.round((done / total) * width)
  return `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`
}
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/**
 * The live view on a terminal, drawn by listr2: a row for the flow run, one row per task (a map
 * folds into its task's row) with counts and progress, the runs in progress with their elapsed
 * time and the failures with their error under it, the latest task output at the bottom.
 * The number of rows is bounded by the terminal's height whatever the number of runs, and the
 * model is redrawn at most every `intervalMs`: events only update counters.
 */
export class LiveRenderer implements Renderer {
  readonly #chalk: ChalkInstance
  readonly #groups = new Map<string, Group>()
  readonly #logs: string[] = []
  readonly #maxGroups: number
  readonly #detailLines: number
  readonly #intervalMs: number
  #flow: { name: string; state: State; started: number } | undefined
  #flowRow: Row | undefined
  #groupRows: Row[] = []
  #foldRow: Row | undefined
  #listr: Promise<unknown> | undefined
  #timer: NodeJS.Timeout | undefined
  #dirty = true
  #lastKey: string | undefined
  #lastGroup: Group | undefined

  constructor(options: LiveRendererOptions = {}) {
    this.#chalk = options.color === undefined ? new Chalk() : new Chalk({ level: options.color ? 1 : 0 })
    const rows = Math.max(12, options.rows ?? process.stdout.rows ?? 24)
    // Budget: flow row, fold row, a blank and the log lines, the summary's first lines; the rest
    // is shared by the task rows, each with its title and detail lines.
    this.#detailLines = rows >= 30 ? 3 : 2
    this.#maxGroups = Math.max(2, Math.min(8, Math.floor((rows - 4 - LOG_LINES) / (1 + this.#detailLines))))
    this.#intervalMs = options.intervalMs ?? 100
  }

  onEvent = (event: RunEvent): void => {
    this.#dirty = true
    if (event.kind === 'task-run-state') return this.#taskRunState(event)
    if (event.kind === 'flow-run-state') {
      if (!this.#flow || event.flowRun.parentFlowRunId === undefined) {
        this.#flow = { name: event.flowRun.name, state: event.state, started: this.#flow?.started ?? event.state.timestamp }
      }
      return
    }
    if (event.kind === 'log') {
      const who = event.taskRunName ?? 'flow'
      this.#logs.push(`${this.#chalk.dim(`${who} |`)} ${event.message.split('\n')[0]}`)
      if (this.#logs.length > LOG_LINES) this.#logs.shift()
    }
  }

  /** The hot path: one call per state change of every run. Counters only; drawing reads them later. */
  #taskRunState({ taskRun, state, previous }: Extract<RunEvent, { kind: 'task-run-state' }>): void {
    const key = taskRun.mapId ?? taskRun.taskName
    // Runs of one map come in long streaks: remember the last group.
    let group = key === this.#lastKey ? this.#lastGroup : this.#groups.get(key)
    if (!group) {
      group = {
        label: taskRun.mapId ? `${taskRun.taskName} (map)` : taskRun.taskName,
        total: 0,
        completed: 0,
        counts: new Map(),
        running: 0,
        sample: new Map(),
        failures: [],
        failureCount: 0,
      }
      this.#groups.set(key, group)
    }
    this.#lastKey = key
    this.#lastGroup = group
    if (state.type === 'Pending' && state.name === 'Pending') {
      group.total++
      return
    }
    // A run leaves Running with the very next state, whatever it is.
    if (previous !== undefined && previous.type === 'Running') {
      group.running--
      if (group.sample.size > 0) group.sample.delete(taskRun)
    }
    if (state.type === 'Running') {
      group.running++
      if (group.sample.size < this.#detailLines) group.sample.set(taskRun, { name: taskRun.name, since: state.timestamp, attempt: taskRun.attempt })
      return
    }
    if (state.type === 'Completed') {
      group.completed++
      return
    }
    if (isSettled(state)) {
      group.counts.set(state.name, (group.counts.get(state.name) ?? 0) + 1)
      if (state.type === 'Failed' || state.type === 'Crashed') {
        group.failureCount++
        if (group.failures.length < this.#detailLines) group.failures.push({ name: taskRun.name, state, attempts: taskRun.attempt })
      }
    }
  }

  async start(): Promise<void> {
    const row = (): Row => {
      const r: Row = { wrapper: undefined, title: '', output: '', finish: (error) => (r.early = { error }) }
      return r
    }
    this.#flowRow = row()
    this.#groupRows = Array.from({ length: this.#maxGroups }, row)
    this.#foldRow = row()
    const rows = [this.#flowRow, ...this.#groupRows, this.#foldRow]
    const listr = new Listr(
      rows.map((r, index) => ({
        task: (_: unknown, wrapper: Wrapper) =>
          new Promise<void>((resolve, reject) => {
            r.wrapper = wrapper
            r.finish = (error) => (error ? reject(error) : resolve())
            // A run can end before listr2 has even started drawing (it loads its parts lazily).
            if (r.early) {
              wrapper.title = r.title
              r.finish(r.early.error)
            }
          }),
        rendererOptions: index === 0 ? { bottomBar: 1, persistentOutput: false } : { outputBar: 1, persistentOutput: true },
      })),
      {
        concurrent: true,
        exitOnError: false,
        registerSignalListeners: false,
        renderer: 'default',
        rendererOptions: { lazy: true, formatOutput: 'truncate', collapseErrors: true, showErrorMessage: true },
      },
    )
    this.#listr = listr.run().catch(() => undefined)
    this.#timer = setInterval(() => this.#draw(), this.#intervalMs)
    this.#timer.unref()
  }

  #set(row: Row | undefined, title: string, output: string): void {
    if (!row) return
    if (row.title !== title) {
      row.title = title
      if (row.wrapper) row.wrapper.title = title
    }
    if (row.output !== output) {
      row.output = output
      if (row.wrapper) row.wrapper.output = output
    }
  }

  #groupTitle(group: Group): string {
    const c = this.#chalk
    const done = [...group.counts.values()].reduce((a, b) => a + b, group.completed)
    const parts = [`${done}/${group.total}`]
    if (group.running) parts.push(c.cyan(`${group.running} running`))
    const { completed } = group
    if (completed) parts.push(c.green(`${completed} completed`))
    for (const [name, n] of group.counts) {
      parts.push(name === 'Failed' || name === 'Crashed' || name === 'TimedOut' ? c.red(`${n} ${name.toLowerCase()}`) : c.yellow(`${n} ${name}`))
    }
    return `${c.bold(group.label)} ${bar(done, group.total)} ${parts.join(' · ')}`
  }

  #groupDetail(group: Group, now: number): string {
    const c = this.#chalk
    const lines: string[] = []
    const running = [...group.sample.values()].sort((a, b) => a.since - b.since)
    const failureLines = Math.min(group.failures.length, this.#detailLines)
    const runningLines = this.#detailLines - failureLines
    for (const run of running.slice(0, runningLines)) {
      lines.push(`${run.name} running ${seconds(now - run.since)}${run.attempt > 1 ? ` (attempt ${run.attempt})` : ''}`)
    }
    const shown = Math.min(running.length, runningLines)
    if (group.running > shown && shown > 0) lines[lines.length - 1] += c.dim(` … +${group.running - shown} running`)
    for (const failure of group.failures.slice(0, failureLines)) {
      const retries = failure.attempts > 1 ? ` after ${failure.attempts} attempts` : ''
      lines.push(c.red(`✗ ${failure.name} ${failure.state.name}${retries}: ${failure.state.message ?? ''}`))
    }
    if (group.failureCount > failureLines && failureLines > 0) lines[lines.length - 1] += c.dim(` … +${group.failureCount - failureLines} failed`)
    return lines.join('\n')
  }

  #draw(force = false): void {
    if (!this.#dirty && !force && [...this.#groups.values()].every((g) => g.running === 0)) return
    this.#dirty = false
    const c = this.#chalk
    const now = Date.now()
    if (this.#flow) {
      const { name, state, started } = this.#flow
      const elapsed = seconds((isSettled(state) ? state.timestamp : now) - started)
      this.#set(this.#flowRow, `flow run ${c.bold(name)} ${state.name} · ${elapsed}`, this.#logs.join('\n'))
    }
    const groups = [...this.#groups.values()]
    const shown = groups.slice(0, this.#maxGroups)
    shown.forEach((group, i) => this.#set(this.#groupRows[i], this.#groupTitle(group), this.#groupDetail(group, now)))
    const folded = groups.slice(this.#maxGroups)
    if (folded.length > 0) {
      const runs = folded.reduce((n, g) => n + g.total, 0)
      const running = folded.reduce((n, g) => n + g.running, 0)
      const failed = folded.reduce((n, g) => n + g.failureCount, 0)
      this.#set(this.#foldRow, c.dim(`… ${folded.length} more tasks: ${runs} runs, ${running} running, ${failed} failed`), '')
    }
  }

  async end(recorder: RunRecorder, flowState: State | undefined): Promise<void> {
    clearInterval(this.#timer)
    this.#draw(true)
    const groups = [...this.#groups.values()]
    this.#flowRow?.finish(flowState && flowState.type !== 'Completed' ? new Error(this.#flowRow.title) : undefined)
    this.#groupRows.forEach((row, i) => {
      const group = groups[i]
      row.finish(group && group.failureCount > 0 ? new Error(row.title) : undefined)
    })
    this.#foldRow?.finish()
    await this.#listr
    process.stdout.write(formatSummary(recorder, flowState, this.#chalk))
  }

  abort(): void {
    clearInterval(this.#timer)
    // listr2 hides the cursor while it draws; give it back before a forced exit.
    process.stdout.write('\u001B[?25h\n')
  }
}
