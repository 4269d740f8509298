/**
 * Child of engine.bench.ts and pools.bench.ts: maps 100,000 no-op items and prints the peak RSS in
 * MB (worker threads included: they live in this process). `raw`: a Promise.all of raw calls;
 * `ptr`: the concurrent runner; `thread`: the thread pool runner, 2 workers. The task lives in
 * pool-tasks.ts: workers import that module, and this one must run only here.
 */
import { ConcurrentTaskRunner, ThreadPoolTaskRunner, flow } from '../src/index.ts'
import { noop } from './pool-tasks.ts'

const N = 100_000
const mode = process.argv[2] ?? 'ptr'

if (mode === 'raw') {
  const values = await Promise.all(Array.from({ length: N }, async (_, i) => i))
  if (values.length !== N) throw new Error('raw map lost items')
} else {
  const taskRunner = mode === 'thread' ? new ThreadPoolTaskRunner({ maxWorkers: 2 }) : new ConcurrentTaskRunner()
  const mapFlow = flow({ name: 'map-rss', taskRunner }, async () => {
    const values = await noop.map(Array.from({ length: N }, (_, i) => i)).result()
    return values.length
  })
  const count = await mapFlow()
  if (count !== N) throw new Error(`map returned ${count} of ${N}`)
}
console.log((process.resourceUsage().maxRSS / 1024).toFixed(0))
