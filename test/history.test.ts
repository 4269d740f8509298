/**
 * The run history: `ptr run` records every flow run and task run in <localDir>/history.db, and
 * `ptr flow-runs list|show|prune` read it. Real `ptr` processes, a real SQLite file.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import { Ajv2020 } from 'ajv/dist/2020.js'
import Database from 'better-sqlite3'
import { REPO, runPtr, tempProject, waitForOutput } from './helpers/cli.ts'

const FLOWS = {
  'pipeline.ts': `import { flow, task } from '${REPO}/src/index.ts'
export const fetchRows = task({ name: 'fetch_rows' }, async (n: number) => Array.from({ length: n }, (_, i) => i))
export const check = task({ name: 'check' }, async (rows: number[]) => {
  console.log('checking', rows.length)
  if (rows.length > 3) throw new RangeError('too many rows: ' + rows.length)
  return rows.length
})
export const child = flow({ name: 'child' }, async ({ n }: { n: number }) => n + 1)
export default flow({ name: 'pipeline' }, async ({ n = 2 }: { n?: number }) => {
  const rows = fetchRows.submit(n)
  await child({ n })
  return check(rows)
})
`,
  'broken.ts': `import { flow } from '${REPO}/src/index.ts'
export default flow({ name: 'broken' }, async () => {
  throw new TypeError('no rows to check')
})
`,
  'slow.ts': `import { flow, task } from '${REPO}/src/index.ts'
export const nap = task({ name: 'nap' }, async (ms: number) => {
  console.log('napping')
  await new Promise((resolve) => setTimeout(resolve, ms))
  return ms
})
export default flow({ name: 'slow' }, async ({ ms = 400 }: { ms?: number }) => {
  await nap(10)
  return nap(ms)
})
`,
}

const schema = JSON.parse(readFileSync(path.join(REPO, 'docs', 'report.schema.json'), 'utf8'))
const validator = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(schema)
// A plain boolean: the validator's type guard would narrow the report to `unknown`.
const valid = (data: unknown): boolean => validator(data)

interface Listed {
  id: string
  flowName: string
  state: { type: string; name: string }
  taskRuns: number
  counts: Record<string, number>
}

describe('the run history (ptr run records, ptr flow-runs reads)', () => {
  const project = tempProject(FLOWS)
  after(project.remove)
  const env = { CI: 'true' }
  const ptr = (args: string[], extra: Record<string, string> = {}) => runPtr(args, { cwd: project.dir, env: { ...env, ...extra } })
  const list = async (...args: string[]): Promise<Listed[]> => {
    const result = await ptr(['flow-runs', 'list', '--json', ...args])
    assert.equal(result.code, 0, result.stderr)
    return JSON.parse(result.stdout) as Listed[]
  }

  it('records each flow run with its subflows and task runs; list shows the newest first, with counts', async () => {
    assert.equal((await ptr(['run', 'pipeline.ts'])).code, 0)
    const failed = await ptr(['run', 'pipeline.ts', '--param', 'n=5'])
    assert.equal(failed.code, 1, failed.stderr)
    const runs = await list()
    assert.equal(runs.length, 2, 'subflow runs are not listed as runs of their own')
    assert.deepEqual(
      runs.map((r) => [r.flowName, r.state.type, r.taskRuns]),
      [
        ['pipeline', 'Failed', 2],
        ['pipeline', 'Completed', 2],
      ],
    )
    assert.deepEqual(runs[0]!.counts, { Completed: 1, Failed: 1 })
    assert.deepEqual((await list('--state', 'failed')).map((r) => r.id), [runs[0]!.id])
    assert.deepEqual(await list('--flow', 'nope'), [])
    assert.deepEqual(await list('--state', 'Cancelled'), [], 'a state no run is in: an empty list')
    assert.deepEqual(await list('--state', 'timedout'), [], 'a state name (TimedOut), in any case')
    const typo = await ptr(['flow-runs', 'list', '--state', 'Complted'])
    assert.equal(typo.code, 2, 'a state no run was ever in, and no state ptr has, is a typo: not an empty list')
    assert.match(typo.stderr, /^ptr: --state 'Complted' is no state: use a state type \(Scheduled, Pending, Running, Completed, Failed, Crashed, Cancelled\) or a state name \([^)]*TimedOut[^)]*\)\n$/)
    const text = await ptr(['flow-runs', 'list'])
    assert.match(text.stdout, new RegExp(`^${runs[0]!.id.slice(0, 8)}\\s+pipeline\\s+pipeline-\\S+\\s+Failed`, 'm'))
  })

  it('show ID (a prefix will do) is the JSON report of the run, valid against docs/report.schema.json', async () => {
    const [latest] = await list('--state', 'Failed')
    const result = await ptr(['flow-runs', 'show', latest!.id.slice(0, 6), '--json'])
    assert.equal(result.code, 0, result.stderr)
    const report = JSON.parse(result.stdout)
    assert.ok(valid(report), JSON.stringify(validator.errors, null, 2))
    assert.equal(report.flowRun.id, latest!.id)
    assert.deepEqual(report.flowRun.parameters, { n: 5 })
    assert.deepEqual(
      report.flowRuns.map((f: { flowName: string; state: { type: string } }) => [f.flowName, f.state.type]),
      [
        ['pipeline', 'Failed'],
        ['child', 'Completed'],
      ],
    )
    const check = report.taskRuns.find((t: { taskName: string }) => t.taskName === 'check')
    assert.equal(check.error.name, 'RangeError')
    assert.deepEqual(
      check.logs.map((l: { message: string }) => l.message),
      ['checking 5'],
    )
    assert.deepEqual(report.counts, { Completed: 1, Failed: 1 })
    const text = await ptr(['flow-runs', 'show', latest!.id.slice(0, 8)])
    assert.match(text.stdout, /check-\d+\s+Failed\s+1\s+\S+ s\s+RangeError: too many rows: 5/)
    assert.match(text.stdout, /flow run child-\S+ \(child\) Completed/)
    // Each failure as ptr run's summary shows it: where in the user's code, with the code around it.
    assert.match(text.stdout, /\nfailures:\n {2}check-\d+ failed after 1 attempt\n {4}RangeError: too many rows: 5\n {4}at pipeline\.ts:5:\d+\n/)
    assert.match(text.stdout, /> 5 \|\s+if \(rows\.length > 3\) throw new RangeError/)
    assert.doesNotMatch(text.stdout, /^ {2}flow run pipeline-\S+ failed$/m, "the flow run failed with its task run's error: shown once, under the task run")
    const debug = await ptr(['--debug', 'flow-runs', 'show', latest!.id.slice(0, 8)])
    assert.match(debug.stdout, /RangeError: too many rows: 5\n {4}at .*pipeline\.ts:5:\d+\)?\n/, 'with --debug: the whole stack')
  })

  it('show shows a flow run that failed outside its task runs with its error where the code threw it', async () => {
    assert.equal((await ptr(['run', 'broken.ts'])).code, 1)
    const [broken] = await list('--flow', 'broken')
    const text = await ptr(['flow-runs', 'show', broken!.id])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /\nfailures:\n {2}flow run broken-\S+ failed\n {4}TypeError: no rows to check\n {4}at broken\.ts:3:9\n/)
  })

  it('show prints the value a completed flow run returned, and its subflow runs\' values', async () => {
    const [completed] = await list('--flow', 'pipeline', '--state', 'Completed')
    const text = await ptr(['flow-runs', 'show', completed!.id])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /^flow run pipeline-\S+ \(pipeline\) Completed\n(?: {2}.*\n)* {2}result 2\n/m)
    assert.match(text.stdout, /^ {2}flow run child-\S+ \(child\) Completed\n(?: {4}.*\n)* {4}result 3\n/m)
  })

  it('show with an unknown or ambiguous id is one line and exit 2', async () => {
    const unknown = await ptr(['flow-runs', 'show', 'ffffffff'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /^ptr: no flow run 'ffffffff' in the history .*history\.db; ptr flow-runs list shows the recorded ones\n$/)
    const short = await ptr(['flow-runs', 'show', 'ab'])
    assert.equal(short.code, 2)
    assert.match(short.stderr, /too short; give at least 4 characters/)
  })

  it('a SIGKILLed ptr run is found stale on the next open: its flow run and unfinished task runs end Crashed', async () => {
    let stdout = ''
    let child: import('node:child_process').ChildProcess | undefined
    const ended = runPtr(['run', 'slow.ts', '--param', 'ms=30000'], {
      cwd: project.dir,
      env,
      onSpawn: (c) => {
        child = c
        c.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      },
    })
    await waitForOutput(() => stdout, /nap-1 \| napping/)
    // Past one write of the recorder (every 250 ms): the Running states are on disk.
    await new Promise((resolve) => setTimeout(resolve, 600))
    child!.kill('SIGKILL')
    assert.equal((await ended).signal, 'SIGKILL')
    const runs = await list('--flow', 'slow')
    const crashed = runs.find((r) => r.state.type === 'Crashed')
    assert.ok(crashed, JSON.stringify(runs))
    const report = JSON.parse((await ptr(['flow-runs', 'show', crashed.id, '--json'])).stdout)
    assert.match(report.flowRun.error.message, /the ptr process \(pid \d+\) ended before this run did/)
    // It ran until its last heartbeat, as far as anyone can tell: that is its end, and its duration.
    assert.equal(report.flowRun.endTime, report.flowRun.state.timestamp)
    assert.equal(report.flowRun.durationSeconds, (Date.parse(report.flowRun.endTime) - Date.parse(report.flowRun.startTime)) / 1000)
    assert.match((await ptr(['flow-runs', 'show', crashed.id])).stdout, /took \d+\.\d+ s/)
    const naps = report.taskRuns.map((t: { name: string; state: { type: string } }) => [t.name, t.state.type])
    assert.deepEqual(naps, [
      ['nap-0', 'Completed'],
      ['nap-1', 'Crashed'],
    ])
  })

  it('two ptr runs of the same flow at once both complete, and both are recorded', async () => {
    const before = (await list('--flow', 'slow', '--state', 'Completed')).length
    const results = await Promise.all([ptr(['run', 'slow.ts', '--param', 'ms=300']), ptr(['run', 'slow.ts', '--param', 'ms=300'])])
    for (const result of results) assert.equal(result.code, 0, result.stderr)
    assert.equal((await list('--flow', 'slow', '--state', 'Completed')).length, before + 2)
  })

  it('prune --older-than deletes finished flow runs with their task runs', async () => {
    const before = await list()
    assert.ok(before.length >= 4)
    const kept = await ptr(['flow-runs', 'prune', '--older-than', '1d', '--json'])
    assert.deepEqual(JSON.parse(kept.stdout), { pruned: 0 })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const pruned = await ptr(['flow-runs', 'prune', '--older-than', '0s', '--json'])
    assert.deepEqual(JSON.parse(pruned.stdout), { pruned: before.length })
    assert.deepEqual(await list(), [])
    const db = new Database(project.path('.ptr', 'history.db'), { readonly: true })
    try {
      assert.equal((db.prepare('SELECT count(*) AS n FROM task_runs').get() as { n: number }).n, 0)
    } finally {
      db.close()
    }
    const bad = await ptr(['flow-runs', 'prune', '--older-than', 'soon'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--older-than must be a duration like 30s, 15m, 12h or 7d, got 'soon'/)
  })
})

describe('turning the history off, and a history that cannot be used', () => {
  it('PREFECT_HISTORY=false records nothing', async () => {
    const project = tempProject(FLOWS)
    try {
      const result = await runPtr(['run', 'slow.ts', '--param', 'ms=1'], { cwd: project.dir, env: { CI: 'true', PREFECT_HISTORY: 'false' } })
      assert.equal(result.code, 0, result.stderr)
      assert.equal(existsSync(project.path('.ptr', 'history.db')), false)
      const listed = await runPtr(['flow-runs', 'list'], { cwd: project.dir })
      assert.equal(listed.code, 2)
      assert.match(listed.stderr, /no run history at .*history\.db: ptr run records into it \(unless PREFECT_HISTORY=false\)/)
      const bad = await runPtr(['run', 'slow.ts'], { cwd: project.dir, env: { CI: 'true', PREFECT_HISTORY: 'maybe' } })
      assert.equal(bad.code, 2)
      assert.match(bad.stderr, /PREFECT_HISTORY/)
    } finally {
      project.remove()
    }
  })

  it('a file that is not a history is a warning: the flow run still runs', async () => {
    const project = tempProject(FLOWS)
    try {
      mkdirSync(project.path('.ptr'))
      const db = new Database(project.path('.ptr', 'history.db'))
      db.exec('CREATE TABLE invoices (id INTEGER)')
      db.close()
      const result = await runPtr(['run', 'slow.ts', '--param', 'ms=1'], { cwd: project.dir, env: { CI: 'true' } })
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stderr, /^ptr: the run history is off for this run: .*history\.db is not a ptr run history \(it holds other tables: invoices\); move it away or set localDir elsewhere$/m)
    } finally {
      project.remove()
    }
  })
})

describe('a history file that opens but cannot be read as one (in-process)', () => {
  it('is an error naming the file and what to do, and leaves the file closed', async () => {
    const { HistoryStore } = await import('../src/history/store.ts')
    const { readdirSync, readlinkSync } = await import('node:fs')
    const project = tempProject()
    try {
      const file = project.path('damaged.db')
      // Its tables, but one lacks a column the open needs (a damaged or hand-edited file).
      const db = new Database(file)
      db.exec(`CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '2');
        CREATE TABLE flow_runs (id TEXT PRIMARY KEY, root_id TEXT NOT NULL, parent_id TEXT, flow_name TEXT NOT NULL, state_type TEXT NOT NULL,
          state_name TEXT NOT NULL, record TEXT NOT NULL, host TEXT NOT NULL, heartbeat INTEGER NOT NULL, created INTEGER NOT NULL, ended INTEGER, file TEXT, result BLOB);`)
      db.close()
      const openFds = () => readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(file)
        } catch {
          return false
        }
      }).length
      assert.throws(
        () => HistoryStore.open(file),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'PTR_HISTORY_OPEN')
          assert.match(error.message, /^cannot use the run history .*damaged\.db: no such column: pid; .*move it away.*PREFECT_HISTORY=false/)
          return true
        },
      )
      assert.equal(openFds(), 0, 'the connection was closed')
    } finally {
      project.remove()
    }
  })
})

describe('what the recorder writes while a flow runs (in-process, a real file)', () => {
  it('a started run is written within a write or two; runs that have not started wait until they do (or the end)', async () => {
    const { ConcurrentTaskRunner, flow, onRunEvent, task } = await import('../src/index.ts')
    const { HistoryStore } = await import('../src/history/store.ts')
    const { HistoryRecorder } = await import('../src/history/recorder.ts')
    const project = tempProject()
    const store = HistoryStore.open(project.path('history.db'))
    const recorder = new HistoryRecorder(store)
    const off = onRunEvent(recorder.onEvent)
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const held = task({ name: 'held' }, async (i: number) => {
      await gate
      return i
    })
    const states = () => {
      const db = new Database(project.path('history.db'), { readonly: true })
      try {
        return (db.prepare('SELECT state_name AS s FROM task_runs ORDER BY seq').all() as { s: string }[]).map((r) => r.s).join(' ')
      } finally {
        db.close()
      }
    }
    try {
      const f = flow({ name: 'held', taskRunner: new ConcurrentTaskRunner({ maxConcurrency: 2 }) }, async () => {
        const list = held.map([1, 2, 3, 4])
        await new Promise((resolve) => setTimeout(resolve, 700))
        const during = states()
        release()
        await list.result()
        return during
      })
      const { state } = await f.run()
      assert.equal(state.result, 'Running Running', 'the two running runs are on disk; the two waiting for a slot are not yet')
      recorder.close()
      assert.equal(states(), 'Completed Completed Completed Completed')
    } finally {
      off()
      recorder.close()
      store.close()
      project.remove()
    }
  })
})
