// The peer of `ptr run bench/first-result-flow.ts`: plain tsx loads the same file and calls the task's function.
import { noop } from './first-result-flow.ts'
console.log(`first result ${await noop.fn(1)}`)
