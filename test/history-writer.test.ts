/**
 * The history's writer thread: the recorder posts batches of run events, the thread writes them
 * on its own connection. In-process against a real SQLite file, and in child processes for what
 * only a process can show (that the thread never keeps it alive).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { ConcurrentTaskRunner, SequentialTaskRunner, flow, getRunLogger, onRunEvent, task } from '../src/index.ts'
import { HistoryRecorder } from '../src/history/recorder.ts'
import { HistoryStore } from '../src/history/store.ts'
import { HistoryWriter } from '../src/history/writer.ts'
import { OP_LOG, OP_RUNNING, OP_STATE, OP_TASK, OP_VALUE_ID, SAME, STATE_TYPE_CODE, stateCode } from '../src/history/writer-protocol.ts'
import { WriterThread } from '../src/history/writer-thread.ts'
import { REPO, tempProject } from './helpers/cli.ts'

const project = tempProject()
after(project.remove)
let n = 0

/** A fresh history file with a recorder listening to every run event. */
function recorded() {
  const file = project.path(`w${n++}`, 'history.db')
  const store = HistoryStore.open(file)
  const recorder = new HistoryRecorder(store)
  const errors: Error[] = []
  recorder.onError = (error) => errors.push(error)
  const off = onRunEvent(recorder.onEvent)
  return {
    file,
    store,
    recorder,
    errors,
    end: () => {
      off()
      recorder.close()
      store.close()
    },
  }
}

/** Reads the file on a connection of its own, as another process would. */
function query<T>(file: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(file, { readonly: true })
  try {
    return db.prepare(sql).all(...params) as T[]
  } finally {
    db.close()
  }
}

describe('what the recorder posts lands in the file', () => {
  it('task runs with their states, errors, logs, tags, upstream runs, subflow, values (inline and in a file) and why a value was not kept', async () => {
    const h = recorded()
    const double = task({ name: 'double' }, (x: number) => x * 2)
    const big = task({ name: 'big' }, () => 'x'.repeat(100_000))
    const chatty = task({ name: 'chatty', tags: ['io'] }, (x: number) => {
      getRunLogger().info(`got ${x}`)
      return { got: x, at: new Date(0) }
    })
    class Point {
      constructor(readonly x: number) {}
    }
    const point = task({ name: 'point' }, () => new Point(1))
    const boom = task({ name: 'boom', retries: 1, retryDelaySeconds: 0 }, () => {
      throw new RangeError('no luck')
    })
    const child = flow({ name: 'child' }, async () => double(21))
    // What the engine said, to compare with what was written.
    const seen = new Map<string, [string, string, number, string | undefined][]>()
    const watch = onRunEvent((event) => {
      if (event.kind !== 'task-run-state') return
      const states = seen.get(event.taskRun.id) ?? []
      states.push([event.state.type, event.state.name, event.state.timestamp, event.state.type === 'Running' ? event.taskRun.slot : undefined])
      seen.set(event.taskRun.id, states)
    })
    try {
      const f = flow({ name: 'writes', taskRunner: new SequentialTaskRunner() }, async () => {
        const four = double.submit(2)
        await chatty(four)
        await big()
        await point()
        await child()
        await boom.submit().result({ raiseOnFailure: false })
        return four.result()
      })
      const { state } = await f.run(undefined, { results: h.recorder })
      assert.equal(state.type, 'Completed', state.error?.stack)
      h.recorder.close()
      const root = h.store.list()[0]!
      const shown = h.store.get(root.id)!
      assert.deepEqual(
        shown.flowRuns.map((r) => [r.flowName, r.state.name]),
        [
          ['writes', 'Completed'],
          ['child', 'Completed'],
        ],
      )
      const byTask = new Map(shown.taskRuns.map((r) => [r.taskName, r]))
      assert.deepEqual(
        shown.taskRuns.map((r) => r.taskName),
        ['double', 'chatty', 'big', 'point', 'double', 'boom'],
      )
      for (const run of shown.taskRuns) {
        assert.deepEqual(
          run.stateHistory.map((s) => [s.type, s.name, Date.parse(s.timestamp), s.slot]),
          seen.get(run.id),
          run.name,
        )
      }
      assert.ok(
        shown.taskRuns.every((r) => r.stateHistory.some((s) => s.type === 'Running' && s.slot !== undefined)),
        'every attempt says its slot',
      )
      const chattyRun = byTask.get('chatty')!
      assert.deepEqual(chattyRun.tags, ['io'])
      assert.deepEqual(chattyRun.upstreamTaskRunIds, [shown.taskRuns[0]!.id])
      assert.deepEqual(
        chattyRun.logs.map((l) => [l.level, l.message]),
        [['info', 'got 4']],
      )
      assert.equal(shown.taskRuns[4]!.flowRunId, shown.flowRuns[1]!.id, 'the subflow run is the task run’s flow run')
      const boomRun = byTask.get('boom')!
      assert.equal(boomRun.state.type, 'Failed')
      assert.equal(boomRun.attempts, 2)
      assert.equal(boomRun.error?.name, 'RangeError')
      assert.match(boomRun.error?.message ?? '', /no luck/)
      assert.match(byTask.get('point')!.resultNotStored ?? '', /^its value is an instance of Point/)
      assert.equal(byTask.get('double')!.resultNotStored, undefined)
      const kept = query<{ seq: number; inline: number; file: string | null }>(
        h.file,
        'SELECT seq, result IS NOT NULL AS inline, result_file AS file FROM task_runs WHERE identity IS NOT NULL ORDER BY seq',
      )
      assert.deepEqual(
        kept.map((k) => [k.seq, k.inline === 1, k.file !== null]),
        [
          [0, true, false],
          [1, true, false],
          [2, false, true],
          [4, true, false],
        ],
      )
      assert.deepEqual(readdirSync(h.store.resultsDir), [kept[2]!.file])
      // What a resume reads back: the values themselves, read one by one (the resume holds only their places).
      const resumable = h.store.resumable(root.id)
      assert.deepEqual([...resumable.values()], [0, 1, 2, 4])
      const values = [...resumable.values()].map((seq) => h.store.resumedValue(root.id, seq))
      assert.equal(values.length, 4)
      assert.equal(values.some((v) => v.byteLength > 100_000), true)
      assert.deepEqual(h.errors, [])
    } finally {
      watch()
      h.end()
    }
  })

  it('close() returns with every run written: a 3,000-run map read right after it on another connection', async () => {
    const h = recorded()
    const noop = task({ name: 'noop' }, async (i: number) => i)
    try {
      const f = flow({ name: 'many', taskRunner: new ConcurrentTaskRunner() }, async () => (await noop.map(Array.from({ length: 3000 }, (_, i) => i)).result()).length)
      const { state } = await f.run(undefined, { results: h.recorder })
      assert.equal(state.result, 3000)
      h.recorder.close()
      const rows = query<{ state: string; n: number }>(h.file, 'SELECT state_name AS state, count(*) AS n FROM task_runs GROUP BY state_name')
      assert.deepEqual(rows, [{ state: 'Completed', n: 3000 }])
      const flows = query<{ state: string }>(h.file, 'SELECT state_name AS state FROM flow_runs')
      assert.deepEqual(flows, [{ state: 'Completed' }])
      assert.equal(query<{ n: number }>(h.file, 'SELECT count(*) AS n FROM task_runs WHERE identity IS NOT NULL AND result IS NOT NULL')[0]!.n, 3000)
    } finally {
      h.end()
    }
  })

  it('a write that fails is reported once; recording stops and the flow run completes', async () => {
    const h = recorded()
    const noop = task({ name: 'noop' }, async (i: number) => i)
    try {
      // Another process breaks the file under the writer: its task run rows have nowhere to go.
      const other = new Database(h.file)
      other.exec('ALTER TABLE task_runs RENAME TO task_runs_gone')
      other.close()
      const f = flow({ name: 'broken', taskRunner: new ConcurrentTaskRunner() }, async () => {
        await noop.map([1, 2, 3]).result()
        // Past the 250 ms write, then many more events, which are not recorded.
        await new Promise((resolve) => setTimeout(resolve, 600))
        return (await noop.map(Array.from({ length: 500 }, (_, i) => i)).result()).length
      })
      const { state } = await f.run(undefined, { results: h.recorder })
      assert.equal(state.type, 'Completed')
      assert.equal(state.result, 500)
      h.recorder.close()
      assert.equal(h.errors.length, 1, h.errors.map((e) => e.message).join('\n'))
      assert.match(h.errors[0]!.message, /no such table: (main\.)?task_runs/)
    } finally {
      h.end()
    }
    assert.equal(h.errors.length, 1, 'close() after the failure reports nothing more')
  })
})

describe('the writer on its own (in-process)', () => {
  it('holds at most holdLimit unsettled runs: the rest are written and read back when they change, and end as if held', () => {
    const file = project.path(`w${n++}`, 'history.db')
    HistoryStore.open(file).close()
    const root = randomUUID()
    const ids = Array.from({ length: 50 }, () => randomUUID())
    const at = Date.UTC(2026, 0, 1)
    const pending = stateCode(STATE_TYPE_CODE.Pending!, 0)
    const running = stateCode(STATE_TYPE_CODE.Running!, 1)
    const completed = stateCode(STATE_TYPE_CODE.Completed!, 1)
    // A run is named by its place (i) in every op after its OP_TASK.
    const opened = ids.flatMap((id, i) => [OP_TASK, i, id, i === 0 ? root : SAME, null, `noop-${i}`, i === 0 ? 'a.ts#noop' : SAME, i === 0 ? 'noop' : SAME, null, i === 0 ? 'map-1' : SAME, i, null, OP_STATE, i, pending, 0])
    // Times count from each batch's base; slots are numbered as batches first name them (or sent by name).
    const slot = (i: number) => (i < 40 ? `thread ${(i % 2) + 1}` : `concurrent ${i}`)
    const started = ids.flatMap((_, i) => [OP_RUNNING, i, running, 1, i < 40 ? i % 2 : slot(i)])
    const ended = ids.flatMap((_, i) => [OP_STATE, i, completed, 0, OP_VALUE_ID, i, i * 2, `identity-${i}`])
    const writer = new HistoryWriter(file, { maxLogs: 10, holdLimit: 5 })
    try {
      writer.apply({ seq: 1, ops: opened, base: at, slots: [], flows: [], unsettled: 'none', last: false })
      assert.equal(writer.held, 5)
      assert.equal(writer.spilled, 45)
      writer.apply({ seq: 2, ops: started, base: at, slots: ['thread 1', 'thread 2'], flows: [], unsettled: 'none', last: false })
      assert.ok(writer.held <= 6, `held ${writer.held}`)
      assert.equal(query<{ n: number }>(file, `SELECT count(*) AS n FROM task_runs WHERE state_name = 'Running'`)[0]!.n, 50 - writer.held)
      writer.apply({ seq: 3, ops: ended, base: at + 2, slots: [], flows: [], unsettled: 'all', last: true })
      assert.equal(writer.held, 0)
      assert.equal(writer.spilled, 0)
    } finally {
      writer.close()
    }
    const rows = query<{ seq: number; row: string; identity: string }>(file, 'SELECT seq, row, identity FROM task_runs WHERE root_id = ? ORDER BY seq', root)
    assert.equal(rows.length, 50)
    for (const [i, { seq, row, identity }] of rows.entries()) {
      assert.equal(seq, i)
      assert.equal(identity, `identity-${i}`)
      assert.deepEqual(JSON.parse(row), {
        id: ids[i],
        n: `noop-${i}`,
        k: 'a.ts#noop',
        s: [
          ['Pending', 'Pending', at],
          ['Running', 'Running', at + 1, null, slot(i)],
          ['Completed', 'Completed', at + 2],
        ],
        a: 1,
        m: 'map-1',
        i,
      })
    }
  })
})

describe('the writer thread and the process', () => {
  it('a batch that is the first and the last (a short flow run) is written on the caller\'s thread: no thread is started for it', () => {
    const file = project.path(`w${n++}`, 'history.db')
    HistoryStore.open(file).close()
    const writer = new WriterThread(file, 10)
    const id = randomUUID()
    const root = randomUUID()
    const ops = [OP_TASK, 0, id, root, null, 'one-0', 'a.ts#one', 'one', null, null, null, null, OP_STATE, 0, stateCode(STATE_TYPE_CODE.Completed!, 1), 0, OP_VALUE_ID, 0, 1, 'identity-one']
    const seq = writer.post({ ops, base: Date.UTC(2026, 0, 1), slots: [], flows: [], unsettled: 'all', last: true })
    // Written by the time post() returns: a thread could not have been started and have written it yet.
    assert.equal(writer.applied, seq)
    assert.equal(writer.failed, undefined)
    writer.stop()
    assert.deepEqual(query<{ s: string; i: string }>(file, 'SELECT state_name AS s, identity AS i FROM task_runs WHERE root_id = ?', root), [{ s: 'Completed', i: 'identity-one' }])
  })

  it('a write that fails on the caller\'s thread is reported as a failed thread\'s would be', () => {
    const file = project.path(`w${n++}`, 'nowhere', 'history.db')
    const writer = new WriterThread(file, 10)
    const errors: Error[] = []
    writer.onError = (error) => errors.push(error)
    const seq = writer.post({ ops: [], base: 0, slots: [], flows: [], unsettled: 'all', last: true })
    assert.equal(writer.wait(seq), false)
    assert.equal(errors.length, 1)
    assert.equal(writer.failed, errors[0])
    writer.stop()
  })

  it('a writer thread that outgrows its heap limit stops recording and says so; this process goes on', async () => {
    const file = project.path(`w${n++}`, 'history.db')
    HistoryStore.open(file).close()
    const writer = new WriterThread(file, 1000, { heapMb: 32 })
    const errors: Error[] = []
    writer.onError = (error) => errors.push(error)
    try {
      const running = stateCode(STATE_TYPE_CODE.Running!, 1)
      // Running runs that hold a thousand 100 kB log lines each: about 100 MB, over the 32 MB limit.
      for (let b = 0; b < 100 && errors.length === 0; b++) {
        const id = randomUUID()
        const ops: unknown[] = [OP_TASK, b, id, b === 0 ? randomUUID() : SAME, null, `chatty-${b}`, b === 0 ? 'a.ts#chatty' : SAME, b === 0 ? 'chatty' : SAME, null, null, null, null]
        ops.push(OP_RUNNING, b, running, 0, 'concurrent 1')
        for (let line = 0; line < 10; line++) ops.push(OP_LOG, b, 0, 'info', `${b}/${line} `.padEnd(100_000, 'y'))
        writer.post({ ops, base: Date.now(), slots: [], flows: [], unsettled: 'none', last: false })
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      assert.equal(errors.length, 1, 'the writer did not stop')
      assert.match(errors[0]!.message, /writer thread ran out of its 32 MB of memory.*not recorded/)
      assert.equal(writer.failed, errors[0])
    } finally {
      writer.stop()
    }
  })

  const script = (closes: boolean) => `
import { flow, onRunEvent, task } from '${REPO}/src/index.ts'
import { HistoryRecorder } from '${REPO}/src/history/recorder.ts'
import { HistoryStore } from '${REPO}/src/history/store.ts'
const store = HistoryStore.open(process.argv[2])
const recorder = new HistoryRecorder(store)
onRunEvent(recorder.onEvent)
const one = task({ name: 'one' }, () => 1)
const { state } = await flow({ name: 'alive' }, async () => one())().then(() => ({ state: 'done' }))
${closes ? 'recorder.close()' : '// no close(): the run history may miss the last changes, but the process still ends'}
console.log(state)
`
  for (const closes of [true, false]) {
    it(`a process ends by itself with the writer running (${closes ? 'after close()' : 'without close()'})`, async () => {
      const dir = project.path(`w${n++}`)
      const file = path.join(dir, 'history.db')
      const main = path.join(dir, 'main.mts')
      HistoryStore.open(file).close()
      writeFileSync(main, script(closes))
      const child = spawn(process.execPath, ['--import', 'tsx', main, file], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (chunk: Buffer) => (out += chunk))
      child.stderr.on('data', (chunk: Buffer) => (out += chunk))
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL')
          resolve(null)
        }, 20_000)
        child.on('exit', (exitCode) => {
          clearTimeout(timer)
          resolve(exitCode)
        })
      })
      assert.equal(code, 0, `the process did not end by itself: ${out}`)
      assert.match(out, /done/)
      if (closes) assert.deepEqual(query<{ s: string }>(file, 'SELECT state_name AS s FROM task_runs'), [{ s: 'Completed' }])
      assert.equal(existsSync(file), true)
    })
  }
})
