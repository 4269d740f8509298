/**
 * The code that runs inside every pool worker (thread or child process), loaded by workerpool with
 * tsx registered by pool-bootstrap.mjs. It imports a task's module once per worker, finds the task
 * by its key, runs it in a run context (nested submits run in place, here), and sends back a
 * value or an error record. Logs travel as workerpool events, tagged with their task run.
 */
import { Worker, isMainThread } from 'node:worker_threads'
import workerpool from 'workerpool'
import { captureConsole, currentContext, runWithContext, setLogSink } from '../engine/context.ts'
import type { RunContext } from '../engine/context.ts'
import { runEvents } from '../engine/events.ts'
import type { State } from '../engine/states.ts'
import { isStateValue } from '../engine/state-values.ts'
import { lookupTask } from '../engine/registry.ts'
import type { AnyTask } from '../engine/task-types.ts'
import { toError } from '../errors.ts'
import { checkReturnValue, crossingName } from './crossing.ts'
import type { Crossing } from './crossing.ts'
import { METHOD_PROBE, METHOD_RUN, keyModuleUrl } from './pool-protocol.ts'
import type { ErrorRecord, LogMessage, ProbeAnswer, RunOutcome, RunRequest, RunResult, StateMessage, StateRecord } from './pool-protocol.ts'
import { inlineRunner } from '../engine/task-runner.ts'

const crossing: Crossing = isMainThread ? 'process' : 'thread'

// Each module is imported once per worker; its top-level code (task definitions) runs once here.
const modules = new Map<string, Promise<unknown>>()
const load = (url: string): Promise<unknown> => {
  let loading = modules.get(url)
  if (!loading) modules.set(url, (loading = import(url)))
  return loading
}

async function findTask(key: string): Promise<AnyTask | undefined> {
  const found = lookupTask(key)
  if (found) return found
  await load(keyModuleUrl(key))
  return lookupTask(key)
}

function canClone(value: unknown): boolean {
  return checkReturnValue(value, crossing) === undefined
}

function toRecord(thrown: unknown, ptr?: ErrorRecord['ptr']): ErrorRecord {
  const error = toError(thrown)
  const code = (error as { code?: unknown }).code
  const record: ErrorRecord = {
    name: String(error.name),
    message: String(error.message),
    stack: typeof error.stack === 'string' ? error.stack : undefined,
    code: typeof code === 'string' ? code : undefined,
    ...(ptr ? { ptr } : {}),
  }
  if (!(thrown instanceof Error) && thrown !== error && canClone(thrown)) return { ...record, thrown, hasThrown: true }
  return record
}

function notFound(key: string, name: string, reason: string): ErrorRecord {
  return toRecord(new Error(`task '${name}' was not found in ${crossingName(crossing)}: ${reason}`), 'not-found')
}

async function runOne(request: RunRequest): Promise<RunOutcome> {
  const start = performance.now()
  const outcome = await attempt(request)
  return { ...outcome, ms: performance.now() - start }
}

async function attempt(request: RunRequest): Promise<RunResult> {
  let task: AnyTask | undefined
  try {
    task = await findTask(request.key)
  } catch (error) {
    return { ok: false, error: notFound(request.key, request.taskRun.taskName, `its module failed to load: ${toError(error).message}`) }
  }
  if (!task) return { ok: false, error: notFound(request.key, request.taskRun.taskName, 'its module does not define it at top level') }
  const fn = task.fn
  const context: RunContext = {
    flowRun: request.flowRun,
    taskRun: request.taskRun,
    // The main side terminates this worker to stop an attempt, so this signal never fires here;
    // it is there for code that passes it on.
    signal: new AbortController().signal,
    // Submits from inside the task run in place, in this worker: never a deadlock (Prefect issue 17060).
    taskRunner: inlineRunner,
  }
  try {
    const returned = await runWithContext(context, () => fn(...request.args))
    // A returned state crosses as plain data (its error as a record); the main side rebuilds it.
    const state = isStateValue(returned) ? stateRecord(returned) : undefined
    const value = state ? (returned as State).result : returned
    const problem = checkReturnValue(value, crossing)
    if (problem) {
      return {
        ok: false,
        error: toRecord(
          new Error(`'${request.taskRun.name}': ${problem} from ${crossingName(crossing)}; return plain data (numbers, strings, arrays, plain objects, Map, Set, Date)`),
          'return-value',
        ),
      }
    }
    return state ? { ok: true, value, state } : { ok: true, value }
  } catch (thrown) {
    return { ok: false, error: toRecord(thrown) }
  }
}

/** Runs a batch one request after another: a worker holds one run at a time. */
async function run(requests: RunRequest[]): Promise<RunOutcome[]> {
  const outcomes: RunOutcome[] = []
  for (const request of requests) outcomes.push(await runOne(request))
  return outcomes
}

async function probe(key: string, taskName: string): Promise<ProbeAnswer> {
  try {
    if (await findTask(key)) return { found: true }
    return { found: false, reason: `${keyModuleUrl(key)} does not define it at its top level` }
  } catch (error) {
    return { found: false, reason: `its module ${keyModuleUrl(key)} failed to load in the worker (${toError(error).message.split('\n')[0]})` }
  }
}

setLogSink((event) => {
  const line: LogMessage = { type: 'ptr.log', event }
  workerpool.workerEmit(line)
})
captureConsole()

const stateRecord = ({ result: _result, error, ...rest }: State): StateRecord => (error ? { ...rest, error: toRecord(error) } : rest)

// Runs nested inside a task (submits and calls from it run in place, here) report their states to
// the main side, so its views and reports show them like any other run.
runEvents.on((event) => {
  if (event.kind !== 'task-run-state') return
  const { id, name, taskName, taskKey, tags, mapIndex, mapId, attempt, startTime } = event.taskRun
  const message: StateMessage = {
    type: 'ptr.state',
    taskRun: { id, name, taskName, taskKey, flowRunId: event.taskRun.flowRunId ?? currentContext()?.flowRun?.id, tags: [...tags], mapIndex, mapId, attempt, startTime },
    state: stateRecord(event.state),
    previous: event.previous && stateRecord(event.previous),
  }
  workerpool.workerEmit(message)
})

if (crossing === 'process') {
  // A child process must not outlive ptr. workerpool exits on IPC disconnect, but a task in a busy
  // loop never sees that event, so a tiny watchdog thread polls the parent pid and kills us.
  const watchdog = new Worker(
    `const { workerData } = require('node:worker_threads')
     setInterval(() => { if (process.ppid !== workerData.ppid) process.kill(workerData.pid, 'SIGKILL') }, 250)`,
    { eval: true, workerData: { ppid: process.ppid, pid: process.pid }, execArgv: [], resourceLimits: { maxOldGenerationSizeMb: 8 } },
  )
  watchdog.unref()
}

workerpool.worker({ [METHOD_RUN]: run, [METHOD_PROBE]: probe })
