import type { RunHistory, TaskRunRecord, FlowRunRecord } from './run-history.ts'
import type { RunRecorder } from './recorder.ts'

/** Bumped on any change that could break a reader; documented in docs/report.schema.json. */
export const REPORT_SCHEMA_VERSION = 1

export interface RunReport {
  schemaVersion: typeof REPORT_SCHEMA_VERSION
  tool: { name: 'ptr'; version: string }
  /** The flow run `ptr run` started. */
  flowRun: FlowRunRecord | null
  /** Every flow run, the root first, then subflow runs. */
  flowRuns: FlowRunRecord[]
  /** Every task run of every flow run, in creation order. */
  taskRuns: TaskRunRecord[]
  /** Task runs by final state name (Completed, Failed, NotReady, TimedOut, ...). */
  counts: Record<string, number>
  wallSeconds: number
}

export function buildRunReport(history: RunHistory, recorder: RunRecorder, version: string): RunReport {
  const flowRuns = history.flowRuns()
  return {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: 'ptr', version },
    flowRun: flowRuns[0] ?? null,
    flowRuns,
    taskRuns: history.taskRuns(),
    counts: Object.fromEntries(recorder.counts),
    wallSeconds: recorder.wallSeconds,
  }
}
