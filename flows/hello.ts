/**
 * The smallest flow: one task, one parameter.
 *   ptr run flows/hello.ts --param name=Ada
 */
import { flow, task } from 'ptr'

export const greet = task({ name: 'greet' }, async (name: string) => {
  const message = `Hello, ${name}!`
  console.log(message)
  return message
})

export default flow({ name: 'hello' }, async ({ name = 'world' }: { name?: string }) => {
  return await greet(name)
})
