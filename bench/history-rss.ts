/**
 * Child of history.bench.ts: maps 100,000 no-op items in a flow run recorded into a fresh run
 * history with results kept (as `ptr run` does by default); prints "<peak RSS MB> <store MB>".
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ConcurrentTaskRunner, flow, onRunEvent, task } from '../src/index.ts'
import { HistoryRecorder } from '../src/history/recorder.ts'
import { HistoryStore } from '../src/history/store.ts'

const N = 100_000
export const noop = task({ name: 'noop' }, async (i: number) => i)

const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-history-'))
const store = HistoryStore.open(path.join(dir, 'history.db'))
const recorder = new HistoryRecorder(store)
const off = onRunEvent(recorder.onEvent)
const mapFlow = flow({ name: 'map-rss', taskRunner: new ConcurrentTaskRunner() }, async () => (await noop.map(Array.from({ length: N }, (_, i) => i)).result()).length)
const { state } = await mapFlow.run(undefined, { results: recorder })
if (state.result !== N) throw new Error(`map returned ${String(state.result)} of ${N}`)
off()
recorder.close()
store.close()
const bytes = ['history.db', 'history.db-wal'].reduce((sum, name) => {
  try {
    return sum + statSync(path.join(dir, name)).size
  } catch {
    return sum
  }
}, 0)
rmSync(dir, { recursive: true, force: true })
console.log(`${(process.resourceUsage().maxRSS / 1024).toFixed(0)} ${(bytes / 1024 / 1024).toFixed(1)}`)
