/** Tasks for the pool benchmarks (top level: pool workers import this module). */
import { task } from '../src/index.ts'

export const noop = task({ name: 'noop' }, (i: number) => i)

export const spin = task({ name: 'spin' }, (ms: number) => {
  const end = Date.now() + ms
  let n = 0
  while (Date.now() < end) n++
  return n
})
