/** Child of engine.bench.ts: maps 100,000 no-op items and prints the peak RSS in MB. */
import { ConcurrentTaskRunner, flow, task } from '../src/index.ts'

const N = 100_000
export const noop = task({ name: 'noop' }, async (i: number) => i)

if (process.argv[2] === 'raw') {
  const values = await Promise.all(Array.from({ length: N }, async (_, i) => i))
  if (values.length !== N) throw new Error('raw map lost items')
} else {
  const mapFlow = flow({ name: 'map-rss', taskRunner: new ConcurrentTaskRunner() }, async () => {
    const values = await noop.map(Array.from({ length: N }, (_, i) => i)).result()
    return values.length
  })
  const count = await mapFlow()
  if (count !== N) throw new Error(`map returned ${count} of ${N}`)
}
console.log((process.resourceUsage().maxRSS / 1024).toFixed(0))
