import { spawn, execSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Queue, QueueEvents } from 'bullmq'
import { startRedis } from '../test/helpers/redis.ts'
const N = 5000
const redis = await startRedis()
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10 }
const redisPid = Number(execSync(`pgrep -f 'redis-server.*${redis.port}'`).toString().trim().split('\n')[0])
const worker = spawn(process.execPath, ['bench/raw-bullmq-worker.cjs', redis.url, 'raw-noop'], { stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise<void>((res) => worker.stdout!.setEncoding('utf8').on('data', (c: string) => { if (/ready/.test(c)) res() }))
const connection = { url: redis.url }
const queue = new Queue('raw-noop', { connection }); const events = new QueueEvents('raw-noop', { connection })
await events.waitUntilReady()
for (let r = 0; r < 4; r++) {
  const c0 = [cpu(process.pid), cpu(worker.pid!), cpu(redisPid)]
  const t = performance.now()
  let done = 0
  const all = new Promise<void>((resolve) => { const on = () => { if (++done === N) { events.off('completed', on); resolve() } }; events.on('completed', on) })
  await queue.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'noop', data: { i } })))
  await all
  const ms = performance.now() - t
  const c1 = [cpu(process.pid), cpu(worker.pid!), cpu(redisPid)]
  console.log(`${((N / ms) * 1000).toFixed(0)} runs/s, wall ${ms.toFixed(0)} ms, cpu ms submitter/worker/redis ${c1.map((c, i) => c - c0[i]!).join('/')}`)
  await queue.clean(0, 0, 'completed')
}
worker.kill(); await queue.close(); await events.close(); await redis.stop()
