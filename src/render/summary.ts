import { attemptEnded } from '../errors.ts'
import { inspect } from 'node:util'
import type { ChalkInstance } from 'chalk'
import type { State } from '../engine/states.ts'
import { attemptsText, errorCode, errorHeadline, errorLines, githubAnnotation, plural, stateWord, upstreamRoot } from './failure.ts'
import { colorState } from './style.ts'
import type { RunRecorder } from './recorder.ts'

export interface SummaryOptions {
  /** Every frame of each error's stack, not only the first in the user's code. @default false */
  debug?: boolean
  /** Also print each failure as a GitHub Actions `::error` annotation. @default GITHUB_ACTIONS=true */
  githubAnnotations?: boolean
  /** Print the flow's return value (short form). @default true */
  showResult?: boolean
}

/** The flow's return value, short: a few levels deep, long arrays and strings cut. */
export function shortValue(value: unknown): string {
  return inspect(value, { depth: 2, maxArrayLength: 10, maxStringLength: 200, breakLength: Infinity, colors: false })
}

const sameError = (a: Error | undefined, b: Error | undefined) => a !== undefined && b !== undefined && (a === b || (a.name === b.name && a.message === b.message && a.stack === b.stack))

/** The run a NotReady run waited for, named once: `upstream parse-0 failed`. */
export function notReadyReason(state: State, names: ReadonlyMap<string, { name: string; stateName: string }>): string {
  const root = upstreamRoot(state.error)
  if (!root) return state.message ?? ''
  const known = names.get(root.taskRunId)
  const name = known?.name ?? /task run '([^']+)'/.exec(state.message ?? '')?.[1] ?? root.taskRunId
  const how = known ? stateWord(known.stateName) : 'did not complete'
  return `upstream ${name} ${how}`
}

/** Flow errors made of task-run failures that the summary lists already. */
const SUMMARISED = new Set(['PTR_UNHANDLED_TASK_FAILURE', 'PTR_RETURNED_RUN_FAILED'])

/**
 * The end-of-run summary, the same for every renderer: each failure once, with its error class,
 * message, the first frame in the user's code and a code frame; runs that needed retries with
 * the errors of their failed attempts; NotReady runs with their root cause; the slowest runs;
 * the flow's final state and return value; and a last line with counts by state and wall time.
 */
export function formatSummary(recorder: RunRecorder, flowState: State | undefined, c: ChalkInstance, options: SummaryOptions = {}): string {
  const lines: string[] = ['']
  const shownErrors: { error: Error; who: string }[] = []
  const retriedLines = (id: string) => {
    const run = recorder.retried.get(id)
    if (!run) return []
    return run.attempts.map((a) => c.dim(`    attempt ${a.attempt} ${attemptEnded(a.error)}: ${a.error ? errorHeadline(a.error) : (a.message ?? '')}`))
  }
  for (const failure of recorder.failures) {
    const { state } = failure
    lines.push(`${c.red('✗')} ${c.bold(failure.taskRunName)} ${colorState(c, stateWord(state.name), state.type)} ${attemptsText(failure.attempts)}`)
    if (state.error) {
      shownErrors.push({ error: state.error, who: `${failure.taskRunName} ${stateWord(state.name)}` })
      lines.push(...errorLines(state.error, c, { debug: options.debug, indent: '    ' }))
    } else if (state.message) lines.push(`    ${state.message}`)
    lines.push(...retriedLines(failure.taskRunId))
  }
  if (recorder.failureCount > recorder.failures.length) lines.push(`  … and ${plural(recorder.failureCount - recorder.failures.length, 'more failure')}`)
  for (const run of recorder.retried.values()) {
    if (!run.final || run.final.type === 'Failed' || run.final.type === 'Crashed') continue
    lines.push(`${c.yellow('↻')} ${c.bold(run.taskRunName)} ${colorState(c, stateWord(run.final.name), run.final.type)} after ${plural(run.retries, 'retry', 'retries')}`)
    lines.push(...retriedLines(run.taskRunId))
  }
  if (recorder.retriedCount > recorder.retried.size) lines.push(`  … and ${plural(recorder.retriedCount - recorder.retried.size, 'more run')} retried`)
  for (const run of recorder.notReady) {
    lines.push(`${c.yellow('○')} ${c.bold(run.taskRunName)} ${c.yellow('not ready')}: ${notReadyReason(run.state, recorder.unsuccessful)}`)
  }
  if (recorder.notReadyCount > recorder.notReady.length) lines.push(`  … and ${recorder.notReadyCount - recorder.notReady.length} more not ready`)
  if (recorder.slowest.length > 0) {
    lines.push(`slowest: ${recorder.slowest.map((s) => `${s.taskRunName} ${s.seconds.toFixed(2)} s`).join(', ')}`)
  }
  const flowRunName = recorder.flowRun?.name ?? 'flow run'
  if (flowState) {
    const head = `flow run ${c.bold(flowRunName)} ${colorState(c, flowState.name, flowState.type)}`
    const error = flowState.error
    if (flowState.type === 'Completed') {
      lines.push(head)
      if (options.showResult !== false && flowState.result !== undefined) lines.push(`${c.dim('result:')} ${shortValue(flowState.result)}`)
    } else if (!error) {
      lines.push(`${head}: ${flowState.message ?? ''}`)
    } else if (shownErrors.some((shown) => sameError(shown.error, error))) {
      // The error of a task run listed above, passed on: say whose, not the error again.
      lines.push(`${head}: ${shownErrors.find((shown) => sameError(shown.error, error))!.who} (above)`)
    } else if (SUMMARISED.has(errorCode(error) ?? '')) {
      // The failed runs are listed above: say what happened, not their errors again.
      lines.push(`${head}: ${error.message.split(': ')[0]}`)
    } else {
      lines.push(`${head}: ${errorHeadline(error)}`, ...errorLines(error, c, { debug: options.debug, indent: '    ' }).slice(1))
    }
  }
  lines.push(countsLine(recorder))
  if (options.githubAnnotations ?? process.env.GITHUB_ACTIONS === 'true') {
    for (const failure of recorder.failures) {
      if (failure.state.error) lines.push(githubAnnotation(`${failure.taskRunName} ${stateWord(failure.state.name)}`, failure.state.error))
    }
    if (flowState?.error && !recorder.failures.some((f) => sameError(f.state.error, flowState.error)) && flowState.type !== 'Cancelled') {
      if (!SUMMARISED.has(errorCode(flowState.error) ?? '')) lines.push(githubAnnotation(`flow run ${flowRunName} ${stateWord(flowState.name)}`, flowState.error))
    }
  }
  return `${lines.join('\n')}\n`
}

/** `12 task runs: 10 completed, 2 failed in 1.23 s`. */
export function countsLine(recorder: RunRecorder): string {
  const counts = [...recorder.counts.entries()].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${n} ${stateWord(name)}`)
  const total = plural(recorder.taskRuns, 'task run')
  return `${total}${counts.length ? `: ${counts.join(', ')}` : ''} in ${recorder.wallSeconds.toFixed(2)} s`
}
