// The peer of `ptr run bench/pool-tasks.ts`: plain tsx loads the same file and calls the task's function.
import { noop } from './pool-tasks.ts'
console.log(`first result ${await noop.fn(1)}`)
