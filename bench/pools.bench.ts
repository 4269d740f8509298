/**
 * Pool runners next to raw workerpool (same run, same number of workers): 20,000 no-op submits
 * (thread, process), a 20,000-item map, 8 CPU-bound tasks vs the sequential runner; start-up as a
 * user meets it: the time from `ptr run` to the first task result and exit vs plain tsx running
 * the same file, `ptr run flows/hello.ts` vs plain tsx, six CPU-bound tasks on a cold pool of 2
 * timed from the flow's start vs the sequential runner; and a 100,000-item map's peak RSS on the
 * thread runner.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ProcessPoolTaskRunner, SequentialTaskRunner, ThreadPoolTaskRunner } from '../src/index.ts'
import type { TaskRunner } from '../src/index.ts'
import type { Scenario } from './harness.ts'
import { timeMs } from './harness.ts'
import { rawWorkerpoolPerSecond } from './raw-pool.ts'
import { noop, spin } from './pool-tasks.ts'

const N = 20_000
const WORKERS = 2
const BIN = fileURLToPath(new URL('../bin/ptr.js', import.meta.url))
const FLOW = fileURLToPath(new URL('./first-result-flow.ts', import.meta.url))
const PLAIN = fileURLToPath(new URL('./first-result-plain.ts', import.meta.url))
const HELLO = fileURLToPath(new URL('../flows/hello.ts', import.meta.url))
const HELLO_PLAIN = fileURLToPath(new URL('./hello-plain.ts', import.meta.url))
const CPU_COLD = fileURLToPath(new URL('./cpu-cold-flow.ts', import.meta.url))
const MAP_RSS = fileURLToPath(new URL('./map-rss.ts', import.meta.url))

type Kind = 'thread' | 'process'
const makeRunner = (kind: Kind): TaskRunner =>
  kind === 'thread' ? new ThreadPoolTaskRunner({ maxWorkers: WORKERS }) : new ProcessPoolTaskRunner({ maxWorkers: WORKERS })

/** Runs per second through ptr, workers started and warm before the clock starts. */
async function oursThroughput(kind: Kind, how: 'submit' | 'map'): Promise<number> {
  const runner = makeRunner(kind)
  try {
    await runner.submit(noop, [0]).result()
    const items = Array.from({ length: N }, (_, i) => i)
    const ms = await timeMs(async () => {
      if (how === 'map') await runner.map(noop, [items]).result()
      else {
        const futures = items.map((i) => runner.submit(noop, [i]))
        for (const f of futures) await f.result()
      }
    })
    return (N / ms) * 1000
  } finally {
    await runner.close()
  }
}


async function cpuBound(make: () => TaskRunner): Promise<number> {
  const runner = make()
  try {
    await runner.submit(noop, [0]).result()
    return await timeMs(() => runner.map(spin, [Array.from({ length: 8 }, () => 200)]).result())
  } finally {
    await runner.close()
  }
}

function processMs(args: string[]): number {
  const start = process.hrtime.bigint()
  execFileSync(process.execPath, args, { stdio: 'pipe', env: { ...process.env, NO_COLOR: '1' } })
  return Number(process.hrtime.bigint() - start) / 1e6
}

/** `ptr run bench/cpu-cold-flow.ts` on a runner: ms from the flow's start to its last result, as the flow prints it. */
function coldCpuMs(runnerArgs: string[]): number {
  const out = execFileSync(process.execPath, [BIN, 'run', CPU_COLD, ...runnerArgs, '--output', 'plain'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } })
  const elapsed = /elapsed ([\d.]+)/.exec(out)
  if (!elapsed) throw new Error(`cpu-cold-flow.ts printed no elapsed time:\n${out}`)
  return Number(elapsed[1])
}

/** Peak RSS (MB) of a fresh process mapping 100,000 no-op items (see map-rss.ts). */
function peakRssMb(mode: 'raw' | 'thread'): number {
  return Number(execFileSync(process.execPath, ['--import', 'tsx', MAP_RSS, mode], { encoding: 'utf8' }).trim())
}

const atMost = (factor: number) => ({ text: `≤ ${factor}× peer`, met: (ours: number, peer: number | undefined) => peer !== undefined && ours <= factor * peer })

const atLeast = (factor: number) => ({ text: `≥ ${factor}× peer`, met: (ours: number, peer: number | undefined) => peer !== undefined && ours >= factor * peer })

export const scenarios: Scenario[] = [
  ...(['thread', 'process'] as const).map(
    (kind): Scenario => ({
      name: `${N} no-op submits, ${kind} runner vs raw workerpool ${kind}s (${WORKERS} workers)`,
      unit: 'runs/s',
      better: 'higher',
      repeats: 3,
      ours: { label: `ptr ${kind}`, measure: () => oursThroughput(kind, 'submit') },
      peer: { label: `workerpool ${kind}`, measure: () => rawWorkerpoolPerSecond(kind, WORKERS, N) },
      target: atLeast(0.8),
    }),
  ),
  {
    name: `map over ${N} no-op items, thread runner vs raw workerpool threads (${WORKERS} workers)`,
    unit: 'runs/s',
    better: 'higher',
    repeats: 3,
    ours: { label: 'ptr thread map', measure: () => oursThroughput('thread', 'map') },
    peer: { label: 'workerpool thread', measure: () => rawWorkerpoolPerSecond('thread', WORKERS, N) },
    target: atLeast(1.5),
  },
  {
    name: `8 CPU-bound 200 ms tasks, thread runner (${WORKERS} workers) vs sequential runner`,
    unit: 'ms',
    better: 'lower',
    repeats: 3,
    ours: { label: 'ptr thread', measure: () => cpuBound(() => new ThreadPoolTaskRunner({ maxWorkers: WORKERS })) },
    peer: { label: 'ptr sequential', measure: () => cpuBound(() => new SequentialTaskRunner()) },
    target: { text: '≥ 1.9× faster', met: (ours, peer) => peer !== undefined && peer / ours >= 1.9 },
  },
  {
    name: `8 CPU-bound 200 ms tasks, process runner (${WORKERS} workers) vs sequential runner`,
    unit: 'ms',
    better: 'lower',
    repeats: 3,
    ours: { label: 'ptr process', measure: () => cpuBound(() => new ProcessPoolTaskRunner({ maxWorkers: WORKERS })) },
    peer: { label: 'ptr sequential', measure: () => cpuBound(() => new SequentialTaskRunner()) },
    target: { text: '≥ 1.9× faster', met: (ours, peer) => peer !== undefined && peer / ours >= 1.9 },
  },
  ...(['thread', 'process'] as const).map(
    (kind): Scenario => ({
      name: `ptr run (${kind}, 1 worker) to the first task result and exit, vs plain tsx running the same file`,
      unit: 'ms',
      better: 'lower',
      repeats: 5,
      ours: { label: `ptr run --runner ${kind}`, measure: async () => processMs([BIN, 'run', FLOW, '--runner', kind, '--max-workers', '1']) },
      peer: { label: 'node --import tsx', measure: async () => processMs(['--import', 'tsx', PLAIN]) },
      target: atMost(kind === 'thread' ? 1.3 : 1.4),
    }),
  ),
  {
    name: 'ptr run flows/hello.ts (an inline task) to exit, vs plain tsx calling the same task',
    unit: 'ms',
    better: 'lower',
    repeats: 5,
    ours: { label: 'ptr run flows/hello.ts', measure: async () => processMs([BIN, 'run', HELLO]) },
    peer: { label: 'node --import tsx', measure: async () => processMs(['--import', 'tsx', HELLO_PLAIN]) },
    target: atMost(1.15),
  },
  ...(['thread', 'process'] as const).map(
    (kind): Scenario => ({
      name: `6 CPU-bound 230 ms tasks on a cold ${kind} pool of ${WORKERS} (ptr run, from the flow's start) vs the sequential runner`,
      unit: 'ms',
      better: 'lower',
      repeats: 3,
      ours: { label: `ptr run --runner ${kind}`, measure: async () => coldCpuMs(['--runner', kind, '--max-workers', String(WORKERS)]) },
      peer: { label: 'ptr run --runner sequential', measure: async () => coldCpuMs(['--runner', 'sequential']) },
      target: atMost(0.6),
    }),
  ),
  {
    name: 'map over 100,000 no-op items, thread runner (2 workers), peak RSS (fresh process)',
    unit: 'MB',
    better: 'lower',
    repeats: 1,
    ours: { label: 'ptr thread map', measure: async () => peakRssMb('thread') },
    peer: { label: 'Promise.all of raw calls', measure: async () => peakRssMb('raw') },
    target: { text: '≤ 350 MB', met: (ours) => ours <= 350 },
  },
]
