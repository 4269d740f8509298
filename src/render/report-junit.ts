import type { RunReport } from './report-json.ts'

const escape = (text: string) =>
  text
    // XML 1.0 cannot carry most control characters, even escaped.
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')

/**
 * The run as JUnit XML, which CI systems display: one test suite per flow run, one test case per
 * task run. Failed and Crashed runs (TimedOut included) are failures with their message;
 * NotReady and Cancelled runs are skipped, with the reason.
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
      if (isFailure(run.state.type)) {
        const message = run.error?.message ?? run.state.message ?? run.state.name
        const detail = [`${run.state.name} after ${run.attempts} attempt${run.attempts === 1 ? '' : 's'}: ${message}`]
        if (run.error?.cause) detail.push(`caused by ${run.error.cause.name}: ${run.error.cause.message}`)
        lines.push(`${open}>`, `      <failure message="${escape(message)}" type="${escape(run.state.name)}">${escape(detail.join('\n'))}</failure>`, '    </testcase>')
      } else if (isSkipped(run.state.type, run.state.name)) {
        lines.push(`${open}>`, `      <skipped message="${escape(`${run.state.name}: ${run.state.message ?? ''}`)}"/>`, '    </testcase>')
      } else {
        lines.push(`${open}/>`)
      }
    }
    lines.push('  </testsuite>')
  }
  lines.push('</testsuites>')
  return `${lines.join('\n')}\n`
}
