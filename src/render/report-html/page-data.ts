/**
 * What the HTML report embeds (built by data.ts, read by page.ts): the JSON report made compact.
 * Times are milliseconds from `t0`; names of states, slots and tasks are indexes into tables.
 * Only types here: the page imports nothing at run time.
 */

/** An error as the JSON report records it (ErrorRecord in src/render/run-history.ts), repeated here so the page needs no Node types. */
export interface ErrorRecord {
  name: string
  message: string
  stack?: string
  location?: { file: string; line: number; column: number }
  cause?: ErrorRecord
}

/** [start, end, slot (index into `slots`, -1 when none), outcome (index into `states`), retried (1 when another attempt followed), message?] */
export type PageAttempt = [number, number, number, number, 0 | 1, string?]

/** [id, name, task (index into `tasks`), flow (index into `flows`, -1 when none), map (index into `maps`, -1), mapIndex (-1), state, attempts, upstream run indexes, created] */
export type PageRun = [string, string, number, number, number, number, number, PageAttempt[], number[], number]

/** [ms, level, message] */
export type PageLog = [number, string, string]

/** What only some runs have: kept apart so the common run stays small. */
export interface PageDetail {
  error?: ErrorRecord
  /** The final state's message, when it did not complete. */
  message?: string
  logs?: PageLog[]
  logsOmitted?: number
  tags?: string[]
}

export interface PageFlow {
  id: string
  name: string
  flowName: string
  /** Index of the parent flow run, -1 for the root. */
  parent: number
  state: number
  /** The parameters as JSON, clipped like any other text. */
  parameters: string
  runner: string
  tags: string[]
  start: number | null
  end: number | null
  error: ErrorRecord | null
  logs: PageLog[]
  logsOmitted: number
  /** Task runs created directly in this flow run. */
  taskRuns: number
}

export interface PageData {
  version: 1
  tool: string
  /** `run`: written by `ptr run --report`; `history`: by `ptr flow-runs show ID --report`. */
  source: 'run' | 'history'
  /** Epoch ms that every time in the page counts from. */
  t0: number
  span: number
  counts: Record<string, number>
  wallSeconds: number
  /** [name, type] of every state name used. */
  states: [string, string][]
  slots: string[]
  tasks: string[]
  /** One per map() call: [task, flow, runs]. */
  maps: [number, number, number][]
  flows: PageFlow[]
  runs: PageRun[]
  /** By run index. */
  details: Record<number, PageDetail>
  /** Log lines left out of the page (the JSON report has them). */
  logsOmitted: number
}
