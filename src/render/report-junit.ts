import type { RunReport } from './report-json.ts'
import type { LogRecord } from './run-history.ts'

const escape = (text: string) =>
  text
    // XML 1.0 cannot carry most control characters, even escaped.
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')

/** Log lines as a `<system-out>` element (CI systems show it with the test case), or nothing. */
function systemOut(logs: readonly LogRecord[], omitted: number, indent: string, note?: string): string[] {
  if (logs.length === 0 && note === undefined) return []
  const lines = logs.map((l) => `${l.timestamp.slice(11, 23)} ${l.level.padEnd(7)} ${l.message}`)
  if (note !== undefined) lines.unshift(note)
  if (omitted > 0) lines.push(`... ${omitted} more lines (see the JSON report's limits)`)
  return [`${indent}<system-out>${escape(lines.join('\n'))}</system-out>`]
}

/**
 * The run as JUnit XML, which CI systems display: one test suite per flow run, one test case per
 * task run, with the run's log lines as its output. Failed and Crashed runs (TimedOut included)
 * are failures with their message; NotReady and Cancelled runs are skipped, with the reason.
 */
export function buildJUnitXml(report: RunReport): string {
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>']
  const all = report.taskRuns
  const isFailure = (type: string) => type === 'Failed' || type === 'Crashed'
  const isSkipped = (type: string, name: string) => type === 'Cancelled' || name === 'NotReady' || type === 'Pending' || type === 'Scheduled' || type === 'Running'
  const totals = {
    tests: all.length,
    failures: all.filter((r) => isFailure(r.state.type)).length,
    skipped: all.filter((r) => isSkipped(r.state.type, r.state.name)).length,
  }
  lines.push(
    `<testsuites name="ptr" tests="${totals.tests}" failures="${totals.failures}" errors="0" skipped="${totals.skipped}" time="${report.wallSeconds.toFixed(3)}">`,
  )
  for (const flowRun of report.flowRuns) {
    const runs = all.filter((r) => r.flowRunId === flowRun.id)
    const failures = runs.filter((r) => isFailure(r.state.type)).length
    const skipped = runs.filter((r) => isSkipped(r.state.type, r.state.name)).length
    lines.push(
      `  <testsuite name="${escape(flowRun.name)}" tests="${runs.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${(flowRun.durationSeconds ?? 0).toFixed(3)}" timestamp="${flowRun.startTime ?? ''}">`,
    )
    for (const run of runs) {
      const open = `    <testcase classname="${escape(`${flowRun.flowName}.${run.taskName}`)}" name="${escape(run.name)}" time="${(run.durationSeconds ?? 0).toFixed(3)}"`
      const body: string[] = []
      if (isFailure(run.state.type)) {
        const message = run.error?.message ?? run.state.message ?? run.state.name
        const attempts = run.attempts === 0 ? 'before it started' : `after ${run.attempts} attempt${run.attempts === 1 ? '' : 's'}`
        const detail = [`${run.state.name} ${attempts}: ${message}`]
        if (run.error?.location) detail.push(`at ${run.error.location.file}:${run.error.location.line}:${run.error.location.column}`)
        if (run.error?.stack) detail.push(run.error.stack)
        if (run.error?.cause) detail.push(`caused by ${run.error.cause.name}: ${run.error.cause.message}`, ...(run.error.cause.stack ? [run.error.cause.stack] : []))
        body.push(`      <failure message="${escape(message)}" type="${escape(run.state.name)}">${escape(detail.join('\n'))}</failure>`)
      } else if (isSkipped(run.state.type, run.state.name)) {
        body.push(`      <skipped message="${escape(`${run.state.name}: ${run.state.message ?? ''}`)}"/>`)
      }
      // A run a kept value stood in for passes, and says so (it did not execute).
      const note = run.state.name === 'Cached' ? `Cached: ${run.state.message ?? 'a kept value stood in for this run'}` : undefined
      body.push(...systemOut(run.logs, run.logsOmitted, '      ', note))
      lines.push(...(body.length === 0 ? [`${open}/>`] : [`${open}>`, ...body, '    </testcase>']))
    }
    lines.push(...systemOut(flowRun.logs, flowRun.logsOmitted, '    '), '  </testsuite>')
  }
  lines.push('</testsuites>')
  return `${lines.join('\n')}\n`
}
