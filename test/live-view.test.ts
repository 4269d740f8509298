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
    assert.match(done, /10 task runs: 10 Completed in \d+\.\d\d s/)
    assert.match(done, /stop_at_floor .*10\/10 · 10 completed/)
    assert.ok(term.cursorVisible())
  })

  it('shows a failed run with its error, and the failure in the summary', async () => {
    term.type(`clear; ${ptr} run flows/failures.ts --param strict=true; echo "failures-exit=$?"`)
    const done = await term.waitFor(/failures-exit=\d+/)
    assert.match(done, /failures-exit=1/)
    assert.match(done, /parse .*1 failed/)
    assert.match(done, /✗ parse-\d+ Failed.*JSON/)
    assert.match(done, /3 task runs: 1 Completed, 1 Failed, 1 NotReady/)
  })

  it('after Ctrl-C the runs are Cancelled, the cursor is visible again and the terminal is usable', async () => {
    term.type(`clear; ${ptr} run flows/elevator.ts --param seconds=30; echo "cancelled-exit=$?"`)
    await term.waitFor(/stop_at_floor-\d+ running/)
    assert.equal(term.cursorVisible(), false, 'listr2 hides the cursor while it draws')
    term.keys('C-c')
    const done = await term.waitFor(/cancelled-exit=\d+/, 15_000)
    assert.match(done, /cancelled-exit=130/)
    assert.match(done, /10 task runs: 10 Cancelled/)
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
    assert.match(done, /10000 task runs: 10000 Completed/)
    assert.match(done, /tick \(map\) █+ 10000\/10000 · 10000 completed/)
    // Nothing scrolled off the screen: the view redrew in place rather than printing rows.
    assert.equal(term.historySize(), 0, term.scrollback())
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
