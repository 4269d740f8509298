import { onRunEvent } from '../../src/index.ts'
import type { State } from '../../src/index.ts'

/** Records every task-run state change until `stop()`. */
export function recordStates() {
  const byRun = new Map<string, State[]>()
  const stop = onRunEvent((event) => {
    if (event.kind !== 'task-run-state') return
    const list = byRun.get(event.taskRun.id) ?? []
    list.push(event.state)
    byRun.set(event.taskRun.id, list)
  })
  return {
    stop,
    states: (id: string) => byRun.get(id) ?? [],
    names: (id: string) => (byRun.get(id) ?? []).map((s) => s.name),
    /** The retry delays scheduled for a run, in whole milliseconds. */
    delays: (id: string) =>
      (byRun.get(id) ?? []).filter((s) => s.name === 'AwaitingRetry').map((s) => Math.round((s.scheduledTime ?? 0) - s.timestamp)),
  }
}
