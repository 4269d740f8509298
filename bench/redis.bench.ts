/**
 * Redis queue targets (issue 7). This file starts its own redis-server (no persistence) and, for
 * each side, one worker process at concurrency 10 with this process submitting:
 * - ptr: `ptr worker serve bench/queue-tasks.ts --limit 10 --queue redis://...`, 5,000 no-op
 *   `t.delay()` runs, each future awaited.
 * - raw BullMQ: a BullMQ Worker (concurrency 10, no-op processor) in its own process; 5,000 jobs
 *   added with addBulk, completion counted from QueueEvents.
 * Target: ptr ≥ 0.8× raw BullMQ throughput; single-run pickup latency p50 ≤ 5 ms.
 * Skipped (with a note) when redis-server is not installed.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Queue, QueueEvents } from 'bullmq'
import { setDefaultQueue } from '../src/queue/open.ts'
import { RedisQueueBackend } from '../src/queue/redis.ts'
import { haveRedisServer, startRedis } from '../test/helpers/redis.ts'
import type { TestRedis } from '../test/helpers/redis.ts'
import type { Scenario } from './harness.ts'
import { timeMs } from './harness.ts'
import { pickupScenarios } from './pickup.ts'
import { noop } from './queue-tasks.ts'

const N = 5000
const REPO = fileURLToPath(new URL('..', import.meta.url))
const children: ChildProcess[] = []
let setup: Promise<{ redis: TestRedis; queue: RedisQueueBackend }> | undefined

function waitForLine(child: ChildProcess, text: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = ''
    // Detached once the line came: the worker prints a line per state change, and appending
    // them all to `out` and searching it per chunk would cost this (submitting) process
    // time that grows with every run it measures.
    const onData = (c: string) => {
      out += c
      if (!text.test(out)) return
      child.stdout!.off('data', onData)
      resolve()
    }
    child.stdout!.setEncoding('utf8').on('data', onData)
    child.on('exit', (code) => reject(new Error(`process exited (${code}) before ${String(text)}:\n${out}`)))
  })
}

function start(): Promise<{ redis: TestRedis; queue: RedisQueueBackend }> {
  setup ??= (async () => {
    const redis = await startRedis()
    const queue = await RedisQueueBackend.connect(redis.url)
    setDefaultQueue(redis.url, queue)
    const worker = spawn(process.execPath, [path.join(REPO, 'bin/ptr.js'), 'worker', 'serve', path.join(REPO, 'bench/queue-tasks.ts'), '--limit', '10', '--queue', redis.url], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.push(worker)
    await waitForLine(worker, / serving \d+ task/)
    // The worker prints a line per state change: drain it so printing never blocks it.
    worker.stdout!.resume()
    const raw = spawn(process.execPath, [path.join(REPO, 'bench/raw-bullmq-worker.cjs'), redis.url, 'raw-noop'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(raw)
    await waitForLine(raw, /ready/)
    process.once('exit', () => {
      for (const child of children) child.kill('SIGKILL')
      void redis.stop()
    })
    await noop.delay(-1).result({ timeout: 30 })
    return { redis, queue }
  })()
  return setup
}

async function ptrThroughput(): Promise<number> {
  const { queue } = await start()
  const ms = await timeMs(async () => {
    const futures = []
    for (let i = 0; i < N; i++) futures.push(noop.delay(i))
    for (const f of futures) await f.result()
  })
  await queue.prune(Date.now() + 1)
  return (N / ms) * 1000
}

let raw: { queue: Queue; events: QueueEvents } | undefined
async function bullmqThroughput(): Promise<number> {
  const { redis } = await start()
  if (!raw) {
    const connection = { url: redis.url }
    raw = { queue: new Queue('raw-noop', { connection }), events: new QueueEvents('raw-noop', { connection }) }
    await raw.events.waitUntilReady()
  }
  const { queue, events } = raw
  const ms = await timeMs(async () => {
    let done = 0
    const all = new Promise<void>((resolve) => {
      const onCompleted = () => {
        if (++done === N) {
          events.off('completed', onCompleted)
          resolve()
        }
      }
      events.on('completed', onCompleted)
    })
    await queue.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'noop', data: { i } })))
    await all
  })
  await queue.clean(0, 0, 'completed')
  return (N / ms) * 1000
}


const skipped = (name: string): Scenario => ({
  name: `${name} (skipped: redis-server is not installed; apt-get install -y redis-server)`,
  unit: '-',
  better: 'higher',
  repeats: 0,
  ours: { label: 'skipped', measure: async () => 0 },
})

export async function teardown(): Promise<void> {
  for (const child of children) child.kill('SIGKILL')
  await raw?.queue.close()
  await raw?.events.close()
}

export const scenarios: Scenario[] = haveRedisServer()
  ? [
      {
        name: `Redis: ${N} no-op delayed runs end to end, 1 worker (limit 10) + 1 submitter vs raw BullMQ (1 worker, concurrency 10)`,
        unit: 'runs/s',
        better: 'higher',
        repeats: 3,
        ours: { label: 'ptr on Redis', measure: ptrThroughput },
        peer: { label: 'raw BullMQ addBulk + Worker', measure: bullmqThroughput },
        target: { text: '≥ 0.8× raw BullMQ', met: (ours, peer) => peer !== undefined && ours >= 0.8 * peer },
      },
      ...pickupScenarios({ prefix: 'Redis: ', label: 'ptr on Redis', start, p50: 5 }),
    ]
  : [skipped('Redis queue benchmarks')]
