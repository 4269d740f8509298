#!/usr/bin/env node
// The bin is a shim: register tsx once (so ptr's own sources and the user's .ts files load),
// then hand over to the CLI. Only this file ends the process.
import { register as registerEsm } from 'tsx/esm/api'
import { register as registerCjs } from 'tsx/cjs/api'
import { preloadDependencies } from './preload.js'

if (process.argv[2] === 'run' || process.argv[2] === 'config') await preloadDependencies()
registerEsm()
registerCjs()
const { main } = await import('../src/cli/main.ts')
const code = await main(process.argv)
// Let stdout/stderr drain before exiting: a piped reader must get the last lines.
await new Promise((resolve) => process.stdout.write('', resolve))
await new Promise((resolve) => process.stderr.write('', resolve))
process.exit(code)
