/**
 * The live view in a real terminal (tmux), read off the screen; and plain output on a terminal
 * when CI is set (through `script`, which gives the command a pty and records every byte).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { PTR_BIN, REPO, tempDir } from './helpers/cli.ts'
import { Terminal, hasTmux } from './helpers/terminal.ts'

const skip = !hasTmux() && !process.env.CI ? 'tmux is not installed: apt-get install -y tmux to run the live-view tests' : false
const ptr = `node ${PTR_BIN}`

describe('live view in a terminal', { skip }, () => {
  let term: Terminal
  before(() => {
    term = new Terminal('live').open(REPO)
  })
  after(() => term?.close())

  it('shows running and completed stops while the elevator runs, then the summary', async () => {
    term.type(`clear; ${ptr} run flows/elevator.ts --param seconds=0.8; echo "elevator-exit=$?"`)
    const running = await term.waitFor((screen) => /stop_at_floor-\d+ running \d+\.\d s/.test(screen) && /stop_at_floor .* 3 running/.test(screen))
    assert.match(running, /flow run elevator-\S+ Running/)
    const progressing = await term.waitFor(/stop_at_floor .*[1-9]\d*\/10 .* completed/)
    assert.match(progressing, /\d+ running/)
    const done = await term.waitFor(/elevator-exit=\d+/)
    assert.match(done, /elevator-exit=0/)
    assert.match(done, /10 task runs: 10 completed in \d+\.\d\d s/)
    assert.match(done, /✔ stop_at_floor .*10\/10 · 10 completed/)
    // What the tasks printed stays in the scrollback, above the view.
    const all = term.scrollback()
    for (let floor = 1; floor <= 10; floor++) assert.match(all, new RegExp(`stop_at_floor-${floor} \\| elevator stopping at floor ${floor}$`, 'm'))
    assert.match(all, /result: 'visited 10 floors'/)
    assert.ok(term.cursorVisible())
  })

  it('shows a failed run with its error, and the failure in the summary', async () => {
    term.type(`clear; ${ptr} run flows/failures.ts --param strict=true; echo "failures-exit=$?"`)
    const done = await term.waitFor(/failures-exit=\d+/)
    assert.match(done, /failures-exit=1/)
    assert.match(done, /✗ parse .*1 failed/)
    assert.match(done, /✗ parse-\d+ failed after 1 attempt\n +SyntaxError: .*JSON/)
    assert.match(done, /3 task runs: 1 completed, 1 failed, 1 not ready/)
    // The NotReady row is not a ✔, and names its root cause once, by run name.
    assert.match(done, /○ store .*1\/1 · 1 not ready/)
    assert.doesNotMatch(done, /✔ store/)
    assert.match(done, /○ store-\d+ not ready: upstream parse-\d+ failed\n/)
    // The retried task: its retries in its row, its failed attempts in the summary.
    assert.match(done, /✔ flaky_fetch .*1 completed · 2 retries/)
    assert.match(done, /↻ flaky_fetch-\d+ completed after 2 retries\n +attempt 1 failed: connection reset \(attempt 1\)\n +attempt 2 failed: connection reset \(attempt 2\)/)
    assert.doesNotMatch(done, /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}/, 'no run ids in the failure text')
  })

  it('after Ctrl-C the runs are Cancelled, the cursor is visible again and the terminal is usable', async () => {
    term.type(`clear; ${ptr} run flows/elevator.ts --param seconds=30; echo "cancelled-exit=$?"`)
    await term.waitFor(/stop_at_floor-\d+ running/)
    assert.equal(term.cursorVisible(), false, 'the live view hides the cursor while it draws')
    term.keys('C-c')
    const done = await term.waitFor(/cancelled-exit=\d+/, 15_000)
    assert.match(done, /cancelled-exit=130/)
    assert.match(done, /10 task runs: 10 cancelled/)
    assert.match(done, /⊘ stop_at_floor .*10 cancelled/)
    assert.doesNotMatch(done, /✔ stop_at_floor/)
    assert.ok(term.cursorVisible(), 'cursor hidden after Ctrl-C')
    term.type('echo "usable-$((20 + 22))"')
    await term.waitFor(/usable-42/)
  })

  it('a map over 10,000 items keeps the view on one screen and ends with the right counts', async () => {
    term.type('clear')
    term.type(`clear; ${ptr} run ${path.join('test', 'fixtures', 'big-map.ts')}; echo "map-exit=$?"`)
    const seen = await term.waitFor(/tick \(map\) .*\d+\/10000/)
    assert.ok(seen.trimEnd().split('\n').length <= term.rows)
    const done = await term.waitFor(/map-exit=\d+/, 60_000)
    assert.match(done, /map-exit=0/)
    assert.match(done, /10000 task runs: 10000 completed/)
    assert.match(done, /tick \(map\) █+ 10000\/10000 · 10000 completed/)
    // Nothing scrolled off the screen: the view redrew in place rather than printing rows.
    assert.equal(term.historySize(), 0, term.scrollback())
  })
})

describe('live view: output, rows and folding', { skip }, () => {
  let term: Terminal
  before(() => {
    term = new Terminal('rows').open(REPO)
  })
  after(() => term?.close())

  it("keeps what a task prints and the flow's return value in the scrollback", async () => {
    term.type(`clear; ${ptr} run test/fixtures/live-output.ts; echo "output-exit=$?"`)
    await term.waitFor(/output-exit=\d+/)
    const all = term.scrollback()
    assert.match(all, /output-exit=0/)
    assert.match(all, /^say-0 \| marker-kestrel-printed$/m)
    assert.match(all, /^result: \{ answer: 42, letters: 7, word: 'marker-returned' \}$/m)
  })

  it('shows a subflow run as a row under its parent, with its runner; failed, timed-out and not-ready rows each look different', async () => {
    term.type(`clear; ${ptr} run test/fixtures/live-rows.ts; echo "rows-exit=$?"`)
    await term.waitFor(/rows-exit=\d+/)
    const all = term.scrollback()
    assert.match(all, /rows-exit=1/)
    assert.match(all, /^ {2}✔ subflow run child-\S+ Completed · \d+\.\d s · sequential$/m)
    assert.match(all, /^ {4}✔ leaf \(map\) .*3\/3 · 3 completed$/m)
    assert.match(all, /^ {2}✗ broken .*1 failed$/m)
    assert.match(all, /^ {2}○ after_broken .*1 not ready$/m)
    assert.match(all, /^ {2}⧗ nap \(map\) .*1 completed · 1 timed out$/m)
    assert.match(all, /✗ nap-1 timed out after 1 attempt/)
    assert.match(all, /8 task runs: 5 completed, 1 failed, 1 not ready, 1 timed out/)
  })

  it('on a 12-row terminal, running and failed rows stay, completed rows fold, and no blank lines are left behind', async () => {
    const small = new Terminal('small', 100, 12).open(REPO)
    try {
      small.type(`clear; ${ptr} run test/fixtures/live-rows.ts --param quickTasks=12 --param slowMs=4000; echo "small-exit=$?"`)
      const during = await small.waitFor((screen) => /quick_11/.test(screen) || /folded/.test(screen))
      const folded = await small.waitFor(/folded: .*task run/)
      assert.ok(folded.trimEnd().split('\n').length <= 12, folded)
      assert.match(folded, /slow-0 running/, `the running row stays:\n${folded}`)
      assert.match(folded, /✗ broken/, `the failed row stays:\n${folded}`)
      void during
      await small.waitFor(/small-exit=\d+/, 30_000)
      const all = small.scrollback()
      // The final frame lists every failed row.
      assert.match(all, /✗ broken .*1 failed/)
      assert.match(all, /⧗ nap \(map\)/)
      const end = all.slice(all.lastIndexOf('flow run live_rows'))
      assert.doesNotMatch(all.slice(all.indexOf('✗ flow run live_rows')), /\n[ \t]*\n[ \t]*\n/, `blank lines left behind:\n${all}`)
      void end
    } finally {
      small.close()
    }
  })
})

describe('CI=true on a terminal', { skip: spawnSync('script', ['--version']).status === 0 ? false : 'script (util-linux) is not installed' }, () => {
  it('prints plain lines, one per state change, with no cursor codes', () => {
    const dir = tempDir()
    after(dir.cleanup)
    const log = path.join(dir.dir, 'typescript')
    const result = spawnSync('script', ['-qfec', `${process.execPath} ${PTR_BIN} run flows/elevator.ts --param seconds=0.05`, log], {
      cwd: REPO,
      env: { ...process.env, CI: 'true', NODE_TEST_CONTEXT: undefined, NO_COLOR: undefined, FORCE_COLOR: undefined },
      encoding: 'utf8',
    })
    assert.equal(result.status, 0, result.stderr)
    const raw = readFileSync(log, 'utf8')
    // CSI sequences other than colours (SGR, ending in m): cursor moves, erases, hide/show.
    const cursorCodes = raw.match(/\x1b\[[0-9;?]*[A-Za-ln-z]/g) ?? []
    assert.deepEqual(cursorCodes, [])
    const lines = raw.split(/\r?\n/)
    for (let floor = 1; floor <= 10; floor++) {
      for (const state of ['Pending', 'Running', 'Completed']) {
        const count = lines.filter((l) => new RegExp(` stop_at_floor-${floor} ${state}`).test(l.replace(/\x1b\[[0-9;]*m/g, ''))).length
        assert.equal(count, 1, `stop_at_floor-${floor} ${state}`)
      }
    }
  })
})
