import { ConcurrentTaskRunner, flow, task } from './src/index.ts'
const N = 100_000
export const noop = task({ name: 'noop' }, async (i: number) => i)
const input = Array.from({ length: N }, (_, i) => i)
global.gc!()
const base = process.memoryUsage().heapUsed
const f = flow({ name: 'm', taskRunner: new ConcurrentTaskRunner() }, async () => {
  const list = noop.map(input)
  global.gc!()
  const after = process.memoryUsage().heapUsed
  console.log('after map() (bytes/run):', ((after - base) / N).toFixed(0))
  const r = list.result()
  global.gc!()
  console.log('after result() call (bytes/run):', ((process.memoryUsage().heapUsed - base) / N).toFixed(0))
  const v = await r
  global.gc!()
  console.log('after results (bytes/run):', ((process.memoryUsage().heapUsed - base) / N).toFixed(0))
  return v.length
})
await f()
console.log('maxRSS MB', (process.resourceUsage().maxRSS / 1024).toFixed(0))
