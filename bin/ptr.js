#!/usr/bin/env node
// The bin is a shim: load ptr's built CLI and hand over.
// Only this file ends the process.
import { appendFileSync, existsSync } from 'node:fs'
import { preloadDependencies } from './preload.js'

// PTR_STARTUP_TRACE=FILE: the start-up steps, for bench/startup-breakdown.ts (src/runners/startup-trace.ts).
const trace = process.env.PTR_STARTUP_TRACE
const mark = (step, at = performance.timeOrigin + performance.now()) => {
  if (trace) appendFileSync(trace, `${at.toFixed(1)} ${process.pid} ${step}\n`)
}
mark('process start', performance.timeOrigin)
mark('bin start')

const MAIN = new URL('../dist/cli/main.js', import.meta.url)
if (!existsSync(MAIN)) {
  const root = new URL('..', import.meta.url).pathname
  console.error(`ptr is not built (${MAIN.pathname} is missing): run \`npm run build\` in ${root}, or reinstall ptr without --ignore-scripts`)
  process.exit(2)
}
// The command: the first word that is not a global option (`ptr --debug run ...`).
const command = process.argv.slice(2).find((arg) => !arg.startsWith('-'))
// (ptr run registers no hooks unless its flow file cannot be bundled: it loads them as it needs them.)
if (command === 'config') await preloadDependencies()
mark('bin: dependencies preloaded')
// ptr's own modules load before tsx's hooks exist: they are plain JavaScript and never transformed.
const { main } = await import(MAIN.href)
mark('bin: dist/cli/main.js imported')
// tsx's hooks (about 270 ms here) are registered only where a user's .ts file is imported and
// cannot be bundled (src/cli/load-flow.ts); `ptr --version`, `--help`, `runs`, `flow-runs` and a
// `ptr config view` without a flow file start without them.
const code = await main(process.argv)
mark('bin: command done')
// Let stdout/stderr drain before exiting: a piped reader must get the last lines.
await new Promise((resolve) => process.stdout.write('', resolve))
await new Promise((resolve) => process.stderr.write('', resolve))
process.exit(code)
