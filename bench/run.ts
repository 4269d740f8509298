/**
 * `npm run bench [filter]`: runs every scenario in bench/*.bench.ts (or those whose name or file
 * contains the filter) and prints ptr next to its raw peer, measured in the same run, as a ratio.
 * Each file runs in its own process, so no file's workers, servers or default queue can touch
 * another's numbers.
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { formatResult, runScenario } from './harness.ts'
import type { Scenario } from './harness.ts'

const dir = path.dirname(fileURLToPath(import.meta.url))
const self = fileURLToPath(import.meta.url)
const [first, second] = process.argv.slice(2)

if (first === '--file') {
  // One file, in this process: print its results and exit with the number of missed targets.
  const file = second!
  const filter = process.argv[4]
  const { scenarios } = (await import(pathToFileURL(path.join(dir, file)).href)) as { scenarios: Scenario[] }
  let missed = 0
  for (const scenario of scenarios) {
    if (filter && !scenario.name.includes(filter) && !file.includes(filter)) continue
    const result = await runScenario(scenario)
    if (result.met === false) missed++
    console.log(formatResult(result, scenario))
  }
  // Scenarios leave worker processes and servers behind (stopped on exit): end here.
  process.exit(missed)
}

const filter = first
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort()
let missed = 0
console.log(`ptr benchmarks — node ${process.version}, ${os.availableParallelism()} cores\n`)
for (const file of files) {
  const child = spawnSync(process.execPath, ['--import', 'tsx', self, '--file', file, ...(filter ? [filter] : [])], { stdio: 'inherit' })
  if (child.status === null) {
    console.log(`${file}: stopped by ${child.signal}`)
    missed++
  } else missed += child.status
}
console.log(missed === 0 ? '\nall targets met' : `\n${missed} target(s) missed`)
