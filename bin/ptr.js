#!/usr/bin/env node
// The bin is a shim: register tsx once (so ptr's own sources and the user's .ts files load),
// then hand over to the CLI. Only this file ends the process.
import { register as registerEsm } from 'tsx/esm/api'
import { register as registerCjs } from 'tsx/cjs/api'

// Load ptr's heavy dependencies before tsx's loader hooks exist: through the hooks each of their
// many modules costs a round trip to tsx's loader thread (zod: 55 ms plain, 130-160 ms hooked).
// Later imports of them (from ptr's .ts sources) hit the module cache.
if (process.argv[2] === 'run' || process.argv[2] === 'config') {
  // Best effort: a module npm placed elsewhere just loads later, through the hooks.
  await Promise.allSettled(['commander', 'chalk', 'zod', 'cosmiconfig', 'listr2', 'log-update', 'cli-truncate', 'wrap-ansi'].map((name) => import(name)))
}
registerEsm()
registerCjs()
const { main } = await import('../src/cli/main.ts')
const code = await main(process.argv)
// Let stdout/stderr drain before exiting: a piped reader must get the last lines.
await new Promise((resolve) => process.stdout.write('', resolve))
await new Promise((resolve) => process.stderr.write('', resolve))
process.exit(code)
