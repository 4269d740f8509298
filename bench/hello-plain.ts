// The peer of `ptr run flows/hello.ts`: plain tsx loads the same file and calls its task's function.
import { greet } from '../flows/hello.ts'
await greet.fn('world')
