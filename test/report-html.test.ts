/**
 * `ptr run FILE --report run.html` and `ptr flow-runs show ID --report run.html`: one offline HTML
 * page, opened by file:// URL in a real headless Chromium (Debian's chromium, driven by
 * playwright-core) that lets no request out. Real `ptr` processes, real run history.
 */
import assert from 'node:assert/strict'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Browser } from 'playwright-core'
import type { RunReport } from '../src/render/report-json.ts'
import { launchChromium, openReport, skipWithoutChromium } from './helpers/browser.ts'
import type { OpenedReport } from './helpers/browser.ts'
import { REPO, runPtr, tempDir } from './helpers/cli.ts'

// The page's own globals, as code passed to page.evaluate() sees them (the tests' tsconfig has no DOM types).
declare const document: any
declare const window: any

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'report-flow.ts')
const BIG = path.join(REPO, 'test', 'fixtures', 'report-big.ts')
const skip = skipWithoutChromium()

/** Attempts a run made: one per Running state, as the JSON report records them. */
const attemptsOf = (run: RunReport['taskRuns'][number]) => run.stateHistory.filter((s) => s.type === 'Running').length

/** Keeps the temp folder (screenshots) when a test failed or PTR_KEEP_ARTIFACTS is set; says where. */
function artifactsFolder(prefix: string) {
  const temp = tempDir(prefix)
  let failed = false
  return {
    dir: temp.dir,
    failed: () => (failed = true),
    finish: () => {
      if (failed || process.env.PTR_KEEP_ARTIFACTS) process.stderr.write(`report artifacts kept in ${temp.dir}\n`)
      else temp.cleanup()
    },
  }
}

/** Edges of the drawn graph as `fromTask>toTask`. */
const edgesOf = (opened: OpenedReport) =>
  opened.page.$$eval('svg.graph path.edge', (paths) => paths.map((p) => `${p.getAttribute('data-from-task')}>${p.getAttribute('data-to-task')}`).sort())

const EXPECTED_EDGES = [
  // square.map([...]) → total(squares, nums): the folded map node, and numbers
  'square>total',
  'numbers>total',
  // flaky(nums)
  'numbers>flaky',
  // square.map(nums): a map over a future
  'numbers>square',
  // boiler.withOptions({ waitFor: [sum] })
  'total>boiler',
  // polish(failed): never runs
  'boiler>polish',
  // in the subflow: polish(polish(value))
  'polish>polish',
].sort()

describe('ptr run --report: the HTML report in a real browser', { skip }, () => {
  let browser: Browser
  const folder = artifactsFolder('ptr-report-')
  const htmlFile = path.join(folder.dir, 'run.html')
  let report: RunReport
  let opened: OpenedReport
  let runOutput = ''

  before(async () => {
    const result = await runPtr(['run', FIXTURE, '--report', htmlFile, '--output', 'json', '--output-file', path.join(folder.dir, 'run.json')], { cwd: folder.dir })
    runOutput = result.stdout + result.stderr
    assert.equal(result.code, 1, `the flow fails (boiler raises)\n${runOutput}`)
    assert.match(result.stderr, /wrote the HTML report to .*run\.html/)
    report = JSON.parse(readFileSync(path.join(folder.dir, 'run.json'), 'utf8')) as RunReport
    browser = await launchChromium()
    opened = await openReport(browser, htmlFile)
  })
  after(async () => {
    await opened?.close()
    await browser?.close()
    folder.finish()
  })
  const check = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      try {
        await fn()
      } catch (error) {
        folder.failed()
        throw error
      }
    })

  check('draws one timeline bar per attempt, a retry as a bar of its own, on a lane per runner slot', async () => {
    const { page } = opened
    const expected = report.taskRuns.reduce((n, run) => n + attemptsOf(run), 0)
    // numbers, 2 × 12 squares, total, boiler, flaky twice, polish twice in the subflow; the NotReady polish never ran.
    assert.equal(expected, 31)
    assert.equal(await page.locator('rect.bar').count(), expected)
    assert.equal(await page.locator('rect.cluster').count(), 0, 'no bar is too narrow to draw on its own here')
    const flaky = report.taskRuns.findIndex((run) => run.taskName === 'flaky')
    const flakyBars = page.locator(`rect.bar[data-run="${flaky}"]`)
    assert.equal(await flakyBars.count(), 2)
    assert.equal(await flakyBars.nth(0).getAttribute('data-state'), 'Failed')
    assert.match((await flakyBars.nth(0).getAttribute('class')) ?? '', /retried/)
    assert.equal(await flakyBars.nth(1).getAttribute('data-state'), 'Completed')
    const never = report.taskRuns.findIndex((run) => run.state.name === 'NotReady')
    assert.equal(await page.locator(`rect.bar[data-run="${never}"]`).count(), 0)
    const lanes = await page.$$eval('g.lane[data-kind="slot"]', (gs) => gs.map((g) => g.getAttribute('data-label')))
    assert.deepEqual(lanes, ['concurrent 1', 'concurrent 2', 'concurrent 3', 'sequential 1'])
    // Each flow run's own span heads its lanes.
    assert.deepEqual(await page.$$eval('g.lane[data-kind="flow"]', (gs) => gs.map((g) => g.getAttribute('data-label'))), ['flow report-fixture', 'subflow child'])
    assert.equal(await page.locator('rect.flow-bar').count(), 2)
  })

  check('hovering a bar shows its name, times and error', async () => {
    const { page } = opened
    const boiler = report.taskRuns.findIndex((run) => run.taskName === 'boiler')
    await page.hover(`rect.bar[data-run="${boiler}"]`)
    const tip = await page.locator('#tip').innerText()
    assert.match(tip, /boiler-0/)
    assert.match(tip, /attempt 1 of 1: Failed/)
    assert.match(tip, /\d\d:\d\d:\d\d\.\d{3} → \d\d:\d\d:\d\d\.\d{3}/)
    assert.match(tip, /the boiler exploded at 9 bar/)
  })

  check('zooms in on the wheel and back with "whole run"', async () => {
    const { page } = opened
    const width = async () => Number(await page.locator('rect.bar').first().getAttribute('width'))
    const before = await width()
    const box = (await page.locator('.tl-body').boundingBox())!
    await page.mouse.move(box.x + box.width / 2, box.y + 10)
    await page.mouse.wheel(0, -600)
    await page.waitForFunction((w) => Number(document.querySelector('rect.bar')?.getAttribute('width')) > w * 1.5 || document.querySelectorAll('rect.bar').length < 31, before)
    await page.click('button:has-text("whole run")')
    await page.waitForFunction((w) => Math.abs(Number(document.querySelector('rect.bar')?.getAttribute('width')) - w) < 0.5, before)
    assert.equal(await page.locator('rect.bar').count(), 31)
  })

  check('draws the task graph with the edges the engine recorded, a large map folded, the subflow as a group', async () => {
    const { page } = opened
    assert.deepEqual(await edgesOf(opened), EXPECTED_EDGES)
    const squares = page.locator('g.node[data-task="square"]')
    assert.equal(await squares.count(), 2, 'each map of 12 is one node')
    assert.deepEqual(await squares.evaluateAll((gs) => gs.map((g) => g.getAttribute('data-label'))), ['square ×12', 'square ×12'])
    // A folded node lists its runs in the table.
    await squares.first().click()
    assert.equal(await page.locator('#shown').innerText(), '12 of 31 runs')
    assert.match(await page.locator('#details-title').innerText(), /square ×12/)
    await page.click('#clear-group')
    assert.equal(await page.locator('#shown').innerText(), '31 of 31 runs')
    const groups = await page.$$eval('svg.graph rect.group', (rects) => rects.length)
    assert.equal(groups, 2, 'the root flow run and the subflow')
    // The JSON report carries the same edges.
    const byId = new Map(report.taskRuns.map((run) => [run.id, run]))
    const total = report.taskRuns.find((run) => run.taskName === 'total')!
    assert.deepEqual(total.upstreamTaskRunIds.map((id) => byId.get(id)!.taskName).sort(), [...Array(12).fill('square'), 'numbers'].sort())
  })

  check("shows the failed run's error with its stack and its logs on click", async () => {
    const { page } = opened
    await page.click('g.node[data-task="boiler"]')
    const details = page.locator('#details')
    await details.locator('.error-title').first().waitFor({ state: 'visible' })
    assert.match(await details.locator('#details-title').innerText(), /boiler-0/)
    assert.match(await details.locator('.error-title').first().innerText(), /RangeError: the boiler exploded at 9 bar/)
    const stack = details.locator('pre.stack').first()
    assert.ok(await stack.isVisible())
    assert.match(await stack.innerText(), /report-flow\.ts:\d+/)
    assert.match(await details.locator('pre.logs').innerText(), /checking the boiler pressure/)
    // And from its bar in the timeline, and from the flow's header.
    await page.click('#details') // nothing happens: a click outside any run
    const flaky = report.taskRuns.findIndex((run) => run.taskName === 'flaky')
    await page.click(`rect.bar[data-run="${flaky}"] >> nth=0`)
    assert.match(await details.locator('#details-title').innerText(), /flaky-0/)
    assert.match(await details.locator('ol.attempts').innerText(), /flaky fails its first attempt/)
  })

  check('filters the table by state and searches it by name', async () => {
    const { page } = opened
    await page.selectOption('#state-filter', 'Failed')
    assert.equal(await page.locator('#shown').innerText(), '1 of 31 runs')
    assert.equal(await page.locator('.rows .row').count(), 1)
    await page.selectOption('#state-filter', '')
    await page.fill('#search', 'square-1')
    // square-1, square-10, square-11, square-12 of each map
    assert.equal(await page.locator('#shown').innerText(), '8 of 31 runs')
    await page.fill('#search', '')
    assert.equal(await page.locator('#shown').innerText(), '31 of 31 runs')
    await page.click('.rows .row[data-run="0"]')
    assert.match(await page.locator('#details-title').innerText(), /numbers-0/)
  })

  check('loads nothing from anywhere: one request, the file itself; no error in the page', async () => {
    assert.deepEqual(opened.blocked, [])
    assert.deepEqual(opened.requests, [new URL(`file://${htmlFile}`).href])
    assert.deepEqual(opened.pageErrors, [])
    const html = readFileSync(htmlFile, 'utf8')
    assert.doesNotMatch(html, /<link\b|<img\b|<iframe\b|\bsrc=["']?https?:/i)
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/)
  })

  check('saves a screenshot', async () => {
    const shot = path.join(folder.dir, 'report.png')
    await opened.page.screenshot({ path: shot, fullPage: true })
    assert.ok(statSync(shot).size > 10_000)
  })

  check('ptr flow-runs show ID --report draws the same run from the run history', async () => {
    const list = await runPtr(['flow-runs', 'list', '--json'], { cwd: folder.dir })
    assert.equal(list.code, 0, list.stderr)
    const [run] = JSON.parse(list.stdout) as { id: string; flowName: string }[]
    assert.equal(run!.flowName, 'report-fixture')
    const file = path.join(folder.dir, 'history.html')
    const shown = await runPtr(['flow-runs', 'show', run!.id.slice(0, 8), '--report', file], { cwd: folder.dir })
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /wrote the HTML report of flow run .* to .*history\.html/)
    const fromHistory = await openReport(browser, file)
    try {
      assert.equal(await fromHistory.page.locator('rect.bar').count(), 31)
      assert.deepEqual(await fromHistory.page.$$eval('g.lane[data-kind="slot"]', (gs) => gs.map((g) => g.getAttribute('data-label'))), ['concurrent 1', 'concurrent 2', 'concurrent 3', 'sequential 1'])
      assert.deepEqual(await edgesOf(fromHistory), EXPECTED_EDGES)
      assert.match(await fromHistory.page.locator('#summary').innerText(), /from the run history/)
      assert.deepEqual(fromHistory.blocked, [])
    } finally {
      await fromHistory.close()
    }
  })

  check('a report path that is not .html is a usage error, before anything runs', async () => {
    const result = await runPtr(['run', FIXTURE, '--report', path.join(folder.dir, 'run.txt')], { cwd: folder.dir })
    assert.equal(result.code, 2)
    assert.match(result.stderr, /--report .*run\.txt: the report file must end in \.html/)
    assert.ok(!existsSync(path.join(folder.dir, 'run.txt')))
  })
})

describe('ptr run flows/elevator.ts --report r.html in a fresh project', { skip }, () => {
  it('shows ten bars on three lanes, offline', async () => {
    const project = tempDir('ptr-elevator-')
    let browser: Browser | undefined
    let opened: OpenedReport | undefined
    try {
      mkdirSync(path.join(project.dir, 'flows'))
      mkdirSync(path.join(project.dir, 'node_modules'))
      copyFileSync(path.join(REPO, 'flows', 'elevator.ts'), path.join(project.dir, 'flows', 'elevator.ts'))
      // The project's `ptr` is this package (its built dist/), as an install would link it.
      symlinkSync(REPO, path.join(project.dir, 'node_modules', 'ptr'), 'dir')
      const result = await runPtr(['run', 'flows/elevator.ts', '--report', 'r.html'], { cwd: project.dir })
      assert.equal(result.code, 0, result.stderr)
      browser = await launchChromium()
      opened = await openReport(browser, path.join(project.dir, 'r.html'))
      const { page } = opened
      assert.equal(await page.locator('rect.bar').count(), 10)
      assert.deepEqual(await page.$$eval('g.lane[data-kind="slot"]', (gs) => gs.map((g) => g.getAttribute('data-label'))), ['thread 1', 'thread 2', 'thread 3'])
      // Each lane runs one stop at a time: its bars never overlap.
      const lanes = await page.$$eval('g.lane[data-kind="slot"]', (gs) => gs.map((g) => [...g.querySelectorAll('rect.bar')].map((r) => [Number(r.getAttribute('x')), Number(r.getAttribute('width'))])))
      for (const bars of lanes) for (let i = 1; i < bars.length; i++) assert.ok(bars[i]![0]! >= bars[i - 1]![0]! + bars[i - 1]![1]! - 2.5, `bars overlap on a lane: ${JSON.stringify(bars)}`)
      assert.deepEqual(opened.blocked, [])
    } finally {
      await opened?.close()
      await browser?.close()
      project.cleanup()
    }
  })
})

describe('a report of 10,000 task runs', { skip }, () => {
  it('stays under 10 MB and draws a bounded number of elements (aggregated bars, a folded map, rows in view)', async () => {
    const folder = tempDir('ptr-report-big-')
    let browser: Browser | undefined
    let opened: OpenedReport | undefined
    try {
      const file = path.join(folder.dir, 'big.html')
      const result = await runPtr(['run', BIG, '--report', file], { cwd: folder.dir, timeoutMs: 120_000, env: { PREFECT_HISTORY: 'false' } })
      assert.equal(result.code, 1, result.stderr.slice(-2000))
      const size = statSync(file).size
      assert.ok(size < 10 * 1024 * 1024, `the report is ${(size / 1024 / 1024).toFixed(1)} MB`)
      browser = await launchChromium()
      opened = await openReport(browser, file)
      const { page } = opened
      const counts = await page.evaluate(() => ({
        elements: document.querySelectorAll('*').length,
        bars: document.querySelectorAll('rect.bar').length,
        clusters: [...document.querySelectorAll('rect.cluster')].reduce((n, r) => n + Number(r.getAttribute('data-count')), 0),
        nodes: document.querySelectorAll('g.node').length,
        rows: document.querySelectorAll('.rows .row').length,
        shown: document.getElementById('shown')!.textContent,
        lanes: window.ptrReport!.lanes,
      }))
      assert.ok(counts.elements < 8000, `the page holds ${counts.elements} elements`)
      assert.equal(counts.nodes, 1, 'the map of 10,000 is one node')
      assert.equal(await page.locator('g.node').getAttribute('data-label'), 'tick ×10000')
      assert.ok(counts.rows < 100, `${counts.rows} table rows in the page`)
      assert.equal(counts.shown, '10000 of 10000 runs')
      assert.equal(counts.lanes, 64)
      assert.ok(counts.bars + counts.clusters > 0 && counts.bars + counts.clusters <= 10_000)
      // The failed ones are all there: 200 of them, each with its error on click.
      await page.selectOption('#state-filter', 'Failed')
      assert.equal(await page.locator('#shown').innerText(), '200 of 10000 runs')
      await page.locator('.rows .row').first().click()
      assert.match(await page.locator('#details .error-title').first().innerText(), /tick \d+ failed on purpose/)
      assert.deepEqual(opened.pageErrors, [])
    } finally {
      await opened?.close()
      await browser?.close()
      folder.cleanup()
    }
  })
})

describe('a report whose log lines ran past what the page keeps', { skip }, () => {
  it('says so in the summary, and in a run that kept no line of its own: how many lines are only in the JSON report', async () => {
    const { buildHtmlReport } = await import('../src/render/report-html/index.ts')
    const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms).toISOString()
    const states = [
      { type: 'Pending' as const, name: 'Pending', timestamp: at(0) },
      { type: 'Running' as const, name: 'Running', timestamp: at(1) },
      { type: 'Completed' as const, name: 'Completed', timestamp: at(1000) },
    ]
    const logs = Array.from({ length: 200 }, (_, i) => ({ timestamp: at(i), level: 'info' as const, message: `line ${i}` }))
    const taskRuns = Array.from({ length: 101 }, (_, i) => ({
      id: `r${i}`, name: `r-${i}`, taskName: 'r', taskKey: 'x.ts#r', flowRunId: 'f', tags: [], mapIndex: null, mapId: null, upstreamTaskRunIds: [],
      state: states[2]!, stateHistory: states, attempts: 1, startTime: at(1), endTime: at(1000), durationSeconds: 1, error: null, logs, logsOmitted: 0,
    }))
    const report: RunReport = {
      schemaVersion: 1,
      tool: { name: 'ptr', version: '0.0.0' },
      flowRun: null,
      flowRuns: [{ id: 'f', name: 'f-1', flowName: 'f', parentFlowRunId: null, parameters: {}, taskRunner: 'concurrent', tags: [], state: states[2]!, stateHistory: states, startTime: at(1), endTime: at(1000), durationSeconds: 1, error: null, logs: [], logsOmitted: 0 }],
      taskRuns,
      counts: { Completed: 101 },
      wallSeconds: 1,
    }
    const folder = tempDir('ptr-report-logs-')
    let browser: Browser | undefined
    let opened: OpenedReport | undefined
    try {
      const file = path.join(folder.dir, 'logs.html')
      writeFileSync(file, await buildHtmlReport(report, { source: 'run' }))
      browser = await launchChromium()
      opened = await openReport(browser, file)
      const { page } = opened
      assert.match(await page.locator('#summary .facts').innerText(), /200 log lines not in this page/)
      await page.evaluate(() => window.ptrReport!.select(100))
      assert.match(await page.locator('#details').innerText(), /200 more lines not in this page \(see the JSON report\)/)
      assert.equal(await page.locator('#details pre.logs').count(), 0)
      assert.deepEqual(opened.pageErrors, [])
    } finally {
      await opened?.close()
      await browser?.close()
      folder.cleanup()
    }
  })
})
