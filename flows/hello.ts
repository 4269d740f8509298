/**
 * The smallest flow: one task, one parameter, declared with zod (any Standard Schema validator
 * works), so `ptr run flows/hello.ts --help` lists it and a misspelt --param is refused.
 *   ptr run flows/hello.ts --param name=Ada
 */
import { z } from 'zod'
import { flow, task } from 'ptr'

export const greet = task({ name: 'greet' }, async (name: string) => {
  const message = `Hello, ${name}!`
  console.log(message)
  return message
})

export default flow(
  { name: 'hello', parameters: z.object({ name: z.string().default('world').describe('who to greet') }) },
  async ({ name }) => {
    return await greet(name)
  },
)
