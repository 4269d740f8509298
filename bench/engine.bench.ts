/**
 * Foundation targets: 20,000 no-op task runs through the sequential and concurrent runners with
 * full state tracking, next to a plain `await fn()` loop and p-limit; a 100,000-item map's peak RSS.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pLimit from 'p-limit'
import { ConcurrentTaskRunner, SequentialTaskRunner, task } from '../src/index.ts'
import type { TaskRunner } from '../src/index.ts'
import type { Scenario } from './harness.ts'
import { timeMs } from './harness.ts'

const N = 20_000
export const noop = task({ name: 'noop' }, async (i: number) => i)
const rawNoop = async (i: number) => i

async function throughRunner(make: () => TaskRunner): Promise<number> {
  const ms = await timeMs(async () => {
    await using runner = make()
    const futures = []
    for (let i = 0; i < N; i++) futures.push(runner.submit(noop, [i]))
    for (const f of futures) await f.result()
  })
  return (ms * 1000) / N
}

const perRunTarget = { text: '≤ 15 µs/run', met: (ours: number) => ours <= 15 }

export const scenarios: Scenario[] = [
  {
    name: `${N} no-op runs, sequential runner vs await loop`,
    unit: 'µs/run',
    better: 'lower',
    ours: { label: 'ptr sequential', measure: () => throughRunner(() => new SequentialTaskRunner()) },
    peer: {
      label: 'await fn() loop',
      measure: async () => ((await timeMs(async () => {
        for (let i = 0; i < N; i++) await rawNoop(i)
      })) * 1000) / N,
    },
    target: perRunTarget,
  },
  {
    name: `${N} no-op runs, concurrent runner vs p-limit(8)`,
    unit: 'µs/run',
    better: 'lower',
    ours: { label: 'ptr concurrent(8)', measure: () => throughRunner(() => new ConcurrentTaskRunner({ maxConcurrency: 8 })) },
    peer: {
      label: 'p-limit(8)',
      measure: async () => {
        const limit = pLimit(8)
        return ((await timeMs(() => Promise.all(Array.from({ length: N }, (_, i) => limit(() => rawNoop(i)))))) * 1000) / N
      },
    },
    target: perRunTarget,
  },
  {
    name: 'map over 100,000 no-op items, peak RSS (fresh process)',
    unit: 'MB',
    better: 'lower',
    repeats: 1,
    ours: { label: 'ptr map', measure: async () => peakRss('ptr') },
    peer: { label: 'Promise.all of raw calls', measure: async () => peakRss('raw') },
    target: { text: '< 300 MB', met: (ours) => ours < 300 },
  },
]

function peakRss(mode: 'ptr' | 'raw'): number {
  const script = fileURLToPath(new URL('./map-rss.ts', import.meta.url))
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, mode], { encoding: 'utf8' })
  return Number(out.trim())
}
