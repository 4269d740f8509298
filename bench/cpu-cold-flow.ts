/**
 * `ptr run bench/cpu-cold-flow.ts --runner thread|process|sequential --max-workers 2`: six CPU-bound
 * tasks of about 230 ms, on a cold pool, as a user would run them; prints the time from the flow's
 * start to its last result (`elapsed <ms>`). It imports ptr by name, as a user's flow does.
 */
import { flow, task } from 'ptr'

export const crunch = task({ name: 'crunch' }, (ms: number) => {
  const end = Date.now() + ms
  let n = 0
  while (Date.now() < end) n++
  return n
})

export default flow({ name: 'cpu_cold' }, async () => {
  const start = performance.now()
  await crunch.map([230, 230, 230, 230, 230, 230]).result()
  console.log(`elapsed ${(performance.now() - start).toFixed(1)}`)
})
