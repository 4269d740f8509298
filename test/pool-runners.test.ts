/**
 * What only pool runners have to get right: values that cannot cross, workers that die (exit,
 * out of memory, SIGKILL), busy loops past their deadline, logs from workers, tasks a worker
 * cannot find, TypeScript loading from anywhere, and no process left behind. Each case runs
 * against both the thread and the process runner.
 */
import assert from 'node:assert/strict'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { afterEach, describe, it } from 'node:test'
import { ProcessPoolTaskRunner, ThreadPoolTaskRunner, onRunEvent, unmapped } from '../src/index.ts'
import type { PoolTaskRunnerOptions, RunEvent, TaskRunner } from '../src/index.ts'
import * as P from './fixtures/pool-tasks.ts'
import * as T from './fixtures/tasks.ts'
import { REPO, runPtr, tempDir, waitForOutput } from './helpers/cli.ts'
import { recordStates } from './helpers/events.ts'
import { childPids, isEsbuildService, waitForExit, waitForNoChildren } from './helpers/processes.ts'

type PoolRunner = ThreadPoolTaskRunner | ProcessPoolTaskRunner
const KINDS = [
  { kind: 'thread', create: (options: PoolTaskRunnerOptions) => new ThreadPoolTaskRunner(options) },
  { kind: 'process', create: (options: PoolTaskRunnerOptions) => new ProcessPoolTaskRunner(options) },
] as const

const opened: TaskRunner[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((r) => r.close()))
  assert.deepEqual(await waitForNoChildren(), [], 'a child process of the test outlived its test')
})

function collectLogs() {
  const logs: Extract<RunEvent, { kind: 'log' }>[] = []
  const stop = onRunEvent((event) => {
    if (event.kind === 'log') logs.push(event)
  })
  return { logs, stop }
}

for (const { kind, create } of KINDS) {
  describe(`${kind} pool runner`, () => {
    const make = (options: PoolTaskRunnerOptions = {}): PoolRunner => {
      const runner = create({ maxWorkers: 2, ...options })
      opened.push(runner)
      return runner
    }

    it('an argument that cannot cross fails that run before dispatch, naming the task and the argument; the pool keeps its workers', async () => {
      const runner = make()
      assert.equal(await runner.submit(T.add, [1, 2]).result(), 3)
      const workers = runner.workerStats.total
      assert.equal(workers, 2)
      const fn = await runner.submit(T.echo, [() => 1]).wait()
      assert.equal(fn.type, 'Failed')
      assert.match(fn.message ?? '', /task 'echo' \(echo-\d+\): argument 1 cannot be sent \(args\[0\] is a function\)/)
      const deep = await runner.submit(T.add, [1, { list: [2, Symbol('s')] }] as never).wait()
      assert.equal(deep.type, 'Failed')
      assert.match(deep.message ?? '', /task 'add'.*argument 2 cannot be sent \(args\[1\]\.list\[1\] is a symbol\)/)
      assert.equal(runner.workerStats.total, workers)
      // Another attempt would fail the same way: no retries, even when the task has them.
      const recorded = recordStates()
      const retried = runner.submit(T.echo.withOptions({ retries: 3 }), [() => 1])
      assert.equal((await retried.wait()).type, 'Failed')
      recorded.stop()
      assert.deepEqual(recorded.names(retried.taskRunId), ['Pending', 'Running', 'Failed'])
      assert.deepEqual(await runner.map(T.double, [[1, 2, 3, 4]]).result(), [2, 4, 6, 8])
    })

    it('a return value that cannot cross fails that run, naming the task and "return value"', async () => {
      const runner = make()
      const state = await runner.submit(P.returnFunction, []).wait()
      assert.equal(state.type, 'Failed')
      assert.match(state.message ?? '', /'return_function-\d+': the return value cannot be sent back \(value\.callback is a function\)/)
      assert.equal(await runner.submit(T.add, [2, 2]).result(), 4)
      assert.equal(runner.workerStats.total, 2)
    })

    it('a class instance as an argument or return value fails that run before it crosses, naming the class and where it is', async () => {
      const runner = make()
      const arg = await runner.submit(T.echo, [{ origin: new P.Point(1, 2) }]).wait()
      assert.equal(arg.type, 'Failed')
      assert.match(arg.message ?? '', /task 'echo' \(echo-\d+\): argument 1 cannot be sent \(args\[0\]\.origin is an instance of Point, which would arrive as a plain object, without its methods\)/)
      const returned = await runner.submit(P.returnPoint, []).wait()
      assert.equal(returned.type, 'Failed')
      assert.match(returned.message ?? '', /'return_point-\d+': the return value cannot be sent back \(value\[0\] is an instance of Point, which would arrive/)
      // Built-in classes that cross keep crossing.
      const values = [new Date(0), new Map([[1, new Set([2])]]), new Uint8Array([1, 2]), new RangeError('r'), /x/g, Object.create(null)]
      const echoed = (await runner.submit(T.echo, [values]).result()) as unknown[]
      assert.ok(echoed[0] instanceof Date && echoed[1] instanceof Map && echoed[2] instanceof Uint8Array && echoed[3] instanceof RangeError)
      assert.equal(runner.workerStats.total, 2)
    })

    it('process.exit in a task: Crashed with the exit code, the worker replaced, others carry on, retries apply', async () => {
      const runner = make()
      const other = runner.submit(T.sleeper, [300, 'other'])
      const exited = await runner.submit(P.exitWith, [3]).wait()
      assert.equal(exited.type, 'Crashed')
      // One line in ptr's words: no workerpool internals, nothing else in the summary's "caused by".
      assert.match(exited.message ?? '', new RegExp(`^the ${kind} worker running 'exit_with-\\d+' exited with code 3$`))
      assert.equal(exited.error?.cause, undefined)
      assert.equal((await other.result()).label, 'other')
      const { names, stop } = recordStates()
      const retried = runner.submit(P.exitOnce, [])
      assert.equal(await retried.result(), 2)
      stop()
      assert.deepEqual(names(retried.taskRunId), ['Pending', 'Running', 'Retrying', 'Completed'])
      assert.equal(await runner.submit(T.add, [1, 1]).result(), 2)
    })

    it('a run that exits its worker in a batch of quick runs: only it is Crashed, finished runs keep their results, the rest are re-sent', async () => {
      const runner = make()
      const range = (n: number) => Array.from({ length: n }, (_, i) => i)
      // Measured quick first, so the runs below travel in batches.
      await runner.map(P.quickOrExit, [range(300), unmapped(-1)]).result()
      const { logs, stop: stopLogs } = collectLogs()
      const { names, states, stop } = recordStates()
      const futures = runner.map(P.quickOrExit.withOptions({ retries: 1 }), [range(3000), unmapped(1500)])
      const ended = await Promise.all(futures.map((f) => f.wait()))
      stop()
      stopLogs()
      const crashed = futures[1500]!
      // No retry delay: straight to Retrying, which carries the crash of the first attempt.
      assert.deepEqual(names(crashed.taskRunId), ['Pending', 'Running', 'Retrying', 'Crashed'])
      for (const state of states(crashed.taskRunId).filter((s) => s.type === 'Crashed' || s.name === 'Retrying')) {
        assert.match(state.message ?? '', new RegExp(`the ${kind} worker running 'quick_or_exit-\\d+' exited with code 5`))
      }
      // A crashed attempt is called what it was.
      assert.match(states(crashed.taskRunId).find((s) => s.name === 'Retrying')!.message ?? '', /^attempt 1 crashed: the /)
      const ran = new Map<string, number>()
      for (const line of logs) if (line.message.startsWith('ran ')) ran.set(line.taskRunId!, (ran.get(line.taskRunId!) ?? 0) + 1)
      ended.forEach((state, i) => {
        if (i === 1500) return
        const id = futures[i]!.taskRunId
        assert.deepEqual(names(id), ['Pending', 'Running', 'Completed'], `run ${i}`)
        assert.equal(state.result, i * 2)
        // Finished runs kept their results, unstarted ones ran once when re-sent: none ran twice.
        assert.equal(ran.get(id), 1, `run ${i} ran ${ran.get(id)} times`)
      })
      assert.equal(ran.get(crashed.taskRunId), 2)
    })

    it('a task past its memory limit: Crashed, out of memory; the pool goes on', async () => {
      const runner = make({ maxOldGenerationSizeMb: 48 })
      const state = await runner.submit(P.hog, []).wait()
      assert.equal(state.type, 'Crashed')
      assert.match(state.message ?? '', new RegExp(`^the ${kind} worker running 'hog-\\d+' ran out of memory \\(maxOldGenerationSizeMb 48\\)$`))
      assert.equal(state.error?.cause, undefined)
      assert.equal(await runner.submit(T.add, [1, 1]).result(), 2)
    })

    it('thrown non-Errors arrive as readable errors', async () => {
      const runner = make()
      const expected: Record<string, RegExp> = {
        string: /plain string/,
        number: /non-Error thrown: 42/,
        object: /code: 7.*reason: 'nope'/,
        undefined: /non-Error thrown: undefined/,
        null: /non-Error thrown: null/,
      }
      const states = await Promise.all(Object.keys(expected).map((k) => runner.submit(T.throwValue, [k]).wait()))
      Object.values(expected).forEach((pattern, i) => {
        assert.equal(states[i]!.type, 'Failed')
        assert.match(states[i]!.error!.message, pattern)
      })
      assert.equal(runner.workerStats.total, 2, 'no worker died')
    })

    it('a CPU busy loop past timeoutSeconds ends TimedOut, its worker is replaced, later runs succeed', async () => {
      const runner = make({ maxWorkers: 1 })
      assert.equal(await runner.submit(T.add, [1, 1]).result(), 2)
      const state = await runner.submit(P.busy, [60_000]).wait()
      assert.equal(state.name, 'TimedOut')
      assert.match(state.message ?? '', /'busy-\d+' timed out after 0.3 s/)
      // With one worker, this run can only complete on the replacement worker.
      assert.equal(await runner.submit(T.add, [2, 3]).result({ timeout: 20 }), 5)
    })

    it('on timeout and on cancelAll() the signal aborts inside the worker first: a child spawned with it is gone', async () => {
      const runner = make()
      const { logs, stop } = collectLogs()
      const sleepPid = async (taskRunId: string) => {
        const text = () => logs.filter((l) => l.taskRunId === taskRunId).map((l) => l.message).join('\n')
        await waitForOutput(text, /sleep pid \d+/)
        return Number(/sleep pid (\d+)/.exec(text())![1])
      }
      const timed = runner.submit(P.spawnSleep.withOptions({ timeoutSeconds: 2 }), [])
      const timedPid = await sleepPid(timed.taskRunId)
      assert.equal((await timed.wait()).name, 'TimedOut')
      const cancelled = runner.submit(P.spawnSleep, [])
      const cancelledPid = await sleepPid(cancelled.taskRunId)
      runner.cancelAll('test cancels')
      assert.equal((await cancelled.wait()).type, 'Cancelled')
      stop()
      assert.deepEqual(await waitForExit([timedPid, cancelledPid], 5_000), [], 'a sleep spawned with the run signal outlived its run')
    })

    it('logs from workers land on their own run, also many runs at once', async () => {
      const runner = make({ maxWorkers: 3 })
      const { logs, stop } = collectLogs()
      const tags = Array.from({ length: 24 }, (_, i) => `tag${i}`)
      const futures = runner.map(P.logMany, [tags, unmapped(30)])
      await futures.result()
      stop()
      const tagOf = new Map(futures.map((f, i) => [f.taskRunId, tags[i]!]))
      const mine = logs.filter((l) => tagOf.has(l.taskRunId ?? ''))
      assert.equal(mine.length, 24 * 30)
      for (const line of mine) assert.match(line.message, new RegExp(`^${tagOf.get(line.taskRunId!)} line \\d+$`), `line ${line.message} landed on ${line.taskRunName}`)
      assert.deepEqual(new Set(mine.map((l) => l.level)), new Set(['info', 'error']))
    })

    it('nested submits from inside a worker finish with maxWorkers 1, and their states reach the main side', async () => {
      const runner = make({ maxWorkers: 1 })
      const seen = new Map<string, { name: string; mapId: string | undefined; states: string[] }>()
      const stop = onRunEvent((event) => {
        if (event.kind !== 'task-run-state' || event.taskRun.taskName !== 'double') return
        const run = seen.get(event.taskRun.id) ?? { name: event.taskRun.name, mapId: event.taskRun.mapId, states: [] }
        run.states.push(event.state.name)
        seen.set(event.taskRun.id, run)
      })
      assert.equal(await runner.submit(T.fanOut, [6]).result({ timeout: 30 }), 30)
      assert.equal(await runner.submit(T.nestedCall, [4]).result({ timeout: 30 }), 9)
      stop()
      const runs = [...seen.values()]
      assert.equal(runs.length, 7, 'six mapped runs and one direct call, each seen once')
      for (const run of runs) assert.deepEqual(run.states, ['Pending', 'Running', 'Completed'], run.name)
      assert.equal(new Set(runs.filter((r) => r.mapId).map((r) => r.mapId)).size, 1, 'the map keeps its id, so a view folds it into one row')
    })

    it('a task a worker cannot find fails before any attempt, saying what to do', async () => {
      const runner = make()
      const { names, stop } = recordStates()
      const future = runner.submit(P.makeLocalTask(), [1])
      const state = await future.wait()
      stop()
      assert.equal(state.type, 'Failed')
      assert.match(state.message ?? '', /task 'local_task' was not found in a worker (thread|process): .*pool-tasks\.ts does not define it at its top level; define it with task\(\) at the top level of its module and export it/)
      assert.deepEqual(names(future.taskRunId), ['Pending', 'Failed'])
    })

    it(`ptr run flows/elevator.ts --runner ${kind} --max-workers 3 has at most 3 stops in progress, and 3 at some point`, async () => {
      const result = await runPtr(['run', 'flows/elevator.ts', '--runner', kind, '--max-workers', '3', '--param', 'seconds=0.1'])
      assert.equal(result.code, 0, result.stderr + result.stdout)
      let now = 0
      let peak = 0
      let stops = 0
      for (const line of result.stdout.split('\n')) {
        const match = /^\d\d:\d\d:\d\d\.\d{3} stop_at_floor-\d+ (Running|Completed)$/.exec(line)
        if (!match) continue
        now += match[1] === 'Running' ? 1 : -1
        if (match[1] === 'Running') stops++
        peak = Math.max(peak, now)
      }
      assert.equal(stops, 10)
      assert.equal(peak, 3)
      assert.match(result.stdout, /stop_at_floor-7 \| elevator stopping at floor 7/)
    })

    it('runs a flow that imports a local .ts module and a package, from a cwd outside the repository', async () => {
      const project = tempDir('ptr-pool-project-')
      try {
        const dir = project.dir
        mkdirSync(path.join(dir, 'node_modules', 'shout'), { recursive: true })
        symlinkSync(REPO, path.join(dir, 'node_modules', 'ptr'))
        writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'project', type: 'module' }))
        writeFileSync(path.join(dir, 'node_modules', 'shout', 'package.json'), JSON.stringify({ name: 'shout', type: 'module', main: 'index.js' }))
        writeFileSync(path.join(dir, 'node_modules', 'shout', 'index.js'), 'export const shout = (s) => s.toUpperCase() + "!"\n')
        writeFileSync(path.join(dir, 'lib.ts'), 'export const greeting = (name: string): string => `hello ${name} from ${process.pid}`\n')
        writeFileSync(
          path.join(dir, 'flow.ts'),
          [
            "import { flow, task } from 'ptr'",
            "import { shout } from 'shout'",
            "import { greeting } from './lib.ts'",
            "export const loud = task({ name: 'loud' }, (name: string) => shout(greeting(name)))",
            "export default flow({ name: 'project' }, async () => {",
            "  const value = await loud.submit('ada').result()",
            "  console.log(`main ${process.pid} got ${value}`)",
            '})',
          ].join('\n'),
        )
        const result = await runPtr(['run', 'flow.ts', '--runner', kind, '--max-workers', '1'], { cwd: dir })
        assert.equal(result.code, 0, result.stderr + result.stdout)
        const match = /main (\d+) got HELLO ADA FROM (\d+)!/.exec(result.stdout)
        assert.ok(match, result.stdout)
        if (kind === 'process') assert.notEqual(match[1], match[2], 'the task ran in another process')
      } finally {
        project.cleanup()
      }
    })
  })
}

describe('process pool runner: killed workers and a killed ptr', () => {
  it('a worker process killed with SIGKILL: Crashed saying so, retries apply, others carry on', async () => {
    const runner = new ProcessPoolTaskRunner({ maxWorkers: 2 })
    opened.push(runner)
    const { logs, stop } = collectLogs()
    const other = runner.submit(T.sleeper, [500, 'other'])
    const { states, stop: stopStates } = recordStates()
    const victim = runner.submit(P.pidThenSleep, [30_000])
    await waitForOutput(() => logs.map((l) => l.message).join('\n'), /pid \d+ attempt 1/)
    const pid = Number(/pid (\d+) attempt 1/.exec(logs.map((l) => l.message).join('\n'))![1])
    process.kill(pid, 'SIGKILL')
    assert.equal(await victim.result({ timeout: 30 }), 2)
    stop()
    stopStates()
    const crash = states(victim.taskRunId).find((s) => s.name === 'Retrying')
    assert.match(crash?.message ?? '', /the process worker running 'pid_then_sleep-\d+' was killed by SIGKILL/)
    assert.equal((await other.result()).label, 'other')
  })

  it("a worker process out of memory: V8's report stays off the terminal, the crash is one line, console.error still reaches the run's log", async () => {
    const result = await runPtr(['run', 'test/fixtures/oom-flow.ts'])
    assert.equal(result.code, 1, result.stderr + result.stdout)
    const output = result.stdout + result.stderr
    assert.doesNotMatch(output, /FATAL ERROR|Native stack trace|JavaScript heap out of memory|Workerpool/)
    assert.match(output, /the process worker running 'hog-0' ran out of memory \(maxOldGenerationSizeMb 48\)/)
    assert.match(result.stdout, /hog-0 \| hogging now/)
  })

  it('Ctrl-C during ptr run --runner process: exit 130 and no worker process survives', async () => {
    let out = ''
    let workers: number[] = []
    const result = await runPtr(['run', 'flows/elevator.ts', '--runner', 'process', '--max-workers', '2', '--param', 'seconds=30'], {
      onSpawn: (child) => {
        child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
        void waitForOutput(() => out, /stop_at_floor-9 \| elevator stopping/).then(() => {
          workers = childPids(child.pid!)
          child.kill('SIGINT')
        })
      },
    })
    assert.equal(result.code, 130, result.stderr)
    assert.equal(workers.length, 2)
    assert.deepEqual(await waitForExit(workers, 3_000), [])
  })

  for (const flowFile of ['flows/elevator.ts', 'test/fixtures/busy-flow.ts']) {
    it(`SIGKILL of ptr itself (${path.basename(flowFile)}): its worker processes exit within a few seconds`, async () => {
      let out = ''
      let children: number[] = []
      let workers: number[] = []
      await runPtr(['run', flowFile, '--runner', 'process', '--max-workers', '2', '--param', 'seconds=30'], {
        onSpawn: (child) => {
          child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
          void waitForOutput(() => out, /(elevator stopping|spinning in)[^\n]*\n[^]*(elevator stopping|spinning in)/).then(() => {
            children = childPids(child.pid!)
            // Told apart while they all live: tsx may also run its esbuild service under ptr (on a
            // cold cache). Not a worker, but it must go too.
            workers = children.filter((pid) => !isEsbuildService(pid))
            child.kill('SIGKILL')
          })
        },
      })
      assert.equal(workers.length, 2)
      assert.deepEqual(await waitForExit(children, 4_000), [], 'worker processes outlived a SIGKILLed ptr')
    })
  }
})
