/**
 * Runs that remember: task values kept next to the run history, `ptr run --resume` and
 * `ptr flow-runs retry` reusing the completed task runs of an earlier flow run, and caching as
 * in Prefect 3. Real `ptr` processes on a real SQLite file; the hashing and the engine's side
 * in-process.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import Database from 'better-sqlite3'
import { PTR_BIN, REPO, runPtr, tempProject, waitForOutput } from './helpers/cli.ts'
import { Terminal, hasTmux } from './helpers/terminal.ts'
import { UnhashableValue, canonical, hashValue } from '../src/engine/value-hash.ts'
import { flow, onRunEvent, task, SequentialTaskRunner } from '../src/index.ts'
import { HistoryStore } from '../src/history/store.ts'
import { HistoryRecorder } from '../src/history/recorder.ts'
import { decodeResult, encodeResult } from '../src/history/values.ts'
import type { LogEvent } from '../src/engine/events.ts'

describe('argument hashing', () => {
  it('is the same for equal data whatever the order of keys, Map entries and Set items', () => {
    const a = { x: 1, y: [1, 2, { z: 'q' }], m: new Map<unknown, unknown>([['a', 1], [2, new Set([3, 4])]]), d: new Date(5), t: new Uint8Array([1, 2]) }
    const b = { t: new Uint8Array([1, 2]), d: new Date(5), m: new Map<unknown, unknown>([[2, new Set([4, 3])], ['a', 1]]), y: [1, 2, { z: 'q' }], x: 1 }
    assert.equal(hashValue(a), hashValue(b))
  })

  it('tells apart values that print alike', () => {
    const pairs: [unknown, unknown][] = [
      [1, '1'],
      [0, -0],
      [[1, 2], new Set([1, 2])],
      [new Uint8Array([1]), new Int8Array([1])],
      [{ a: undefined }, {}],
      [['a', 'b'], ['ab']],
      [new Date(1), 1],
      [1n, 1],
      [null, undefined],
      [NaN, 'NaN'],
      [[1, 2], [2, 1]],
    ]
    for (const [x, y] of pairs) assert.notEqual(hashValue(x), hashValue(y), `${String(canonical(x))} vs ${String(canonical(y))}`)
  })

  it('names the part that has no stable hash: a function, a class instance, a cycle', () => {
    class Client {}
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const cases: [unknown, RegExp][] = [
      [[1, { f: () => 1 }], /^args\[1\]\.f is a function$/],
      [[new Client()], /^args\[0\] is a Client \(only plain data has a stable hash\)$/],
      [[cyclic], /^args\[0\]\.self is a reference back/],
      [[new Map([['k', Symbol('s')]])], /^args\[0\] \(Map entry 0\)\[1\] is a symbol$/],
    ]
    for (const [value, message] of cases) {
      const result = canonical(value, 'args')
      assert.ok(result instanceof UnhashableValue, String(result))
      assert.match(result.message, message)
    }
    // The same object twice is not a cycle.
    const shared = { n: 1 }
    assert.equal(typeof canonical([shared, shared]), 'string')
  })
})

describe('kept values', () => {
  const bytesOf = (value: unknown): Uint8Array => {
    const bytes = encodeResult(value)
    assert.ok(bytes instanceof Uint8Array, JSON.stringify(bytes))
    return bytes
  }
  it('come back as themselves: primitives by the short form, everything else by v8 serialization', () => {
    for (const value of [undefined, true, false, null, 0, -0, 1.5, -7, NaN, Infinity, -Infinity, 'x"y\n\u2028', '', 2n ** 70n]) {
      assert.ok(Object.is(decodeResult(bytesOf(value)), value), String(value))
    }
    const rich = { when: new Date(5), tags: new Set(['a']), m: new Map([[1, [2]]]), bytes: new Uint8Array([1, 2]), error: new RangeError('r') }
    const back = decodeResult(bytesOf(rich)) as typeof rich
    assert.deepEqual(back, rich)
    assert.ok(back.when instanceof Date && back.error instanceof RangeError)
    assert.equal(bytesOf(42).byteLength, 3, 'a number is its tag and its digits')
  })
  it('say why a value cannot be kept, naming the part', () => {
    class Point {}
    assert.deepEqual(encodeResult({ p: [new Point()] }), { problem: 'value.p[0] is an instance of Point, which would arrive as a plain object, without its methods' })
  })
})

describe('task options for caching are checked where the task is defined', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ cachePolicy: 'inptus' }, /task 'bad': unknown cachePolicy 'inptus'; use inputs, taskSource, flowParameters, runId, none, or a list of them/],
    [{ cachePolicy: 'inputs', persistResult: false }, /a cached task must keep its result; drop persistResult: false, or the cachePolicy/],
    [{ cachePolicy: 'inputs', cacheKeyFn: () => 'k' }, /give cachePolicy or cacheKeyFn, not both/],
    [{ cachePolicy: 'inputs', cacheExpirationSeconds: 0 }, /cacheExpirationSeconds must be a number of seconds above 0, got 0/],
  ]
  for (const [options, message] of cases) {
    it(JSON.stringify(options, (_, v) => (typeof v === 'function' ? 'fn' : v)), () => {
      assert.throws(() => task({ name: 'bad', ...options } as never, () => 1), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'PTR_INVALID_TASK_OPTION')
        assert.match(error.message, message)
        return true
      })
    })
  }
})

describe('the engine with a result store (in-process, a real history file)', () => {
  const project = tempProject()
  after(project.remove)
  let n = 0
  const open = () => {
    const store = HistoryStore.open(project.path(`h${n++}.db`))
    return { store, recorder: new HistoryRecorder(store) }
  }

  it('an argument that cannot be hashed makes the run uncacheable with a warning naming the task and argument; it still runs', async () => {
    const { store, recorder } = open()
    const calls: string[] = []
    const lines: LogEvent[] = []
    const fetchWith = task({ name: 'fetch_with', cachePolicy: 'inputs' }, (client: { get: () => string }) => {
      calls.push(client.get())
      return client.get()
    })
    const off = onRunEvent((event) => {
      recorder.onEvent(event)
      if (event.kind === 'log') lines.push(event)
    })
    try {
      const f = flow({ name: 'unhashable', taskRunner: new SequentialTaskRunner() }, async () => [await fetchWith({ get: () => 'a' }), await fetchWith({ get: () => 'a' })])
      const { state } = await f.run(undefined, { results: recorder })
      assert.equal(state.type, 'Completed', state.error?.stack)
      assert.deepEqual(state.result, ['a', 'a'])
      assert.equal(calls.length, 2, 'neither call was served from the cache')
      const warnings = lines.filter((l) => l.level === 'warning').map((l) => l.message)
      assert.equal(warnings.length, 2)
      assert.match(warnings[0]!, /^'fetch_with-\d+' is not cached: args\[0\]\.get is a function, which has no stable hash$/)
    } finally {
      off()
      recorder.close()
      store.close()
    }
  })

  it('refreshCache runs again and replaces the entry; flowParameters keys by the flow run parameters; cacheKeyFn keys as it says', async () => {
    const { store, recorder } = open()
    let executed = 0
    const options = { cachePolicy: ['inputs', 'flowParameters'] as const }
    const add = task({ name: 'add', ...options }, (x: number) => x + ++executed * 100)
    const refreshing = add.withOptions({ refreshCache: true })
    const byFn = task({ name: 'by_fn', cacheKeyFn: (_context, [x]: [number]) => (x > 5 ? null : `small-${x}`) }, (x: number) => x + ++executed * 100)
    const off = onRunEvent(recorder.onEvent)
    try {
      const f = flow({ name: 'params', taskRunner: new SequentialTaskRunner() }, async ({ p }: { p: number }) => ({
        first: await add(1),
        again: await add(1),
        refreshed: await refreshing(1),
        afterRefresh: await add(1),
        fn: [await byFn(2), await byFn(2), await byFn(9), await byFn(9)],
        p,
      }))
      const one = (await f.run({ p: 1 }, { results: recorder })).state.result as Record<string, unknown>
      assert.deepEqual(one, { first: 101, again: 101, refreshed: 201, afterRefresh: 201, fn: [302, 302, 409, 509], p: 1 })
      const other = (await f.run({ p: 2 }, { results: recorder })).state.result as Record<string, unknown>
      assert.equal(other.first, 601, 'another flow parameter is another key')
      assert.equal(other.refreshed, 701)
      assert.deepEqual(other.fn, [302, 302, 809, 909], 'cacheKeyFn keys do not depend on the parameters; a null key is not cached')
    } finally {
      off()
      recorder.close()
      store.close()
    }
  })

  it('a flow run keeps the value it produced: a later run refreshing the same cache key does not change it; a cache hit copies the entry, no new file', async () => {
    const file = project.path('keeps', 'history.db')
    const resultsDir = path.join(path.dirname(file), 'results')
    let executed = 0
    // Over INLINE_VALUE_BYTES: kept in a file under results/.
    const big = task({ name: 'big', cachePolicy: 'inputs' }, (x: number) => ({ x, run: ++executed, pad: 'p'.repeat(70_000) }))
    const refreshing = big.withOptions({ refreshCache: true })
    const runOnce = async (body: () => Promise<{ run: number }>, resume?: string) => {
      const store = HistoryStore.open(file)
      const recorder = new HistoryRecorder(store)
      if (resume !== undefined) recorder.resumeFrom(resume)
      const off = onRunEvent(recorder.onEvent)
      try {
        const { state } = await flow({ name: 'keeps', taskRunner: new SequentialTaskRunner() }, body).run(undefined, { results: recorder })
        assert.equal(state.type, 'Completed', state.error?.stack)
        return { run: (state.result as { run: number }).run, id: recorder.rootIds[0]! }
      } finally {
        off()
        recorder.close()
        store.close()
      }
    }
    const a = await runOnce(() => big(1))
    assert.equal(a.run, 1)
    const b = await runOnce(() => refreshing(1))
    assert.equal(b.run, 2, 'refreshCache ran it again')
    const filesBefore = readdirSync(resultsDir).length
    const c = await runOnce(() => big(1))
    assert.equal(c.run, 2, 'the cache holds the refreshed value')
    assert.equal(readdirSync(resultsDir).length, filesBefore, 'a cache hit writes no file of its own')
    // Resuming a run reuses the value that run had, before the cache's.
    assert.equal((await runOnce(() => big(1), a.id)).run, 1, "run A's row still holds A's value")
    assert.equal((await runOnce(() => big(1), c.id)).run, 2, "run C's row holds the value it was served")
    assert.equal(executed, 2)
  })

  it('a hit in the same process, before the entry is written, gets the value as the run returned it, not as the caller changed it since', async () => {
    const { store, recorder } = open()
    let executed = 0
    const make = task({ name: 'make', cachePolicy: 'inputs' }, (x: number) => ({ x, list: [1], run: ++executed }))
    const off = onRunEvent(recorder.onEvent)
    try {
      const f = flow({ name: 'mutates', taskRunner: new SequentialTaskRunner() }, async () => {
        const first = await make(1)
        first.x = 99
        first.list.push(2)
        return { second: await make(1), third: await make(1) }
      })
      const { state } = await f.run(undefined, { results: recorder })
      assert.equal(state.type, 'Completed', state.error?.stack)
      assert.equal(executed, 1, 'the later calls were served by the cache')
      const { second, third } = state.result as { second: unknown; third: unknown }
      assert.deepEqual(second, { x: 1, list: [1], run: 1 })
      assert.deepEqual(third, { x: 1, list: [1], run: 1 })
      assert.notEqual(second, third, 'each hit gets a copy of its own')
    } finally {
      off()
      recorder.close()
      store.close()
    }
  })

  it('prune deletes result files once the rows naming them are gone: one that cannot be deleted leaves no row naming a deleted file', async () => {
    // A folder of its own: its results/ holds only this history's files.
    const file = project.path('pruned', 'history.db')
    const resultsDir = path.join(path.dirname(file), 'results')
    const big = task({ name: 'big_prune' }, (x: number) => ({ x, pad: 'p'.repeat(70_000) }))
    const store = HistoryStore.open(file)
    const recorder = new HistoryRecorder(store)
    const off = onRunEvent(recorder.onEvent)
    try {
      const { state } = await flow({ name: 'pruned', taskRunner: new SequentialTaskRunner() }, async () => [await big(1), await big(2)]).run(undefined, { results: recorder })
      assert.equal(state.type, 'Completed', state.error?.stack)
    } finally {
      off()
      recorder.close()
    }
    try {
      const files = readdirSync(resultsDir).sort()
      assert.equal(files.length, 2)
      // The second cannot be deleted (a folder stands in its place).
      rmSync(path.join(resultsDir, files[1]!))
      mkdirSync(path.join(resultsDir, files[1]!, 'inside'), { recursive: true })
      assert.equal(store.prune(Date.now() + 60_000), 1)
      assert.equal(store.list().length, 0, 'the run is gone')
      assert.deepEqual(readdirSync(resultsDir), [files[1]], 'the file that could go went; the one that could not is left over, named by no row')
    } finally {
      store.close()
    }
  })

  it('prune also removes a results file no row names any more (its run pruned, then its cache entry replaced) once it is an hour old', async () => {
    const file = project.path('orphans', 'history.db')
    const resultsDir = path.join(path.dirname(file), 'results')
    const body = (x: number) => ({ x, pad: 'o'.repeat(70_000) })
    // One cache key for both: the second task writes over the first's entry.
    const cached = task({ name: 'big_cached', cacheKeyFn: () => 'left-over' }, body)
    const refreshed = task({ name: 'big_refreshed', cacheKeyFn: () => 'left-over', refreshCache: true }, body)
    const store = HistoryStore.open(file)
    const run = async (t: typeof cached) => {
      const recorder = new HistoryRecorder(store)
      const off = onRunEvent(recorder.onEvent)
      try {
        const { state } = await flow({ name: 'orphans', taskRunner: new SequentialTaskRunner() }, async () => (await t(1)).x).run(undefined, { results: recorder })
        assert.equal(state.type, 'Completed', state.error?.stack)
      } finally {
        off()
        recorder.close()
      }
    }
    try {
      await run(cached)
      const [first] = readdirSync(resultsDir)
      assert.equal(store.prune(Date.now() + 60_000), 1)
      assert.deepEqual(readdirSync(resultsDir), [first], 'the cache entry still names the pruned run’s file')
      await run(refreshed)
      const files = readdirSync(resultsDir)
      assert.equal(files.length, 2, 'the refreshed entry has a file of its own')
      const second = files.find((f) => f !== first)!
      assert.equal(store.prune(0), 0)
      assert.deepEqual(readdirSync(resultsDir).sort(), files.sort(), 'a young file may be a write whose row is not committed yet: it stays')
      const old = new Date(Date.now() - 2 * 3600_000)
      utimesSync(path.join(resultsDir, first!), old, old)
      assert.equal(store.prune(0), 0)
      assert.deepEqual(readdirSync(resultsDir), [second], 'the file no row names went; the one the cache names stayed')
    } finally {
      store.close()
    }
  })

  it("tasks.defaultCachePolicy reads 'none' as a task's cachePolicy does: a list with none in it caches nothing", async () => {
    const { resolveSettings } = await import('../src/settings/resolve.ts')
    const { historySettingsFrom } = await import('../src/settings/history.ts')
    const cached = async (policy: string) => {
      const settings = historySettingsFrom(await resolveSettings({ cwd: project.dir, env: { PREFECT_TASK_DEFAULT_CACHE_POLICY: policy } }), project.dir)
      const store = HistoryStore.open(project.path(`h${n++}.db`))
      const recorder = new HistoryRecorder(store, { results: settings.results })
      let executed = 0
      const plain = task({ name: 'plain' }, (x: number) => x + ++executed)
      const off = onRunEvent(recorder.onEvent)
      try {
        await flow({ name: 'defaults', taskRunner: new SequentialTaskRunner() }, async () => [await plain(1), await plain(1)]).run(undefined, { results: recorder })
        return executed === 1
      } finally {
        off()
        recorder.close()
        store.close()
      }
    }
    assert.equal(await cached('inputs'), true)
    assert.equal(await cached('none'), false)
    assert.equal(await cached('none+inputs'), false, "as cachePolicy: ['none', 'inputs'] on a task")
  })

  it('opens a history of the first schema (no results) and adds what results need', () => {
    const file = project.path('old.db')
    const db = new Database(file)
    db.exec(`
      CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
      CREATE TABLE flow_runs (id TEXT PRIMARY KEY, root_id TEXT NOT NULL, parent_id TEXT, flow_name TEXT NOT NULL,
        state_type TEXT NOT NULL, state_name TEXT NOT NULL, record TEXT NOT NULL,
        pid INTEGER NOT NULL, host TEXT NOT NULL, heartbeat INTEGER NOT NULL, created INTEGER NOT NULL, ended INTEGER);
      CREATE TABLE task_runs (root_id TEXT NOT NULL, seq INTEGER NOT NULL, settled INTEGER NOT NULL, state_name TEXT NOT NULL, row TEXT NOT NULL,
        PRIMARY KEY (root_id, seq)) WITHOUT ROWID;
      INSERT INTO meta VALUES ('schema', '1');`)
    db.close()
    const store = HistoryStore.open(file)
    store.close()
    const after = new Database(file, { readonly: true })
    try {
      const columns = (table: string) => (after.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name)
      assert.ok(['identity', 'result', 'result_file'].every((c) => columns('task_runs').includes(c)), columns('task_runs').join())
      assert.ok(['file', 'result'].every((c) => columns('flow_runs').includes(c)))
      assert.equal((after.prepare(`SELECT v FROM meta WHERE k = 'schema'`).get() as { v: string }).v, '2')
    } finally {
      after.close()
    }
  })
})

/** a → b → c, each counting its executions in counts.txt; c fails while `marker` exists, or sleeps while `hang` exists. */
const PIPELINE = `import { appendFileSync, existsSync } from 'node:fs'
import { flow, task } from '${REPO}/src/index.ts'
const count = (what: string) => appendFileSync('counts.txt', what + '\\n')
export const a = task({ name: 'a' }, async (n: number) => {
  count('a')
  return { n, when: new Date(1000 * n), tags: new Set(['x', 'y']) }
})
export const b = task({ name: 'b' }, async (x: { n: number; tags: Set<string> }) => {
  count('b')
  return new Map([['double', x.n * 2], ['tags', x.tags.size]])
})
export const c = task({ name: 'c' }, async (y: Map<string, number>) => {
  count('c')
  if (existsSync('marker')) throw new Error('the marker file is there')
  while (existsSync('hang')) await new Promise((resolve) => setTimeout(resolve, 50))
  return y.get('double')! + 1
})
export const child = flow({ name: 'child' }, async ({ n }: { n: number }) => b(await a(n)))
export default flow({ name: 'pipeline' }, async ({ n = 1 }: { n?: number }) => {
  const x = await a(n)
  const y = b.submit(x)
  const inner = await child({ n: n + 1 })
  return [await c(y), inner.get('double')]
})
`

describe('ptr run --resume and ptr flow-runs retry', () => {
  const project = tempProject({ 'pipeline.ts': PIPELINE })
  after(project.remove)
  const ptr = (args: string[], extra: Record<string, string> = {}) => runPtr(args, { cwd: project.dir, env: { CI: 'true', ...extra } })
  const counts = () => {
    const file = project.path('counts.txt')
    const text = existsSync(file) ? readFileSync(file, 'utf8') : ''
    rmSync(file, { force: true })
    return text.split('\n').filter(Boolean).sort().join(' ')
  }
  interface Report {
    flowRun: { id: string; state: { type: string }; parameters: unknown }
    taskRuns: { name: string; taskName: string; flowRunId: string; state: { type: string; name: string; message?: string } }[]
    counts: Record<string, number>
  }
  const report = (): Report => JSON.parse(readFileSync(project.path('report.json'), 'utf8')) as Report
  const states = (r: Report) => r.taskRuns.map((t) => `${t.taskName}:${t.state.name}`).join(' ')

  for (const runner of ['thread', 'process', 'sequential']) {
    it(`on the ${runner} runner: a failed run resumed skips what completed (shown as Cached), runs the rest, with the same parameters`, async () => {
      counts()
      writeFileSync(project.path('marker'), '')
      const first = await ptr(['run', 'pipeline.ts', '--runner', runner, '--param', 'n=3'])
      assert.equal(first.code, 1, first.stderr)
      assert.equal(counts(), 'a a b b c')
      rmSync(project.path('marker'))
      const resumed = await ptr(['run', 'pipeline.ts', '--runner', runner, '--resume', '--output', 'json', '--output-file', 'report.json'])
      assert.equal(resumed.code, 0, resumed.stderr)
      assert.match(resumed.stderr, /ptr: resuming flow run [0-9a-f-]{36} \(Failed\): 4 completed task runs to reuse/)
      assert.equal(counts(), 'c', 'only c executed again')
      const json = report()
      assert.deepEqual(json.flowRun.parameters, { n: 3 })
      assert.equal(states(json), 'a:Cached b:Cached a:Cached b:Cached c:Completed')
      assert.match(json.taskRuns[0]!.state.message!, /^result of flow run [0-9a-f-]{36}$/)
      assert.deepEqual(json.counts, { Cached: 4, Completed: 1 })
      // The reused values are the values: Date, Set and Map came back as themselves (c computed 3*2+1).
      assert.match(resumed.stdout, /result: \[ ?7, 8 ?\]/)
    })
  }

  it('after the first ptr run was SIGKILLed mid-way: the next --resume reuses what had completed', async () => {
    counts()
    writeFileSync(project.path('hang'), '')
    let stdout = ''
    let child: import('node:child_process').ChildProcess | undefined
    const killed = runPtr(['run', 'pipeline.ts', '--param', 'n=4'], {
      cwd: project.dir,
      env: { CI: 'true' },
      onSpawn: (c) => {
        child = c
        c.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
      },
    })
    await waitForOutput(() => stdout, /c-\d+ Running/)
    // Past one write of the recorder (every 250 ms): the completed runs' values are on disk.
    await new Promise((resolve) => setTimeout(resolve, 700))
    child!.kill('SIGKILL')
    assert.equal((await killed).signal, 'SIGKILL')
    assert.equal(counts(), 'a a b b c')
    rmSync(project.path('hang'))
    const resumed = await ptr(['run', 'pipeline.ts', '--resume', '--output', 'json', '--output-file', 'report.json'])
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.match(resumed.stderr, /\(Crashed\): 4 completed task runs to reuse/)
    assert.equal(counts(), 'c')
    assert.equal(states(report()), 'a:Cached b:Cached a:Cached b:Cached c:Completed')
  })

  it('flow-runs retry ID reruns that run from its file; a changed input runs again what depends on it', async () => {
    counts()
    writeFileSync(project.path('marker'), '')
    assert.equal((await ptr(['run', 'pipeline.ts', '--param', 'n=5'])).code, 1)
    const [failed] = JSON.parse((await ptr(['flow-runs', 'list', '--json', '--state', 'Failed', '--limit', '1'])).stdout) as { id: string }[]
    rmSync(project.path('marker'))
    counts()
    // The flow's code changed since: b now gets another input in the subflow (n + 2), so the subflow's b runs again.
    writeFileSync(project.path('pipeline.ts'), PIPELINE.replace('child({ n: n + 1 })', 'child({ n: n + 2 })'))
    try {
      // It takes ptr run's options for how the run goes and where its output goes.
      const retried = await ptr(['flow-runs', 'retry', failed!.id.slice(0, 8), '--output', 'json', '--output-file', 'report.json', '--report', 'retry.html', '--log-level', 'warning', '--color', 'never'])
      assert.equal(retried.code, 0, retried.stderr)
      assert.match(readFileSync(project.path('retry.html'), 'utf8'), /^<!doctype html>/i, 'the HTML report of the retried run')
      assert.equal(counts(), 'a b c', "the subflow's a and b (new input) and c ran; the root's a and b did not")
      assert.equal(states(report()), 'a:Cached b:Cached a:Completed b:Completed c:Completed')
      // The flow run's own value is kept with it (written with its final state, kept by later writes).
      const db = new Database(project.path('.ptr', 'history.db'), { readonly: true })
      try {
        const row = db.prepare(`SELECT result FROM flow_runs WHERE id = ?`).get(report().flowRun.id) as { result: Uint8Array | null }
        assert.deepEqual(decodeResult(row.result!), [11, 14])
      } finally {
        db.close()
      }
    } finally {
      writeFileSync(project.path('pipeline.ts'), PIPELINE)
    }
  })

  it('the live view counts Cached runs apart, and JUnit says a test case was Cached', { skip: !hasTmux() && !process.env.CI ? 'tmux is not installed' : false }, async () => {
    writeFileSync(project.path('marker'), '')
    assert.equal((await ptr(['run', 'pipeline.ts', '--param', 'n=6'])).code, 1)
    rmSync(project.path('marker'))
    const term = new Terminal('resume').open(project.dir)
    try {
      term.type(`clear; node ${PTR_BIN} run pipeline.ts --resume --junit junit.xml; echo "resume-exit=$?"`)
      const done = await term.waitFor(/resume-exit=\d+/)
      assert.match(done, /resume-exit=0/)
      assert.match(done, /ptr: resuming flow run \S+ \(Failed\): 4 completed task runs to reuse/)
      assert.match(done, /✔ a .*1\/1 · 1 cached\n/)
      assert.match(done, /✔ c .*1\/1 · 1 completed\n/)
      assert.match(done, /5 task runs: 4 cached, 1 completed in/)
    } finally {
      term.close()
    }
    const junit = readFileSync(project.path('junit.xml'), 'utf8')
    assert.match(junit, /<testcase classname="pipeline\.a" name="a-\d+" time="[\d.]+">\n\s+<system-out>Cached: result of flow run [0-9a-f-]{36}<\/system-out>/)
    assert.match(junit, /<testcase classname="pipeline\.c" name="c-\d+" time="[\d.]+"\/>/)
  })

  it('says what is wrong when there is nothing to resume, or parameters are given with --resume', async () => {
    assert.equal((await ptr(['run', 'pipeline.ts', '--param', 'n=1'])).code, 0)
    const other = tempProject({ 'pipeline.ts': PIPELINE })
    try {
      const nothing = await runPtr(['run', 'pipeline.ts', '--resume'], { cwd: other.dir, env: { CI: 'true' } })
      assert.equal(nothing.code, 2)
      assert.match(
        nothing.stderr,
        /^ptr: no flow run of 'pipeline' to resume in .*history\.db: every recorded one completed or is still running \(or none was recorded\); run it without --resume, or see ptr flow-runs list --flow pipeline\n$/,
      )
      // A flow run still running in another ptr run is not resumed.
      writeFileSync(path.join(other.dir, 'hang'), '')
      let stdout = ''
      const running = runPtr(['run', 'pipeline.ts'], { cwd: other.dir, env: { CI: 'true' }, onSpawn: (c) => c.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString())) })
      await waitForOutput(() => stdout, /c-\d+ Running/)
      await new Promise((resolve) => setTimeout(resolve, 400))
      const busy = await runPtr(['run', 'pipeline.ts', '--resume'], { cwd: other.dir, env: { CI: 'true' } })
      const historyRows = <T,>(sql: string): T => {
        const db = new Database(path.join(other.dir, '.ptr', 'history.db'), { readonly: true })
        try {
          return db.prepare(sql).get() as T
        } finally {
          db.close()
        }
      }
      const open = historyRows<{ id: string }>('SELECT id FROM flow_runs WHERE parent_id IS NULL AND ended IS NULL')
      const retryBusy = await runPtr(['flow-runs', 'retry', open.id], { cwd: other.dir, env: { CI: 'true' } })
      rmSync(path.join(other.dir, 'hang'))
      assert.equal((await running).code, 0)
      assert.equal(busy.code, 2, busy.stderr)
      assert.match(busy.stderr, /no flow run of 'pipeline' to resume/)
      assert.equal(retryBusy.code, 2, retryBusy.stderr)
      assert.equal(retryBusy.stderr, `ptr: flow run ${open.id} is still running (its ptr run has not ended); retry it once it has\n`)
      // A subflow run: the error names its root flow run and the command.
      const sub = historyRows<{ id: string; root: string }>('SELECT id, root_id AS root FROM flow_runs WHERE parent_id IS NOT NULL LIMIT 1')
      const retrySub = await runPtr(['flow-runs', 'retry', sub.id], { cwd: other.dir, env: { CI: 'true' } })
      assert.equal(retrySub.code, 2)
      assert.equal(retrySub.stderr, `ptr: flow run ${sub.id} is a subflow run of flow run ${sub.root}; retry that one: ptr flow-runs retry ${sub.root}\n`)
      const off = await runPtr(['run', 'pipeline.ts', '--resume'], { cwd: other.dir, env: { CI: 'true', PREFECT_HISTORY: 'false' } })
      assert.equal(off.code, 2)
      assert.match(off.stderr, /the run history is off .* turn it on to use --resume/)
    } finally {
      other.remove()
    }
    const both = await ptr(['run', 'pipeline.ts', '--resume', '--param', 'n=2'])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /--resume runs the flow again with the parameters of the run it resumes; drop --param/)
    const unknown = await ptr(['flow-runs', 'retry', 'ffffffff'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /no flow run 'ffffffff' in the history/)
  })
})

describe('a value that cannot be kept', () => {
  const project = tempProject({
    'odd.ts': `import { appendFileSync, existsSync } from 'node:fs'
import { flow, task } from '${REPO}/src/index.ts'
class Point { constructor(readonly x: number) {} }
export const point = task({ name: 'point' }, () => { appendFileSync('counts.txt', 'point\\n'); return new Point(1) })
export const big = task({ name: 'big' }, () => { appendFileSync('counts.txt', 'big\\n'); return 'x'.repeat(200_000) })
export const last = task({ name: 'last' }, () => { if (existsSync('marker')) throw new Error('marker'); return 1 })
export default flow({ name: 'odd' }, async () => [await point(), (await big()).length, await last()])
`,
  })
  after(project.remove)

  it('is not an error: the run is not resumable from there, and flow-runs show says why; big values go to files', async () => {
    writeFileSync(project.path('marker'), '')
    const env = { CI: 'true', PREFECT_RESULTS_MAX_BYTES: '150000' }
    assert.equal((await runPtr(['run', 'odd.ts', '--runner', 'sequential'], { cwd: project.dir, env })).code, 1)
    const [run] = JSON.parse((await runPtr(['flow-runs', 'list', '--json'], { cwd: project.dir })).stdout) as { id: string }[]
    const shown = await runPtr(['flow-runs', 'show', run!.id], { cwd: project.dir })
    assert.match(shown.stdout, /values not kept \(a resume of this run runs these again\):\n {2}point-\d+: its value is an instance of Point, which would arrive as a plain object, without its methods\n {2}big-\d+: its value is 2000\d\d bytes serialized, over the results\.maxBytes setting \(150000\)/)
    const json = JSON.parse((await runPtr(['flow-runs', 'show', run!.id, '--json'], { cwd: project.dir })).stdout)
    assert.match(json.taskRuns[0].resultNotStored, /Point/)
    rmSync(project.path('marker'))
    rmSync(project.path('counts.txt'))
    const resumed = await runPtr(['run', 'odd.ts', '--runner', 'sequential', '--resume'], { cwd: project.dir, env: { CI: 'true' } })
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.equal(readFileSync(project.path('counts.txt'), 'utf8'), 'point\nbig\n')
    // With the default limit the big value is kept, in a file under .ptr/results/.
    writeFileSync(project.path('marker'), '')
    assert.equal((await runPtr(['run', 'odd.ts', '--runner', 'sequential'], { cwd: project.dir, env: { CI: 'true' } })).code, 1)
    const db = new Database(project.path('.ptr', 'history.db'), { readonly: true })
    try {
      const files = db.prepare(`SELECT result_file AS file FROM task_runs WHERE result_file IS NOT NULL`).all() as { file: string }[]
      // The resumed run and the last one each kept big's value.
      assert.equal(files.length, 2)
      for (const { file } of files) assert.ok(readFileSync(path.join(project.path('.ptr', 'results'), file)).byteLength > 200_000)
    } finally {
      db.close()
    }
  })
})

describe('caching across ptr runs', () => {
  const SOURCE = `import { appendFileSync } from 'node:fs'
import { flow, task } from '${REPO}/src/index.ts'
export const square = task({ name: 'square', cachePolicy: ['inputs', 'taskSource'], cacheExpirationSeconds: EXPIRY }, async (x: number) => {
  appendFileSync('counts.txt', 'square ' + x + '\\n')
  await new Promise((resolve) => setTimeout(resolve, SLEEP))
  return { x: x * x, pid: process.pid }
})
export default flow({ name: 'squares' }, async ({ x = 2 }: { x?: number }) => square(x))
`
  const write = (expiry: number, sleep = 0, extra = '') => SOURCE.replace('EXPIRY', String(expiry)).replace('SLEEP', String(sleep)).replace('x * x', `x * x${extra}`)
  const project = tempProject({ 'squares.ts': write(600) })
  after(project.remove)
  const ptr = (args: string[]) => runPtr(args, { cwd: project.dir, env: { CI: 'true' } })
  const executions = () => {
    const file = project.path('counts.txt')
    const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
    rmSync(file, { force: true })
    return lines.join(', ')
  }
  const run = async (x: number) => {
    const result = await ptr(['run', 'squares.ts', '--param', `x=${x}`, '--output', 'json', '--output-file', 'report.json'])
    assert.equal(result.code, 0, result.stderr)
    const report = JSON.parse(readFileSync(project.path('report.json'), 'utf8'))
    return { state: report.taskRuns[0].state.name as string, result: report.flowRun }
  }

  it('an inputs-policy task runs once for the same arguments, again for others, after its expiration, and when its source changes', async () => {
    // A long expiry first, so a slow machine cannot expire an entry between two runs.
    writeFileSync(project.path('squares.ts'), write(600))
    executions()
    assert.equal((await run(3)).state, 'Completed')
    assert.equal((await run(3)).state, 'Cached')
    assert.equal(executions(), 'square 3')
    assert.equal((await run(4)).state, 'Completed')
    assert.equal(executions(), 'square 4')
    // An entry written with a 1 s expiry (the key does not change: it is the function's source that counts).
    writeFileSync(project.path('squares.ts'), write(1))
    assert.equal((await run(5)).state, 'Completed')
    await new Promise((resolve) => setTimeout(resolve, 1100))
    assert.equal((await run(5)).state, 'Completed', 'the entry expired')
    assert.equal(executions(), 'square 5, square 5')
    assert.equal((await run(3)).state, 'Cached', "the other entries keep the expiry they were written with")
    writeFileSync(project.path('squares.ts'), write(600, 0, ' + 0'))
    assert.equal((await run(3)).state, 'Completed', 'the task source changed')
    assert.equal((await run(3)).state, 'Cached')
    assert.equal(executions(), 'square 3')
  })

  it('two ptr runs that miss the same key at once both run; the value written last is kept for later runs', async () => {
    writeFileSync(project.path('squares.ts'), write(600, 600))
    executions()
    const args = ['run', 'squares.ts', '--param', 'x=9', '--output', 'json']
    const pidOf = (stderr: string) => Number(/result: \{ x: 81, pid: (\d+) \}/.exec(stderr)?.[1])
    const both = await Promise.all([ptr(args), ptr(args)])
    for (const result of both) assert.equal(result.code, 0, result.stderr)
    assert.equal(executions(), 'square 9, square 9', 'neither waited for the other')
    const pids = both.map((r) => pidOf(r.stderr))
    assert.notEqual(pids[0], pids[1])
    const third = await ptr(args)
    assert.equal(JSON.parse(third.stdout).taskRuns[0].state.name, 'Cached')
    assert.equal(executions(), '')
    assert.ok(pids.includes(pidOf(third.stderr)), `the cached value came from one of the two runs (${pids.join(', ')}): ${third.stderr}`)
  })

})
