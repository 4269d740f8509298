/**
 * `node --import tsx bench/startup-breakdown.ts [thread|process|hello] [repeats]`: where the time of
 * `ptr run` goes before the first task result. Runs ptr with PTR_STARTUP_TRACE set and prints
 * every step (main process and each pool worker) as ms since the main process started, the
 * median of the repeats.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const kind = process.argv[2] ?? 'thread'
const repeats = Number(process.argv[3] ?? 5)
const BIN = fileURLToPath(new URL('../bin/ptr.js', import.meta.url))
const FLOW = fileURLToPath(new URL('./first-result-flow.ts', import.meta.url))
const HELLO = fileURLToPath(new URL('../flows/hello.ts', import.meta.url))
const args = kind === 'hello' ? ['run', HELLO] : ['run', FLOW, '--runner', kind, '--max-workers', '1']

const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-startup-'))
const steps = new Map<string, number[]>()
const order: string[] = []
const wall: number[] = []
try {
  for (let i = 0; i < repeats + 1; i++) {
    const file = path.join(dir, `trace-${i}.txt`)
    const start = Date.now()
    execFileSync(process.execPath, [BIN, ...args], { stdio: 'pipe', env: { ...process.env, NO_COLOR: '1', PTR_STARTUP_TRACE: file } })
    const ended = Date.now()
    if (i === 0) continue // warm-up
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((line) => {
      const [at, who, ...rest] = line.split(' ')
      return { at: Number(at), who: who!, step: rest.join(' ') }
    })
    const origin = lines.find((l) => l.step === 'process start')!.at
    const main = lines[0]!.who
    wall.push(ended - start)
    const seen = new Map<string, number>()
    for (const line of lines) {
      const label = `${line.who === main ? 'main  ' : 'worker'} ${line.step.replace(/file:\/\/\S+/, 'MODULE')}`
      const n = (seen.get(label) ?? 0) + 1
      seen.set(label, n)
      const key = n > 1 ? `${label} (#${n})` : label
      if (!steps.has(key)) {
        steps.set(key, [])
        order.push(key)
      }
      steps.get(key)!.push(line.at - origin)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const rows = order.map((key) => ({ key, at: median(steps.get(key)!) })).sort((a, b) => a.at - b.at)
console.log(`ptr ${args.join(' ').replace(/\S*\//g, '')}: median of ${repeats} runs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
let previous = 0
for (const { key, at } of rows) {
  console.log(`${at.toFixed(0).padStart(6)} ms  (+${(at - previous).toFixed(0).padStart(4)})  ${key}`)
  previous = at
}
console.log(`${median(wall).toFixed(0).padStart(6)} ms  wall time of the whole command (spawn to exit)`)
