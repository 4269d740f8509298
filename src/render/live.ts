import { attemptEnded } from '../errors.ts'
import { Chalk, type ChalkInstance } from 'chalk'
import type { FlowRunInfo, RunEvent } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isSettled } from '../engine/states.ts'
import { errorHeadline, plural, stateWord } from './failure.ts'
import type { RunRecorder } from './recorder.ts'
import type { Renderer } from './renderer.ts'
import { formatSummary } from './summary.ts'
import { TerminalArea } from './terminal-area.ts'

export interface LiveRendererOptions {
  color?: boolean
  /** Terminal height, to keep the view on one screen. @default process.stdout.rows or 24 */
  rows?: number
  /** Milliseconds between redraws. @default 100 */
  intervalMs?: number
  /** Whole stacks in the summary. @default false */
  debug?: boolean
  /** Print the flow's return value after the run. @default true */
  showResult?: boolean
}

/** Runs of one task (or of one `map()` call) in one flow run: one row however many runs it has. */
interface Group {
  readonly label: string
  total: number
  /** Runs that ended Completed (the common case, counted apart), Cached ones included. */
  completed: number
  /** Of those, the ones a kept value stood in for (Cached). */
  cached: number
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
  /** Failed attempts that were retried, and the latest of them. */
  retries: number
  lastRetry: { name: string; attempt: number; state: State } | undefined
}

/** A flow run's row, with its task rows and its subflow runs under it. */
interface FlowRow {
  readonly info: FlowRunInfo | undefined
  state: State | undefined
  started: number | undefined
  readonly groups: Map<string, Group>
  readonly children: FlowRow[]
}

/** A row of the view with its detail lines, and how much it matters when rows must fold. */
interface Entry {
  title: string
  details: string[]
  /** 0: running or failed (never folded while anything else can be); 1: waiting, not ready or cancelled; 2: completed. */
  priority: number
  /** The root flow run's row is always shown. */
  pinned: boolean
  runs: number
  running: number
  failed: number
  kind: 'task' | 'subflow'
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** Final states from worst to best: a row shows its worst. */
const SEVERITY = ['Crashed', 'Failed', 'TimedOut', 'NotReady', 'Cancelled', 'Completed']
const severity = (name: string, type: State['type']) => {
  const index = SEVERITY.indexOf(name)
  return index >= 0 ? index : type === 'Failed' ? 1 : type === 'Crashed' ? 0 : type === 'Cancelled' ? 4 : 5
}

/** The mark and colour of a state: each final state looks different; ✔ only for Completed. */
function mark(c: ChalkInstance, name: string, type: State['type'], spin: string): string {
  if (type === 'Completed') return c.green('✔')
  if (name === 'TimedOut') return c.red('⧗')
  if (type === 'Crashed') return c.magenta('‼')
  if (type === 'Failed') return c.red('✗')
  if (name === 'NotReady') return c.yellow('○')
  if (type === 'Cancelled') return c.gray('⊘')
  return c.cyan(spin)
}

const colour = (c: ChalkInstance, name: string, type: State['type']) =>
  type === 'Completed' ? c.green : name === 'TimedOut' || type === 'Failed' ? c.red : type === 'Crashed' ? c.magenta : name === 'NotReady' ? c.yellow : type === 'Cancelled' ? c.gray : c.cyan

/**
 * The live view on a terminal: a row for the flow run, one row per task (a map folds into its
 * task's row) with counts and progress, the runs in progress with their elapsed time, failures
 * and retried attempts with their error under it; subflow runs as rows under their parent with
 * their runner. What tasks and flows print goes above the view and stays in the scrollback.
 * The view stays on one screen whatever the number of runs (completed rows fold first, running
 * and failed rows stay), and is redrawn at most every `intervalMs`: events only update counters.
 */
export class LiveRenderer implements Renderer {
  readonly #chalk: ChalkInstance
  readonly #rows: number | undefined
  readonly #detailLines: number
  readonly #intervalMs: number
  readonly #debug: boolean
  readonly #showResult: boolean
  readonly #flows = new Map<string, FlowRow>()
  /** Task runs outside any flow run. */
  readonly #loose: FlowRow = { info: undefined, state: undefined, started: undefined, groups: new Map(), children: [] }
  #root: FlowRow | undefined
  #logs: string[] = []
  #area: TerminalArea | undefined
  #timer: NodeJS.Timeout | undefined
  #frame = 0
  #dirty = true
  #lastKey: string | undefined
  #lastFlowRunId: string | undefined
  #lastGroup: Group | undefined

  constructor(options: LiveRendererOptions = {}) {
    this.#chalk = options.color === undefined ? new Chalk() : new Chalk({ level: options.color ? 1 : 0 })
    this.#rows = options.rows
    this.#detailLines = (options.rows ?? process.stdout.rows ?? 24) >= 30 ? 3 : 2
    this.#intervalMs = options.intervalMs ?? 100
    this.#debug = options.debug ?? false
    this.#showResult = options.showResult ?? true
  }

  get #height(): number {
    return Math.max(6, this.#rows ?? process.stdout.rows ?? 24)
  }

  onEvent = (event: RunEvent): void => {
    this.#dirty = true
    if (event.kind === 'task-run-state') return this.#taskRunState(event)
    if (event.kind === 'flow-run-state') return this.#flowRunState(event.flowRun, event.state)
    if (event.kind === 'log') {
      const who = this.#chalk.dim(`${event.taskRunName ?? 'flow'} |`)
      const paint = event.level === 'error' ? this.#chalk.red : event.level === 'warning' ? this.#chalk.yellow : (s: string) => s
      for (const line of event.message.split('\n')) this.#logs.push(`${who} ${paint(line)}`)
    }
  }

  #flowRunState(info: FlowRunInfo, state: State): void {
    let row = this.#flows.get(info.id)
    if (!row) {
      row = { info, state, started: undefined, groups: new Map(), children: [] }
      this.#flows.set(info.id, row)
      const parent = info.parentFlowRunId === undefined ? undefined : this.#flows.get(info.parentFlowRunId)
      if (parent) parent.children.push(row)
      else if (!this.#root) this.#root = row
      else this.#root.children.push(row)
    }
    row.state = state
    if (state.type === 'Running' && row.started === undefined) row.started = state.timestamp
  }

  /** The hot path: one call per state change of every run. Counters only; drawing reads them later. */
  #taskRunState({ taskRun, state, previous }: Extract<RunEvent, { kind: 'task-run-state' }>): void {
    const key = taskRun.mapId ?? taskRun.taskName
    // Runs of one map come in long streaks: remember the last group.
    let group = key === this.#lastKey && taskRun.flowRunId === this.#lastFlowRunId ? this.#lastGroup : undefined
    if (!group) {
      const flow = (taskRun.flowRunId === undefined ? undefined : this.#flows.get(taskRun.flowRunId)) ?? this.#root ?? this.#loose
      group = flow.groups.get(key)
      if (!group) {
        group = {
          label: taskRun.mapId ? `${taskRun.taskName} (map)` : taskRun.taskName,
          total: 0,
          completed: 0,
          cached: 0,
          counts: new Map(),
          running: 0,
          sample: new Map(),
          failures: [],
          failureCount: 0,
          retries: 0,
          lastRetry: undefined,
        }
        flow.groups.set(key, group)
      }
      this.#lastKey = key
      this.#lastFlowRunId = taskRun.flowRunId
      this.#lastGroup = group
    }
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
      if (state.name === 'Cached') group.cached++
      return
    }
    if (state.name === 'AwaitingRetry') {
      group.retries++
      group.lastRetry = { name: taskRun.name, attempt: taskRun.attempt, state }
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
    this.#area = new TerminalArea(process.stdout)
    this.#area.start()
    this.#timer = setInterval(() => this.#draw(), this.#intervalMs)
    this.#timer.unref()
  }

  /** The worst final state among a group's runs, or undefined while none has ended otherwise than Completed. */
  #worst(group: Group): { name: string; type: State['type'] } | undefined {
    let worst: { name: string; type: State['type'] } | undefined
    for (const name of group.counts.keys()) {
      const type: State['type'] = name === 'NotReady' ? 'Pending' : name === 'Cancelled' ? 'Cancelled' : name === 'Crashed' ? 'Crashed' : 'Failed'
      if (!worst || severity(name, type) < severity(worst.name, worst.type)) worst = { name, type }
    }
    return worst
  }

  #groupEntry(group: Group, indent: string, now: number, spin: string): Entry {
    const c = this.#chalk
    let other = 0
    for (const n of group.counts.values()) other += n
    const done = group.completed + other
    const finished = done === group.total && group.running === 0
    const worst = this.#worst(group)
    const width = 16
    const filledOk = group.total === 0 ? 0 : Math.round((group.completed / group.total) * width)
    const filledBad = group.total === 0 ? 0 : Math.min(width - filledOk, Math.round((other / group.total) * width))
    const badColour = worst ? colour(c, worst.name, worst.type) : c.dim
    const bar = `${c.green('█'.repeat(filledOk))}${badColour('▒'.repeat(filledBad))}${c.dim('░'.repeat(width - filledOk - filledBad))}`
    const parts = [`${done}/${group.total}`]
    if (group.running) parts.push(c.cyan(`${group.running} running`))
    if (group.completed > group.cached) parts.push(c.green(`${group.completed - group.cached} completed`))
    if (group.cached) parts.push(c.green(`${group.cached} cached`))
    for (const [name, n] of group.counts) {
      const type = name === 'NotReady' ? 'Pending' : name === 'Cancelled' ? 'Cancelled' : name === 'Crashed' ? 'Crashed' : 'Failed'
      parts.push(colour(c, name, type)(`${n} ${stateWord(name)}`))
    }
    if (group.retries) parts.push(c.yellow(plural(group.retries, 'retry', 'retries')))
    const icon = finished ? (worst ? mark(c, worst.name, worst.type, spin) : mark(c, 'Completed', 'Completed', spin)) : mark(c, 'Running', 'Running', spin)
    const title = `${indent}${icon} ${c.bold(group.label)} ${bar} ${parts.join(' · ')}`

    const details: string[] = []
    const pad = `${indent}    `
    const running = [...group.sample.values()].sort((a, b) => a.since - b.since)
    const failureLines = Math.min(group.failures.length, this.#detailLines)
    const retryLine = group.lastRetry && group.running + (done < group.total ? 1 : 0) > 0 ? 1 : 0
    const runningLines = Math.max(0, this.#detailLines - failureLines - retryLine)
    for (const run of running.slice(0, runningLines)) {
      details.push(`${pad}${run.name} running ${seconds(now - run.since)}${run.attempt > 1 ? ` (attempt ${run.attempt})` : ''}`)
    }
    const shown = Math.min(running.length, runningLines)
    if (group.running > shown && shown > 0) details[details.length - 1] += c.dim(` … +${group.running - shown} running`)
    if (retryLine && group.lastRetry) {
      const { name, attempt, state } = group.lastRetry
      details.push(c.yellow(`${pad}↻ ${name} attempt ${attempt} ${attemptEnded(state.error)}: ${state.error ? errorHeadline(state.error) : (state.message ?? '')}`))
    }
    for (const failure of group.failures.slice(0, failureLines)) {
      const after = failure.attempts > 1 ? ` after ${plural(failure.attempts, 'attempt')}` : ''
      const message = failure.state.error ? errorHeadline(failure.state.error) : (failure.state.message ?? '')
      details.push(colour(c, failure.state.name, failure.state.type)(`${pad}${mark(c, failure.state.name, failure.state.type, spin)} ${failure.name} ${stateWord(failure.state.name)}${after}: ${message}`))
    }
    if (group.failureCount > failureLines && failureLines > 0) details[details.length - 1] += c.dim(` … +${group.failureCount - failureLines} failed`)
    const failed = group.failureCount
    const priority = group.running > 0 || failed > 0 ? 0 : !finished || worst ? 1 : 2
    return { title, details, priority, pinned: false, runs: group.total, running: group.running, failed, kind: 'task' }
  }

  #flowTitle(flow: FlowRow, indent: string, now: number, spin: string, isRoot: boolean): string {
    const c = this.#chalk
    const { info, state } = flow
    if (!info || !state) return ''
    const settled = isSettled(state) && state.type !== 'Scheduled'
    const icon = settled ? mark(c, state.name, state.type, spin) : mark(c, 'Running', 'Running', spin)
    const elapsed = flow.started === undefined ? '' : ` · ${seconds((settled ? state.timestamp : now) - flow.started)}`
    const name = colour(c, state.name, state.type)(state.name)
    return `${indent}${icon} ${isRoot ? 'flow run' : 'subflow run'} ${c.bold(info.name)} ${name}${elapsed} · ${c.dim(info.taskRunnerName)}`
  }

  /** Every row, the root flow run first, each flow run's tasks and then its subflow runs under it. */
  #entries(now: number, spin: string): Entry[] {
    const entries: Entry[] = []
    /** Adds a flow run's rows; returns the most important priority among them. */
    const walk = (flow: FlowRow, depth: number, isRoot: boolean): number => {
      const indent = '  '.repeat(depth)
      const own: Entry | undefined = flow.info
        ? { title: this.#flowTitle(flow, indent, now, spin, isRoot), details: [], priority: 2, pinned: isRoot, runs: 0, running: 0, failed: 0, kind: 'subflow' }
        : undefined
      if (own) entries.push(own)
      const inner = flow.info ? depth + 1 : depth
      let priority = flow.state && (!isSettled(flow.state) || flow.state.type !== 'Completed') ? 0 : 2
      for (const group of flow.groups.values()) {
        const entry = this.#groupEntry(group, '  '.repeat(inner), now, spin)
        entries.push(entry)
        priority = Math.min(priority, entry.priority)
      }
      for (const child of flow.children) priority = Math.min(priority, walk(child, inner, false))
      // A subflow row matters as much as what is under it, and as its own state.
      if (own && !isRoot) own.priority = priority
      return priority
    }
    if (this.#root) walk(this.#root, 0, true)
    walk(this.#loose, 0, false)
    return entries
  }

  /**
   * The rows that fit in `budget` lines: completed rows fold first, then waiting ones, then the
   * detail lines of running and failed rows; `keepFailed` keeps every failed row whatever the budget.
   */
  #layout(entries: Entry[], budget: number, keepFailed: boolean): string[] {
    const size = (e: Entry) => 1 + e.details.length
    let total = entries.reduce((n, e) => n + size(e), 0)
    const hidden = new Set<Entry>()
    if (total > budget) {
      const candidates = entries
        .map((e, index) => ({ e, index }))
        .filter(({ e }) => !e.pinned)
        .sort((a, b) => b.e.priority - a.e.priority || a.index - b.index)
      for (const { e } of candidates) {
        if (total + 1 <= budget) break
        if (e.priority === 0) {
          // Running and failed rows give up their detail lines before they fold.
          while (e.details.length > 0 && total + 1 > budget) {
            e.details.pop()
            total--
          }
          if (total + 1 <= budget) break
          if (keepFailed && e.failed > 0) continue
        }
        hidden.add(e)
        total -= size(e)
      }
    }
    const lines: string[] = []
    for (const e of entries) if (!hidden.has(e)) lines.push(e.title, ...e.details)
    if (hidden.size > 0) {
      const c = this.#chalk
      const folded = [...hidden]
      const tasks = folded.filter((e) => e.kind === 'task')
      const subflows = folded.length - tasks.length
      const what = [tasks.length ? plural(tasks.length, 'task row') : '', subflows ? plural(subflows, 'subflow run') : ''].filter(Boolean).join(' and ')
      const runs = tasks.reduce((n, e) => n + e.runs, 0)
      const running = tasks.reduce((n, e) => n + e.running, 0)
      const failed = tasks.reduce((n, e) => n + e.failed, 0)
      lines.push(c.dim(`… ${what} folded: ${plural(runs, 'task run')}, ${running} running, ${failed} failed`))
    }
    return lines
  }

  #frameLines(final: boolean): string[] {
    const now = Date.now()
    const spin = SPINNER[this.#frame++ % SPINNER.length]!
    const entries = this.#entries(now, spin)
    // The last frame is rows only: the summary under it shows each failure, once.
    if (final) for (const entry of entries) entry.details = []
    // One line stays free for the cursor, so the frame never scrolls the screen.
    return this.#layout(entries, this.#height - 1, final)
  }

  #takeLogs(): string[] {
    const logs = this.#logs
    this.#logs = []
    return logs
  }

  #draw(): void {
    if (!this.#area) return
    if (!this.#dirty && this.#logs.length === 0 && !this.#anythingRunning()) return
    this.#dirty = false
    this.#area.draw(this.#frameLines(false), this.#takeLogs())
  }

  #anythingRunning(): boolean {
    for (const flow of this.#flows.values()) {
      if (flow.state && !isSettled(flow.state)) return true
    }
    return false
  }

  async end(recorder: RunRecorder, flowState: State | undefined): Promise<void> {
    clearInterval(this.#timer)
    this.#area?.stop(this.#frameLines(true), this.#takeLogs())
    this.#area = undefined
    process.stdout.write(formatSummary(recorder, flowState, this.#chalk, { debug: this.#debug, showResult: this.#showResult }))
  }

  abort(): void {
    clearInterval(this.#timer)
    if (this.#area) {
      this.#area.release()
      this.#area = undefined
      process.stdout.write('\n')
    } else {
      process.stdout.write('\u001B[?25h\n')
    }
  }
}
