/** The raw peer of the pool benchmarks: N no-op calls through plain workerpool, workers warm before the clock starts. */
import { fileURLToPath } from 'node:url'
import workerpool from 'workerpool'
import { timeMs } from './harness.ts'

const RAW_WORKER = fileURLToPath(new URL('./raw-worker.cjs', import.meta.url))

/** Calls per second of `n` no-op calls on a raw workerpool of `workers` threads or processes. */
export async function rawWorkerpoolPerSecond(kind: 'thread' | 'process', workers: number, n: number): Promise<number> {
  const pool = workerpool.pool(RAW_WORKER, {
    maxWorkers: workers,
    workerType: kind,
    ...(kind === 'process' ? { forkOpts: { serialization: 'advanced' } } : {}),
  })
  try {
    await Promise.all(Array.from({ length: workers }, () => pool.exec('noop', [0])))
    const ms = await timeMs(() => Promise.all(Array.from({ length: n }, (_, i) => pool.exec('noop', [i]))))
    return (n / ms) * 1000
  } finally {
    await pool.terminate()
  }
}
