/**
 * The HTML report of 10,000 task runs (test/fixtures/report-big.ts, written by a real `ptr run
 * --report`), opened in headless Chromium: the time until the page has drawn (navigation start to
 * the end of its script, `window.ptrReport.readyMs`). The peer is the floor: a page of the same
 * size that only parses the same embedded data. Target: interactive within 2 s.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Browser } from 'playwright-core'
import { launchChromium } from '../test/helpers/browser.ts'
import type { Scenario } from './harness.ts'

const repo = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(path.join(os.tmpdir(), 'ptr-bench-report-'))
const report = path.join(dir, 'big.html')
const floor = path.join(dir, 'floor.html')
let browser: Browser | undefined

function writeReports(): void {
  const run = spawnSync(process.execPath, [path.join(repo, 'bin', 'ptr.js'), 'run', path.join(repo, 'test', 'fixtures', 'report-big.ts'), '--report', report], {
    cwd: dir,
    env: { ...process.env, PREFECT_HISTORY: 'false', CI: 'true' },
    encoding: 'utf8',
  })
  if (run.status !== 1) throw new Error(`ptr run report-big.ts ended ${run.status}: ${run.stderr.slice(-2000)}`)
  const html = readFileSync(report, 'utf8')
  const data = /<script type="application\/json" id="ptr-data">([\s\S]*?)<\/script>/.exec(html)![1]!
  writeFileSync(
    floor,
    `<!doctype html><html><body><script type="application/json" id="ptr-data">${data}</script><script>JSON.parse(document.getElementById('ptr-data').textContent);window.ptrReport={readyMs:performance.now()};document.body.setAttribute('data-ready','1')</script></body></html>`,
  )
}

async function readyMs(file: string): Promise<number> {
  browser ??= await launchChromium()
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } })
  try {
    await page.goto(pathToFileURL(file).href)
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: 30_000 })
    return await page.evaluate(() => (globalThis as unknown as { ptrReport: { readyMs: number } }).ptrReport.readyMs)
  } finally {
    await page.close()
  }
}

let written = false
const prepare = () => {
  if (!written) writeReports()
  written = true
}
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

export const scenarios: Scenario[] = [
  {
    name: 'HTML report of 10,000 task runs: navigation to drawn, in headless Chromium',
    unit: 'ms',
    better: 'lower',
    repeats: 5,
    ours: {
      label: 'ptr report',
      measure: async () => {
        prepare()
        return readyMs(report)
      },
    },
    peer: {
      label: 'same data, parse only',
      measure: async () => {
        prepare()
        const ms = await readyMs(floor)
        return ms
      },
    },
    target: { text: '≤ 2000 ms', met: (ours) => ours <= 2000 },
  },
]
