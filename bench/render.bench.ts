/**
 * Live view vs no view, same flow, same run, both in a pseudo-terminal: 2,000 tasks of 5 ms at
 * concurrency 8, and 100,000 no-op runs. Target: the live view costs at most 1.1× the wall time.
 * The clock starts before the live view starts, so its start-up counts.
 * Identical no-op runs differ by up to ±50 ms here (GC), as much as the view's whole cost (~3%:
 * its event handler ~10–25 ms per 300,000 events), so the 100k case takes 15 samples.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Scenario } from './harness.ts'

const child = fileURLToPath(new URL('./render-child.ts', import.meta.url))
// The child loads as `ptr run` does: ptr's dependencies first (bin/preload.js), then tsx.
const preload = fileURLToPath(new URL('./render-preload.mjs', import.meta.url))

function inPty(mode: 'live' | 'none', scenario: 'sleep' | 'noop'): number {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-'))
  const out = path.join(dir, 'ms')
  try {
    execFileSync('script', ['-qfec', `${process.execPath} --import ${preload} --import tsx ${child} ${mode} ${scenario}`, '/dev/null'], {
      env: { ...process.env, PTR_BENCH_OUT: out, COLUMNS: '120', LINES: '40' },
      stdio: 'pipe',
      maxBuffer: 512 * 1024 * 1024,
    })
    return Number(readFileSync(out, 'utf8'))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const target = { text: '≤ 1.1× no view', met: (ours: number, peer: number | undefined) => peer !== undefined && ours <= 1.1 * peer }

export const scenarios: Scenario[] = [
  {
    name: '2,000 tasks of 5 ms at concurrency 8: live view vs no view',
    unit: 'ms',
    better: 'lower',
    repeats: 7,
    ours: { label: 'live view', measure: async () => inPty('live', 'sleep') },
    peer: { label: 'no view', measure: async () => inPty('none', 'sleep') },
    target,
  },
  {
    name: '100,000 no-op runs: live view vs no view',
    unit: 'ms',
    better: 'lower',
    repeats: 15,
    ours: { label: 'live view', measure: async () => inPty('live', 'noop') },
    peer: { label: 'no view', measure: async () => inPty('none', 'noop') },
    target,
  },
]
