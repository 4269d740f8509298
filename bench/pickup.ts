/** Pickup latency of a single run on an idle task worker: shared by the SQLite and Redis queue benchmarks. */
import type { Scenario } from './harness.ts'
import { stamp } from './queue-tasks.ts'

/** 100 single runs, each after the worker has gone idle: ms from `delay()` to the task starting, sorted. */
async function pickupSamples(start: () => Promise<unknown>): Promise<number[]> {
  await start()
  const samples: number[] = []
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 15)) // let the worker go idle
    const sent = Date.now()
    const started = await stamp.delay().result()
    samples.push(started - sent)
  }
  return samples.sort((a, b) => a - b)
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** The p50 and p99 scenarios; `start` sets up the queue and a worker serving bench/queue-tasks.ts. */
export function pickupScenarios(options: { prefix: string; label: string; start: () => Promise<unknown>; p50: number; p99?: number }): Scenario[] {
  const { prefix, label, start, p50, p99 } = options
  return [
    {
      name: `${prefix}pickup latency of a single run on an idle worker, p50 of 100`,
      unit: 'ms',
      better: 'lower',
      repeats: 3,
      ours: { label: `${label} p50`, measure: async () => pct(await pickupSamples(start), 0.5) },
      target: { text: `≤ ${p50} ms`, met: (ours) => ours <= p50 },
    },
    {
      name: `${prefix}pickup latency of a single run on an idle worker, p99 of 100`,
      unit: 'ms',
      better: 'lower',
      repeats: p99 === undefined ? 1 : 3,
      ours: { label: `${label} p99`, measure: async () => pct(await pickupSamples(start), 0.99) },
      ...(p99 === undefined ? {} : { target: { text: `≤ ${p99} ms`, met: (ours: number) => ours <= p99 } }),
    },
  ]
}
