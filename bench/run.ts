/**
 * `npm run bench [filter]`: runs every scenario in bench/*.bench.ts (or those whose name contains
 * the filter) and prints ptr next to its raw peer, measured in the same run, as a ratio.
 */
import { readdirSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import path from 'node:path'
import { formatResult, runScenario } from './harness.ts'
import type { Scenario } from './harness.ts'

const dir = path.dirname(fileURLToPath(import.meta.url))
const filter = process.argv[2]
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort()
let missed = 0
console.log(`ptr benchmarks — node ${process.version}, ${(await import('node:os')).availableParallelism()} cores\n`)
for (const file of files) {
  const { scenarios } = (await import(pathToFileURL(path.join(dir, file)).href)) as { scenarios: Scenario[] }
  for (const scenario of scenarios) {
    if (filter && !scenario.name.includes(filter) && !file.includes(filter)) continue
    const result = await runScenario(scenario)
    if (result.met === false) missed++
    console.log(formatResult(result, scenario))
  }
}
console.log(missed === 0 ? '\nall targets met' : `\n${missed} target(s) missed`)
