/** Tasks for the pool benchmarks (top level: pool workers import this module). */
import { flow, task } from '../src/index.ts'

export const noop = task({ name: 'noop' }, (i: number) => i)

export const spin = task({ name: 'spin' }, (ms: number) => {
  const end = Date.now() + ms
  let n = 0
  while (Date.now() < end) n++
  return n
})

/** `ptr run bench/pool-tasks.ts`: one task run, for the time to the first result. */
export default flow({ name: 'first_result' }, async () => {
  const value = await noop.submit(1).result()
  console.log(`first result ${value}`)
})
