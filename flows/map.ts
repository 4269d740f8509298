/**
 * map() and unmapped(), and futures passed from task to task.
 *   ptr run flows/map.ts --param n=5 --param factor=10
 */
import { flow, task, unmapped } from 'ptr'

export const scale = task({ name: 'scale' }, (value: number, factor: number) => value * factor)

export const total = task({ name: 'total' }, (values: number[]) => values.reduce((sum, v) => sum + v, 0))

export const describe = task({ name: 'describe' }, (label: string, sum: number) => `${label}: ${sum}`)

export default flow({ name: 'map' }, async ({ n = 5, factor = 10 }: { n?: number; factor?: number }) => {
  const numbers = Array.from({ length: n }, (_, i) => i + 1)
  // One run of `scale` per number; `factor` is the same for every run.
  const scaled = scale.map(numbers, unmapped(factor))
  // Futures go straight into the next task: `total` starts once every `scale` run has completed.
  const sum = total.submit(scaled)
  const line = await describe('sum of scaled numbers', sum)
  console.log(line)
  return await sum.result()
})
