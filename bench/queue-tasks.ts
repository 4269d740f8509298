/** Tasks the queue benchmark's worker serves. */
import { task } from '../src/index.ts'

export const noop = task({ name: 'bench_noop' }, (i: number) => i)
/** Returns when it started, for pickup latency. */
export const stamp = task({ name: 'bench_stamp' }, () => Date.now())
