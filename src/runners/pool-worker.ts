/**
 * The code that runs inside every pool worker (thread or child process), loaded by workerpool as
 * built JavaScript (from ptr's sources, with tsx registered by pool-bootstrap.mjs). It imports a task's module once per worker, finds the task
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
import { toErrorRecord } from '../engine/error-wire.ts'
import type { ErrorRecord } from '../engine/error-wire.ts'
import { NotCloneableError, TaskNotFoundInWorkerError, toError } from '../errors.ts'
import { checkReturnValue, crossingName } from './crossing.ts'
import type { Crossing } from './crossing.ts'
import { ABORT_GRACE_MS, METHOD_PRELOAD, METHOD_PROBE, METHOD_RUN, OUTCOMES_EVERY_MS, keyModuleUrl } from './pool-protocol.ts'
import type { LogMessage, OutcomesMessage, ProbeAnswer, RunOutcome, RunRequest, RunResult, StateMessage, StateRecord } from './pool-protocol.ts'
import { inlineRunner } from '../engine/task-runner.ts'
import { startupMark } from './startup-trace.ts'
import { knowModuleBundle, moduleBundle, registerTypeScript } from './bundles.ts'
import type { ModuleBundle } from './bundles.ts'

startupMark('worker: ptr modules loaded')

const crossing: Crossing = isMainThread ? 'process' : 'thread'

// Stacks of errors thrown here name the user's .ts files and lines (the bundle's source map), as
// the main process shows them. On before the first user module loads.
process.setSourceMapsEnabled(true)

// Each module is imported once per worker; its top-level code (task definitions) runs once here.
// A module of the run's bundle comes with the bundle (plain JavaScript, every module of it at
// once); any other through tsx, registered the first time one is needed.
const modules = new Map<string, Promise<unknown>>()
const load = (url: string): Promise<unknown> => {
  let loading = modules.get(url)
  if (!loading) {
    const found = moduleBundle()
    const bundle = found !== undefined && (found.url === url || found.modules.includes(url)) ? found : undefined
    const target = bundle?.url ?? url
    loading = modules.get(target)
    if (!loading) {
      startupMark(`worker: importing ${target}`)
      loading = (bundle && !bundle.typescript ? Promise.resolve() : registerTypeScript()).then(() => import(target))
      modules.set(target, loading)
      if (process.env.PTR_STARTUP_TRACE) void loading.then(() => startupMark('worker: module imported'), () => undefined)
    }
    modules.set(url, loading)
  }
  return loading
}

async function findTask(key: string): Promise<AnyTask | undefined> {
  const found = lookupTask(key)
  if (found) return found
  await load(keyModuleUrl(key))
  return lookupTask(key)
}

const canClone = (value: unknown): boolean => checkReturnValue(value, crossing) === undefined
const toRecord = (thrown: unknown): ErrorRecord => toErrorRecord(thrown, canClone)

function notFound(name: string, reason: string): ErrorRecord {
  return toRecord(new TaskNotFoundInWorkerError(`task '${name}' was not found in ${crossingName(crossing)}: ${reason}`))
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
    return { ok: false, error: notFound(request.taskRun.taskName, `its module failed to load: ${toError(error).message}`) }
  }
  if (!task) return { ok: false, error: notFound(request.taskRun.taskName, 'its module does not define it at top level') }
  const fn = task.fn
  const context = new WorkerRunContext(request)
  running.add(context)
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
          new NotCloneableError(`'${request.taskRun.name}': ${problem} from ${crossingName(crossing)}; return plain data (numbers, strings, arrays, plain objects, Map, Set, Date)`),
        ),
      }
    }
    return state ? { ok: true, value, state } : { ok: true, value }
  } catch (thrown) {
    return { ok: false, error: toRecord(thrown) }
  } finally {
    running.delete(context)
  }
}

/** The context of a run in this worker; its signal is made on first use (most tasks never read it). */
class WorkerRunContext implements RunContext {
  readonly flowRun: RunContext['flowRun']
  readonly taskRun: RunContext['taskRun']
  // Submits from inside the task run in place, in this worker: never a deadlock (Prefect issue 17060).
  readonly taskRunner = inlineRunner
  #controller: AbortController | undefined
  #reason: Error | undefined
  constructor(request: RunRequest) {
    this.flowRun = request.flowRun
    this.taskRun = request.taskRun
  }
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#reason) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }
  abort(reason: Error): void {
    this.#reason ??= reason
    this.#controller?.abort(reason)
  }
}

/** The runs in progress in this worker: one, or a batch's current one (and runs nested in place). */
const running = new Set<WorkerRunContext>()

/**
 * The main side stops an attempt (timeout, cancellation, Ctrl-C) through workerpool's cleanup or
 * terminate message: abort the signal of every run here first, so what the task passed it to
 * (child processes, fetch, timers) stops, and give the task ABORT_GRACE_MS to end. True when it did.
 */
async function abortRunning(): Promise<boolean> {
  if (running.size === 0) return true
  const reason = new DOMException('ptr stopped this run (it timed out or was cancelled)', 'AbortError')
  const contexts = [...running]
  for (const context of contexts) context.abort(reason as Error)
  const ended = () => contexts.every((context) => !running.has(context))
  const deadline = Date.now() + ABORT_GRACE_MS
  while (!ended() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  return ended()
}

/**
 * Registered with workerpool before the first run. When the stopped runs ended within the grace,
 * the worker answers and workerpool keeps it (and forgets its listeners: registered again on the
 * next run). When a run is still going, it never answers, and the main side terminates the worker
 * after its `workerTerminateTimeout`, as it does for a worker whose event loop is blocked.
 */
let abortListening = false
let firstRun = true
async function onAbort(): Promise<void> {
  if (await abortRunning()) {
    abortListening = false
    return
  }
  await new Promise<never>(() => undefined)
}

/** Outcomes of the batch in progress that the main side has not been sent yet. */
let unsent: RunOutcome[] | undefined
let sentAt = 0

function sendOutcomes(exiting: boolean): void {
  if (!unsent || (unsent.length === 0 && !exiting)) return
  const message: OutcomesMessage = { type: 'ptr.outcomes', outcomes: unsent, exiting }
  unsent = []
  sentAt = performance.now()
  workerpool.workerEmit(message)
}

// A run that calls process.exit (or throws where nothing catches it) ends the worker: say which runs
// of the batch had finished first, so the main side crashes only the run in progress.
process.on('exit', () => sendOutcomes(true))

/**
 * Runs requests one after another: a worker holds one run at a time. A batch's outcomes go back
 * as they come, at most OUTCOMES_EVERY_MS apart (one message for many quick runs), and before the
 * worker exits; the rest with the result. So when a run takes the worker down, the main side knows
 * which runs finished (they keep their results) and which had not started (it sends them again).
 */
async function run(this: { worker?: { addAbortListener(listener: () => Promise<void>): void } }, requests: RunRequest[]): Promise<RunOutcome[]> {
  if (!abortListening && this.worker) {
    abortListening = true
    this.worker.addAbortListener(onAbort)
  }
  if (firstRun) {
    firstRun = false
    startupMark('worker: first run request received')
  }
  if (requests.length === 1) return [await runOne(requests[0]!)]
  unsent = []
  sentAt = performance.now()
  try {
    for (const request of requests) {
      unsent.push(await runOne(request))
      if (performance.now() - sentAt >= OUTCOMES_EVERY_MS) sendOutcomes(false)
    }
    return unsent
  } finally {
    unsent = undefined
  }
}

async function probe(key: string, taskName: string): Promise<ProbeAnswer> {
  try {
    const found = await findTask(key)
    startupMark('worker: probe answered')
    if (found) return { found: true }
    return { found: false, reason: `${keyModuleUrl(key)} does not define it at its top level` }
  } catch (error) {
    return { found: false, reason: `its module ${keyModuleUrl(key)} failed to load in the worker (${toError(error).message.split('\n')[0]})` }
  }
}

/** Imports the run's bundle now (see METHOD_PRELOAD); a module that fails to load says so at its probe. */
async function preload(told: ModuleBundle): Promise<void> {
  knowModuleBundle(told)
  await load(moduleBundle()!.url).catch(() => undefined)
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
  const { id, name, taskName, taskKey, tags, mapIndex, mapId, attempt, startTime, upstreamTaskRunIds } = event.taskRun
  const message: StateMessage = {
    type: 'ptr.state',
    taskRun: { id, name, taskName, taskKey, flowRunId: event.taskRun.flowRunId ?? currentContext()?.flowRun?.id, tags: [...tags], mapIndex, mapId, attempt, startTime, upstreamTaskRunIds },
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

workerpool.worker(
  { [METHOD_RUN]: run, [METHOD_PROBE]: probe, [METHOD_PRELOAD]: preload },
  // Also when the pool is terminated (close after Ctrl-C or SIGTERM): abort first, then exit. The
  // main side ends a worker whose runs outlast the grace well before abortListenerTimeout.
  { onTerminate: () => abortRunning().then(() => undefined), abortListenerTimeout: 60_000 },
)
