/**
 * The run history with results kept (what `ptr run` does by default): 20,000 no-op runs on the
 * sequential runner and a 20,000-item thread-pool map, each next to its peer without the history
 * (and raw workerpool for the map); a 100,000-item map's peak RSS and store size; and
 * `ptr run --resume` of a flow whose 10,000 task runs all completed, next to an empty flow.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SequentialTaskRunner, ThreadPoolTaskRunner, flow, onRunEvent } from '../src/index.ts'
import type { TaskRunner } from '../src/index.ts'
import { HistoryRecorder } from '../src/history/recorder.ts'
import { HistoryStore } from '../src/history/store.ts'
import type { Scenario } from './harness.ts'
import { timeMs } from './harness.ts'
import { rawWorkerpoolPerSecond } from './raw-pool.ts'
import { noop } from './pool-tasks.ts'

const N = 20_000
const WORKERS = 2
const BIN = fileURLToPath(new URL('../bin/ptr.js', import.meta.url))

/** Milliseconds of a flow run that submits N no-op runs (map or one by one), recorded into a fresh history when `recorded`. */
async function flowMs(runner: () => TaskRunner, how: 'submit' | 'map', recorded: boolean): Promise<number> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-history-'))
  const store = recorded ? HistoryStore.open(path.join(dir, 'history.db')) : undefined
  const recorder = store && new HistoryRecorder(store)
  const off = recorder && onRunEvent(recorder.onEvent)
  const items = Array.from({ length: N }, (_, i) => i)
  const f = flow({ name: 'bench', taskRunner: runner() }, async () => {
    // Warm: the flow run's runner is its own copy, whose workers start on its first submit.
    await noop.submit(0).result()
    return timeMs(async () => {
      if (how === 'map') await noop.map(items).result()
      else {
        const futures = items.map((i) => noop.submit(i))
        for (const future of futures) await future.result()
      }
    })
  })
  try {
    const { state } = await f.run(undefined, { results: recorder })
    if (state.type !== 'Completed') throw state.error
    // The history's last write (what close() does) is part of the cost.
    return (state.result as number) + (await timeMs(async () => recorder?.close()))
  } finally {
    off?.()
    store?.close()
    rmSync(dir, { recursive: true, force: true })
  }
}


function rssAndStore(): [number, number] {
  const script = fileURLToPath(new URL('./history-rss.ts', import.meta.url))
  const [rss, store] = execFileSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8' }).trim().split(' ').map(Number)
  return [rss!, store!]
}

/** A project with a 10,000-run flow that fails in its last task (so it can be resumed, again and again), and an empty flow. */
const project = (() => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-resume-'))
  const ptr = fileURLToPath(new URL('../src/index.ts', import.meta.url))
  writeFileSync(
    path.join(dir, 'big.ts'),
    `import { flow, task } from '${ptr}'
export const step = task({ name: 'step' }, (i: number) => i * 2)
export const last = task({ name: 'last' }, () => { throw new Error('not yet') })
export default flow({ name: 'big' }, async () => {
  await step.map(Array.from({ length: 10_000 }, (_, i) => i)).result()
  return last()
})
`,
  )
  writeFileSync(path.join(dir, 'empty.ts'), `import { flow } from '${ptr}'\nexport default flow({ name: 'empty' }, async () => 1)\n`)
  const env = { ...process.env, CI: 'true', NO_COLOR: '1' }
  // The first run records the 10,000 completed runs; every measured --resume reuses them.
  try {
    execFileSync(process.execPath, [BIN, 'run', 'big.ts', '--runner', 'sequential', '-q'], { cwd: dir, env, stdio: 'pipe' })
  } catch {
    // It fails, as it should.
  }
  const time = (file: string, ...args: string[]) => {
    const start = process.hrtime.bigint()
    try {
      execFileSync(process.execPath, [BIN, 'run', file, '--runner', 'sequential', '-q', ...args], { cwd: dir, env, stdio: 'pipe' })
    } catch {
      // big.ts fails in its last task each time: what is timed is everything before.
    }
    return Number(process.hrtime.bigint() - start) / 1e6
  }
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return { time }
})()

let stored: [number, number] | undefined

export const scenarios: Scenario[] = [
  {
    name: `${N} no-op runs, sequential runner, history and results on vs off`,
    unit: 'µs/run',
    better: 'lower',
    ours: { label: 'ptr with history', measure: async () => ((await flowMs(() => new SequentialTaskRunner(), 'submit', true)) * 1000) / N },
    peer: { label: 'ptr without', measure: async () => ((await flowMs(() => new SequentialTaskRunner(), 'submit', false)) * 1000) / N },
    target: { text: '≤ 25 µs/run', met: (ours) => ours <= 25 },
  },
  {
    name: `map of ${N} no-op items, thread runner (${WORKERS} workers) with history and results vs raw workerpool`,
    unit: 'runs/s',
    better: 'higher',
    ours: { label: 'ptr thread map, recorded', measure: async () => (N / (await flowMs(() => new ThreadPoolTaskRunner({ maxWorkers: WORKERS }), 'map', true))) * 1000 },
    peer: { label: 'raw workerpool', measure: () => rawWorkerpoolPerSecond('thread', WORKERS, N) },
    target: { text: '≥ 2× peer', met: (ours, peer) => peer !== undefined && ours >= 2 * peer },
  },
  {
    name: 'map over 100,000 no-op items with history and results, peak RSS (fresh process)',
    unit: 'MB',
    better: 'lower',
    repeats: 1,
    ours: { label: 'ptr map, recorded', measure: async () => (stored = rssAndStore())[0] },
    target: { text: '≤ 300 MB', met: (ours) => ours <= 300 },
  },
  {
    name: '… and the history file it leaves (database and its log)',
    unit: 'MB',
    better: 'lower',
    repeats: 1,
    ours: { label: 'history.db', measure: async () => (stored ??= rssAndStore())[1] },
    target: { text: '≤ 50 MB', met: (ours) => ours <= 50 },
  },
  {
    name: 'ptr run --resume of a flow whose 10,000 task runs completed, vs ptr run of an empty flow',
    unit: 'ms',
    better: 'lower',
    repeats: 3,
    ours: { label: 'ptr run big.ts --resume', measure: async () => project.time('big.ts', '--resume') },
    peer: { label: 'ptr run empty.ts', measure: async () => project.time('empty.ts') },
    target: { text: '≤ peer + 500 ms', met: (ours, peer) => peer !== undefined && ours <= peer + 500 },
  },
]
