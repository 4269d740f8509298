/**
 * Faults found by fault injection (issue 12), each reproduced by a test first: half-open status
 * connections at shutdown, cancelled queue runs, a deleted or read-only SQLite file, foreign
 * SQLite files. Real worker processes, real files.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import path from 'node:path'
import Database from 'better-sqlite3'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { setDefaultQueue } from '../src/queue/open.ts'
import { SqliteQueueBackend } from '../src/queue/sqlite.ts'
import { runPtr, tempDir, waitForOutput } from './helpers/cli.ts'
import { interruptQueuedFlow } from './helpers/queues.ts'
import type { WorkerProcess } from './helpers/workers.ts'
import { childProcesses, killWorkers, startWorker } from './helpers/workers.ts'
import * as Q from './fixtures/queue-tasks.ts'
import { bodies, stubborn } from './fixtures/queue-stubborn.ts'
import { TaskWorker } from '../src/worker/task-worker.ts'

const TASKS = 'test/fixtures/queue-tasks.ts'
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The worker's exit, or an error naming what it printed if it has not exited within `ms` (a hang, not a speed check). */
function exitOf(w: WorkerProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    w.exited.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`worker still running after ${ms} ms:\n${w.output()}`)), ms))),
  ])
}

/** A client that sends part of a request to the status server and then says nothing. */
async function halfOpen(statusUrl: string): Promise<Socket> {
  const { hostname, port } = new URL(statusUrl)
  const socket = connect(Number(port), hostname)
  socket.on('error', () => undefined)
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  await new Promise<void>((resolve) => socket.write('GET /status HTTP/1.1\r\nHost: x\r\n', () => resolve()))
  return socket
}

describe('worker faults (real processes, SQLite queue)', () => {
  let dir: string
  let cleanup: () => void
  let file: string
  let url: string
  let queue: SqliteQueueBackend
  let env: Record<string, string>
  const sockets: Socket[] = []

  beforeEach(() => {
    ;({ dir, cleanup } = tempDir('ptr-faults-'))
    file = path.join(dir, 'queue.db')
    url = `sqlite:${file}`
    queue = new SqliteQueueBackend(file, { leaseMs: 1000 })
    setDefaultQueue(url, queue)
    env = { PREFECT_QUEUE_URL: url, PREFECT_TASK_WORKER_LEASE_SECONDS: '1' }
  })
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy()
    await killWorkers()
    setDefaultQueue(undefined)
    await queue.close()
    cleanup()
  })
  after(() => {
    assert.deepEqual(childProcesses(), [], 'no worker process is left behind')
  })

  it('SIGTERM with a half-open connection to --status-port: the idle worker exits 0 at once', async () => {
    const w = await startWorker([TASKS, '--status-port', '0'], env)
    sockets.push(await halfOpen(w.statusUrl()))
    await sleep(200)
    w.child.kill('SIGTERM')
    assert.deepEqual(await exitOf(w, 20_000), { code: 0, signal: null })
  })

  it('a second SIGTERM ends the worker at once, handing its in-flight run back, even within a long grace', async () => {
    const w = await startWorker([TASKS, '--status-port', '0', '--grace', '120'], env)
    sockets.push(await halfOpen(w.statusUrl()))
    const future = Q.work.delay(0, 60_000)
    await waitForOutput(w.output, /q_work-\d+ Running/)
    w.child.kill('SIGTERM')
    await waitForOutput(w.output, /SIGTERM received/)
    w.child.kill('SIGTERM')
    assert.deepEqual(await exitOf(w, 20_000), { code: 0, signal: null })
    const record = (await queue.get(future.taskRunId))!
    assert.equal(record.state, 'Scheduled', 'handed back to the queue')
  })

  it('Ctrl-C of ptr run --runner prefect with no worker: the runs end Cancelled on the queue too, and a worker started later runs none', async () => {
    await interruptQueuedFlow(queue, env)
    const w = await startWorker([TASKS], env)
    await sleep(500)
    assert.doesNotMatch(w.output(), /q_work-\d+ Running/)
  })

  it('Ctrl-C while the runs are still being queued: every run that reached the queue ends Cancelled', async () => {
    const result = await runPtr(['run', 'test/fixtures/queue-cancel-flow.ts', '--runner', 'prefect'], {
      env,
      onSpawn: (child) => {
        let out = ''
        child.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString()
          // The first run shown Scheduled: its enqueue may still be in flight.
          if (/Scheduled/.test(out) && !child.killed) child.kill('SIGINT')
        })
      },
    })
    assert.equal(result.code, 130, `${result.stdout}\n${result.stderr}`)
    const runs = await queue.list({ task: 'q_work' })
    assert.ok(runs.every((r) => r.state === 'Cancelled'), runs.map((r) => r.state).join(', '))
  })

  it('the queue file deleted under a serving worker: /health says so, the worker exits 2 with one line naming the file', async () => {
    const w = await startWorker([TASKS, '--status-port', '0'], env)
    const health = w.statusUrl().replace('/status', '/health')
    assert.equal((await fetch(health)).status, 200)
    rmSync(file)
    let answer: Response | undefined
    for (let i = 0; i < 100 && w.child.exitCode === null; i++) {
      answer = await fetch(health).catch(() => undefined)
      if (answer && answer.status !== 200) break
      await sleep(100)
    }
    assert.ok(answer && answer.status !== 200, 'health turned non-200 (or the worker had already exited)')
    assert.match(await answer.text(), /deleted/)
    assert.deepEqual(await exitOf(w, 20_000), { code: 2, signal: null })
    const lines = w.output().split('\n').filter((l) => l.startsWith('ptr: '))
    assert.equal(lines.length, 1, w.output())
    assert.ok(lines[0]!.includes(file) && /deleted/.test(lines[0]!), lines[0])
    assert.doesNotMatch(w.output(), /SqliteError|internal error|trying again/)
  })

  it('the queue file deleted: a handle that had it open refuses writes (nothing is acknowledged into the deleted copy), a new one says what happened', async () => {
    const before = Q.qadd.delay(1, 2)
    await before.wait(0.05)
    assert.equal((await queue.get(before.taskRunId))?.state, 'Scheduled')
    rmSync(file)
    await assert.rejects(queue.enqueue([{ id: 'after-delete', task: 'q_add', name: 'q_add-1', args: new Uint8Array([1]) }]), (e: Error) => e.message.includes(file) && /deleted/.test(e.message))
    assert.throws(() => new SqliteQueueBackend(file), (e: Error) => e.message.includes(file) && /deleted/.test(e.message) && (e as { exitCode?: number }).exitCode === 2)
  })

  it('a read-only queue file: the worker exits 2 at once with one line naming the file', async (t) => {
    await queue.enqueue([{ id: 'ro-1', task: 'q_add', name: 'q_add-1', args: new Uint8Array([1]) }])
    await queue.close()
    // Root ignores file modes; the immutable attribute stops root too.
    try {
      execFileSync('chattr', ['+i', file], { stdio: 'ignore' })
    } catch {
      return t.skip('chattr +i is not possible here')
    }
    try {
      const result = await runPtr(['worker', 'serve', TASKS], { env, timeoutMs: 30_000 })
      assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.ok(result.stderr.includes(file) && /read-only/.test(result.stderr), result.stderr)
    } finally {
      execFileSync('chattr', ['-i', file])
      queue = new SqliteQueueBackend(file)
    }
  })

  it('an SQLite file that holds other tables is not adopted as a queue: exit 2, one line naming the file', async () => {
    const foreign = path.join(dir, 'app.db')
    const db = new Database(foreign)
    db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)')
    db.close()
    const result = await runPtr(['worker', 'serve', TASKS, '--queue', `sqlite:${foreign}`], { env })
    assert.equal(result.code, 2, `${result.stdout}\n${result.stderr}`)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    assert.ok(result.stderr.includes(foreign) && /not a ptr queue.*users/.test(result.stderr), result.stderr)
    const check = new Database(foreign, { readonly: true })
    assert.deepEqual(check.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all(), ['users'], 'left as it was')
    check.close()
  })
})

describe('worker limit when leases are lost', () => {
  it('a run whose lease was lost keeps its slot until its task returns: claims never exceed the limit', async () => {
    const { dir, cleanup } = tempDir('ptr-faults-')
    const file = path.join(dir, 'q.db')
    const queue = new SqliteQueueBackend(file, { leaseMs: 1000 })
    setDefaultQueue(`sqlite:${file}`, queue)
    const worker = new TaskWorker([stubborn], { queue, limit: 2 })
    await worker.start()
    try {
      const futures = Array.from({ length: 4 }, () => stubborn.delay(1500))
      while (bodies.now < 2) await sleep(10)
      // Both leases expire at once (as after a long outage) and another worker puts them back on the queue.
      const db = new Database(file)
      const recovered = db
        .prepare(`UPDATE runs SET state = 'Scheduled', token = NULL, lease_until = NULL, lost = lost + 1, available_at = 0 WHERE state = 'Running'`)
        .run().changes
      db.close()
      assert.equal(recovered, 2)
      const results = await Promise.all(futures.map((f) => f.result({ timeout: 30 })))
      assert.equal(results.filter((attempt) => attempt === 2).length, 2, 'the two recovered runs ran again')
      assert.equal(bodies.max, 2, 'never more task bodies at once than the limit')
    } finally {
      await worker.stop()
      setDefaultQueue(undefined)
      await queue.close()
      cleanup()
    }
  })
})

