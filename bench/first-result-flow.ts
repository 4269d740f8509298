/**
 * `ptr run bench/first-result-flow.ts`: one task run, for the time from `ptr run` to the first
 * result. It imports ptr by name, as a user's flow does (the built package), not from src/.
 */
import { flow, task } from 'ptr'

export const noop = task({ name: 'noop' }, (i: number) => i)

export default flow({ name: 'first_result' }, async () => {
  const value = await noop.submit(1).result()
  console.log(`first result ${value}`)
})
