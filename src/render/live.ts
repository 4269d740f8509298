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
  readonly counts: Map<string, number>
  readonly running: Map<string, { name: string; since: number; attempt: number }>
  failures: { name: string; state: State; attempts: number }[]
  failureCount: number
}

type Wrapper = ListrTaskWrapper<unknown, any, any>
interface Row {
  wrapper: Wrapper | undefined
  title: string
  output: string
  finish: (error?: Error) => void
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
  readonly #groupOfRun = new Map<string, Group>()
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
      return
    }
    const { taskRun, state } = event
    let group = this.#groupOfRun.get(taskRun.id)
    if (!group) {
      const key = taskRun.mapId ?? taskRun.taskName
      group = this.#groups.get(key)
      if (!group) {
        group = { label: taskRun.mapId ? `${taskRun.taskName} (map)` : taskRun.taskName, total: 0, counts: new Map(), running: new Map(), failures: [], failureCount: 0 }
        this.#groups.set(key, group)
      }
      this.#groupOfRun.set(taskRun.id, group)
      group.total++
    }
    if (state.type === 'Running') group.running.set(taskRun.id, { name: taskRun.name, since: state.timestamp, attempt: taskRun.attempt })
    else group.running.delete(taskRun.id)
    if (isSettled(state)) {
      this.#groupOfRun.delete(taskRun.id)
      group.counts.set(state.name, (group.counts.get(state.name) ?? 0) + 1)
      if (state.type === 'Failed' || state.type === 'Crashed') {
        group.failureCount++
        if (group.failures.length < this.#detailLines) group.failures.push({ name: taskRun.name, state, attempts: taskRun.attempt })
      }
    }
  }

  async start(): Promise<void> {
    const row = (): Row => ({ wrapper: undefined, title: '', output: '', finish: () => undefined })
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
    if (!row?.wrapper) return
    if (row.title !== title) {
      row.title = title
      row.wrapper.title = title
    }
    if (row.output !== output) {
      row.output = output
      row.wrapper.output = output
    }
  }

  #groupTitle(group: Group): string {
    const c = this.#chalk
    const done = [...group.counts.values()].reduce((a, b) => a + b, 0)
    const parts = [`${done}/${group.total}`]
    if (group.running.size) parts.push(c.cyan(`${group.running.size} running`))
    const completed = group.counts.get('Completed') ?? 0
    if (completed) parts.push(c.green(`${completed} completed`))
    for (const [name, n] of group.counts) {
      if (name === 'Completed') continue
      parts.push(name === 'Failed' || name === 'Crashed' || name === 'TimedOut' ? c.red(`${n} ${name.toLowerCase()}`) : c.yellow(`${n} ${name}`))
    }
    return `${c.bold(group.label)} ${bar(done, group.total)} ${parts.join(' · ')}`
  }

  #groupDetail(group: Group, now: number): string {
    const c = this.#chalk
    const lines: string[] = []
    const running = [...group.running.values()].sort((a, b) => a.since - b.since)
    const failureLines = Math.min(group.failures.length, this.#detailLines)
    const runningLines = this.#detailLines - failureLines
    for (const run of running.slice(0, runningLines)) {
      lines.push(`${run.name} running ${seconds(now - run.since)}${run.attempt > 1 ? ` (attempt ${run.attempt})` : ''}`)
    }
    if (running.length > runningLines && runningLines > 0) lines[lines.length - 1] += c.dim(` … +${running.length - runningLines} running`)
    for (const failure of group.failures.slice(0, failureLines)) {
      const retries = failure.attempts > 1 ? ` after ${failure.attempts} attempts` : ''
      lines.push(c.red(`✗ ${failure.name} ${failure.state.name}${retries}: ${failure.state.message ?? ''}`))
    }
    if (group.failureCount > failureLines && failureLines > 0) lines[lines.length - 1] += c.dim(` … +${group.failureCount - failureLines} failed`)
    return lines.join('\n')
  }

  #draw(force = false): void {
    if (!this.#dirty && !force && [...this.#groups.values()].every((g) => g.running.size === 0)) return
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
      const running = folded.reduce((n, g) => n + g.running.size, 0)
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
