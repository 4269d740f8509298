// Experiment: ptr on Redis throughput, worker with optional --cpu-prof. argv: rounds
import { spawn } from 'node:child_process'
import path from 'node:path'
import { setDefaultQueue } from '../src/queue/open.ts'
import { RedisQueueBackend } from '../src/queue/redis.ts'
import { startRedis } from '../test/helpers/redis.ts'
import { noop } from './queue-tasks.ts'

const N = 5000
const redis = await startRedis()
const queue = await RedisQueueBackend.connect(redis.url)
setDefaultQueue(redis.url, queue)
const profArgs = process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/rexp/w'] : []
const worker = spawn(process.execPath, [...profArgs, 'bin/ptr.js', 'worker', 'serve', 'bench/queue-tasks.ts', '--limit', '10', '--queue', redis.url], { stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise<void>((res) => worker.stdout!.setEncoding('utf8').on('data', (c: string) => { if (/serving/.test(c)) res() }))
worker.stdout!.resume()
await noop.delay(-1).result({ timeout: 30 })
import { readFileSync } from 'node:fs'
import { execSync } from 'node:child_process'
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10 }
const redisPid = Number(execSync(`pgrep -f 'redis-server.*${redis.port}'`).toString().trim().split('\n')[0])
for (let r = 0; r < Number(process.argv[2] ?? 3); r++) {
  const c0 = [cpu(process.pid), cpu(worker.pid!), cpu(redisPid)]
  const t = performance.now()
  const futures = []
  for (let i = 0; i < N; i++) futures.push(noop.delay(i))
  for (const f of futures) await f.result()
  const ms = performance.now() - t
  const c1 = [cpu(process.pid), cpu(worker.pid!), cpu(redisPid)]
  console.log(`${((N / ms) * 1000).toFixed(0)} runs/s, wall ${ms.toFixed(0)} ms, cpu ms submitter/worker/redis ${c1.map((c, i) => c - c0[i]!).join('/')}`)
  await queue.prune(Date.now() + 1)
}
worker.kill('SIGTERM')
await new Promise((r) => worker.once('exit', r))
await queue.close()
await redis.stop()
