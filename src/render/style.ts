import type { ChalkInstance } from 'chalk'
import type { State } from '../engine/states.ts'

/** How every renderer colours a state's name. */
export function colorState(chalk: ChalkInstance, name: string, type: State['type']): string {
  switch (type) {
    case 'Completed':
      return chalk.green(name)
    case 'Failed':
    case 'Crashed':
      return chalk.red(name)
    case 'Cancelled':
      return chalk.yellow(name)
    case 'Running':
      return chalk.cyan(name)
    default:
      return name === 'NotReady' ? chalk.yellow(name) : chalk.dim(name)
  }
}
