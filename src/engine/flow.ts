import { randomUUID } from 'node:crypto'
import { CancelledError, FlowRunTimeoutError, PtrError, UnhandledTaskFailureError, toError } from '../errors.ts'
import type { TaskRunner } from './task-runner.ts'
import { currentContext, runWithContext } from './context.ts'
import { provider } from './providers.ts'
import type { FlowRunInfo } from './events.ts'
import { runEvents } from './events.ts'
import type { Upstream } from './resolve.ts'
import { collectUpstreams, substituteResults } from './resolve.ts'
import type { HookOptions, ResolvedHooks } from './hooks.ts'
import { callHooks, resolveHooks } from './hooks.ts'
import type { RetryDefaults, RetryOptions } from './retry.ts'
import { retryDelayMs, validateRetryOptions, withRetryDefaults, withTimeLimit } from './retry.ts'
import { adoptState, isStateValue } from './state-values.ts'
import { contextTags } from './tags.ts'
import type { State } from './states.ts'
import * as S from './states.ts'
import { isFailure } from './states.ts'
import type { TaskRun, TaskRunOwner } from './task-run.ts'
import type { MemoOwner, ResultStore } from './result-types.ts'

/**
 * A validator that implements Standard Schema v1 (https://standardschema.dev): zod 3.24+ and 4,
 * valibot 1, arktype 2 and others. Only the part ptr uses.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1
    readonly vendor: string
    readonly validate: (value: unknown) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>
    readonly types?: { readonly input: Input; readonly output: Output } | undefined
  }
}
export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string; readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined }> }

export interface FlowOptions extends RetryOptions, HookOptions<AnyFlow, FlowRunInfo> {
  /**
   * A Standard Schema validator (zod, valibot, arktype, ...) for the flow's parameters: every
   * call (from code, or `ptr run --param`) is validated, and the flow function gets the
   * validator's output (defaults filled in, values coerced). An invalid call throws a
   * `PtrError` (code `PTR_INVALID_PARAMETERS`) naming each parameter and what is wrong.
   * @default no validation
   */
  parameters?: StandardSchemaV1<any, any> | undefined
  /** The flow's name, shown in output and accepted by `ptr run FILE NAME`. @default the function's name */
  name?: string
  description?: string
  /**
   * Where this flow's task runs execute. Each flow run works on `taskRunner.duplicate()`.
   * `ptr run --runner` overrides it. @default the thread pool
   */
  taskRunner?: TaskRunner
  /**
   * Fail the flow run when one of its task runs ended Failed or Crashed and nothing handled it
   * (read it with `result()`, or passed it on with `allowFailure()`). Prefect ignores such runs.
   * @default true
   */
  failOnUnhandledTaskFailure?: boolean
  /**
   * Keep the flow run's value with its record in the run history.
   * @default the `results.persistByDefault` setting (true)
   */
  persistResult?: boolean
  // From HookOptions: onCompletion, onFailure, onCrashed, onCancellation, onRunning, each called
  // with the flow, its run and the state; awaited before the run's outcome is delivered.
  // From RetryOptions: `retries` re-run the whole flow function after a Failed or Crashed (or
  // TimedOut) attempt, after `retryDelaySeconds`; `timeoutSeconds` limits each attempt: past it
  // the attempt ends TimedOut, its signal aborts, its task runs and subflows are cancelled, and
  // runs it submits afterwards never start.
}

export interface FlowRunOptions {
  /** Use this runner, whatever the flow's own code says (the CLI's `--runner`). */
  taskRunner?: TaskRunner | undefined
  /** Use this runner when the flow's code names none (settings from the environment or a config file). */
  defaultTaskRunner?: TaskRunner | undefined
  /** Cancels the flow run when aborted: waiting runs end Cancelled, running ones are stopped. */
  signal?: AbortSignal | undefined
  /**
   * Retries for the flow and its task runs where their own options set none (the
   * `PREFECT_*_DEFAULT_RETRIES` settings). Subflows inherit them. @default no retries
   */
  retryDefaults?: RetryDefaults | undefined
  /**
   * Where task results are kept and looked up: the cache, and the runs of an earlier flow run this
   * one resumes (see src/engine/results.ts). Subflows inherit it. @default no caching, no resume
   */
  results?: ResultStore | undefined
}

export interface FlowRunResult<R> {
  readonly state: State<R>
  readonly flowRun: FlowRunInfo
}

const FLOW = Symbol.for('ptr.flow')

type FlowArgs<P> = {} extends P ? [parameters?: P] : [parameters: P]

export interface Flow<P = unknown, R = unknown> {
  /** Runs the flow and returns its value; throws the flow run's error if it did not complete. */
  (...args: FlowArgs<P>): Promise<R>
  readonly [FLOW]: true
  readonly name: string
  readonly options: Readonly<FlowOptions>
  readonly fn: (parameters: P) => R | Promise<R>
  /** Runs the flow and returns its final state and run record; never throws for a failed run. */
  run(parameters?: P, options?: FlowRunOptions): Promise<FlowRunResult<R>>
  /** @internal the flow's hooks, or undefined when it has none */
  readonly hooks: ResolvedHooks | undefined
}
export type AnyFlow = Flow<any, any>

export const isFlow = (value: unknown): value is AnyFlow =>
  typeof value === 'function' && (value as { [FLOW]?: unknown })[FLOW] === true

const ignore = () => undefined

/**
 * The promise a flow call returns. It knows whether anything awaited it (or attached a handler),
 * so a subflow that fails while nobody awaits it fails its parent flow run instead of crashing the
 * process with an unhandled rejection.
 */
class FlowCall<R> extends Promise<R> {
  static override get [Symbol.species](): PromiseConstructor {
    return Promise
  }
  observed = false
  /** Set once the flow run has ended. */
  ended: { state: State; flowRunName: string } | undefined
  override then<A = R, B = never>(onFulfilled?: ((value: R) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    this.observed = true
    return super.then(onFulfilled, onRejected)
  }
}

/** One run of a flow: owns its task runs' accounting (through its attempts) and its runner. */
export class FlowRun implements FlowRunInfo {
  readonly id = randomUUID()
  readonly name: string
  readonly flowName: string
  readonly parentFlowRunId: string | undefined
  readonly parameters: Readonly<Record<string, unknown>>
  readonly taskRunner: TaskRunner
  /** Tags from the `tags()` contexts around the flow call. */
  readonly tags: readonly string[]
  readonly retryDefaults: RetryDefaults | undefined
  /** Where results are kept, if anywhere; and the run's place among its root's subflows (see MemoOwner). */
  readonly results: ResultStore | undefined
  readonly memoPath: string
  readonly persistResult: boolean
  state: State
  readonly history: State[] = []
  cancelError: Error | undefined
  /** Failed or crashed task runs that no code has looked at. */
  readonly unhandled = new Set<TaskRun>()
  /** Subflows called from this flow run: each ends before this one does. */
  readonly #subflowCalls: FlowCall<unknown>[] = []
  #open = 0
  #idle: (() => void) | undefined
  #cancelled: (() => void) | undefined

  constructor(
    flowName: string,
    parameters: Record<string, unknown>,
    taskRunner: TaskRunner,
    parentFlowRunId: string | undefined,
    retryDefaults?: RetryDefaults | undefined,
    memo?: { results: ResultStore | undefined; path: string; persistResult: boolean | undefined },
  ) {
    this.tags = contextTags() ?? []
    this.retryDefaults = retryDefaults
    this.results = memo?.results
    this.memoPath = memo?.path ?? ''
    this.persistResult = this.results !== undefined && (memo?.persistResult ?? this.results.persistByDefault)
    this.flowName = flowName
    this.name = `${flowName}-${this.id.slice(0, 8)}`
    this.parameters = parameters
    this.taskRunner = taskRunner
    this.parentFlowRunId = parentFlowRunId
    this.state = S.Pending()
    this.setState(this.state)
  }

  get taskRunnerName(): string {
    return this.taskRunner.name
  }
  /** The current state's name, for the run context. */
  get stateName(): string {
    return this.state.name
  }

  setState(state: State): void {
    this.state = state
    this.history.push(state)
    runEvents.emit({ kind: 'flow-run-state', flowRun: this, state })
  }

  taskRunCreated(): void {
    this.#open++
  }
  taskRunSettled(run: TaskRun): void {
    if (isFailure(run.state) && !run.handled) this.unhandled.add(run)
    if (--this.#open === 0) this.#idle?.()
  }
  taskRunHandled(run: TaskRun): void {
    this.unhandled.delete(run)
  }
  hold(): () => void {
    this.#open++
    let released = false
    return () => {
      if (released) return
      released = true
      if (--this.#open === 0) this.#idle?.()
    }
  }

  /** Resolves when every task run of this flow run has settled. */
  allSettled(): Promise<void> {
    if (this.#open === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const previous = this.#idle
      this.#idle = () => {
        previous?.()
        resolve()
      }
    })
  }

  subflowCalled(call: FlowCall<unknown>): void {
    this.#subflowCalls.push(call)
  }

  /** Resolves when every subflow called from this flow run has ended (without counting as awaiting them). */
  async subflowsSettled(): Promise<void> {
    for (let i = 0; i < this.#subflowCalls.length; i++) await Promise.prototype.then.call(this.#subflowCalls[i], ignore, ignore)
  }

  /** Subflow runs that did not complete and that nothing awaited. */
  unhandledSubflows(): { state: State; flowRunName: string }[] {
    return this.#subflowCalls.flatMap((call) => (!call.observed && call.ended && call.ended.state.type !== 'Completed' ? [call.ended] : []))
  }

  /** Before a retry: the failed attempt's unhandled runs and subflow calls no longer count. */
  forgetAttempt(): void {
    this.unhandled.clear()
    this.#subflowCalls.length = 0
  }

  /** Resolves when the flow run is cancelled. */
  whenCancelled(): Promise<never> {
    return new Promise((_, reject) => {
      if (this.cancelError) reject(this.cancelError)
      else this.#cancelled = () => reject(this.cancelError)
    })
  }

  cancel(reason: string): void {
    if (this.cancelError) return
    this.cancelError = new CancelledError(reason)
    this.taskRunner.cancelAll(reason)
    this.#cancelled?.()
  }
}

/**
 * One attempt of a flow run: what its code submits belongs to the flow run, until the attempt is
 * stopped (timed out, or the flow run cancelled); then new runs never start.
 */
class FlowAttempt implements TaskRunOwner {
  readonly flowRun: FlowRun
  readonly controller = new AbortController()
  readonly memo: MemoOwner | undefined
  #timedOut: Error | undefined
  /** Calls so far of each task (by key) and subflow (by `flow:` name) in this attempt: a run's place among them. */
  readonly #positions = new Map<string, number>()
  constructor(flowRun: FlowRun) {
    this.flowRun = flowRun
    const { results } = flowRun
    if (results !== undefined) {
      this.memo = {
        results,
        memoPath: flowRun.memoPath,
        flowRunId: flowRun.id,
        flowName: flowRun.flowName,
        parameters: flowRun.parameters,
        nextPosition: (key) => this.nextPosition(key),
      }
    }
  }
  nextPosition(key: string): number {
    const n = this.#positions.get(key) ?? 0
    this.#positions.set(key, n + 1)
    return n
  }
  get info(): FlowRunInfo {
    return this.flowRun
  }
  get stopped(): Error | undefined {
    return this.#timedOut ?? this.flowRun.cancelError
  }
  get retryDefaults(): RetryDefaults | undefined {
    return this.flowRun.retryDefaults
  }
  timeOut(error: Error): void {
    this.#timedOut = error
    this.controller.abort(error)
  }
  taskRunCreated(): void {
    this.flowRun.taskRunCreated()
  }
  taskRunSettled(run: TaskRun): void {
    this.flowRun.taskRunSettled(run)
  }
  taskRunHandled(run: TaskRun): void {
    this.flowRun.taskRunHandled(run)
  }
  hold(): () => void {
    return this.flowRun.hold()
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Moves the flow run to `state` and calls the flow's hooks for it; returns their end, if any. */
function enterState(flow: AnyFlow, flowRun: FlowRun, state: State): Promise<void> | undefined {
  flowRun.setState(state)
  return flow.hooks && callHooks(flow.hooks, state, flow, flowRun, { flowRunId: flowRun.id }, flowRun.name)
}

/** Runs the flow function once, within the flow's time limit; never rejects. */
async function runAttempt(flow: AnyFlow, flowRun: FlowRun, attempt: FlowAttempt, params: Record<string, unknown>, number: number): Promise<{ value: unknown } | { error: Error }> {
  const { timeoutSeconds } = flow.options
  try {
    const hooked = enterState(flow, flowRun, S.Running(number === 1 ? 'Running' : 'Retrying'))
    if (hooked) await hooked
    const runner = flowRun.taskRunner
    await runner.start()
    const context = { flowRun, owner: attempt, taskRun: undefined, signal: attempt.controller.signal, taskRunner: runner }
    const cancelled = flowRun.whenCancelled()
    cancelled.catch(() => undefined)
    const work = Promise.race([runWithContext(context, () => flow.fn(params)), cancelled])
    const value = await withTimeLimit(work, timeoutSeconds, () => {
      const error = new FlowRunTimeoutError(`flow run '${flowRun.name}' timed out after ${timeoutSeconds} s`)
      attempt.timeOut(error)
      runner.cancelAll(error.message)
      return error
    })
    return { value }
  } catch (error) {
    return { error: toError(error) }
  }
}

async function finalState(flowRun: FlowRun, options: FlowOptions, outcome: { value: unknown } | { error: Error }): Promise<State> {
  if (flowRun.cancelError) return S.Cancelled(flowRun.cancelError)
  if ('error' in outcome) return S.Failed(outcome.error, outcome.error instanceof FlowRunTimeoutError ? 'TimedOut' : 'Failed')
  // A returned state is the flow run's own, whatever its task runs did (as in Prefect).
  if (isStateValue(outcome.value)) return adoptState(outcome.value)
  let value = outcome.value
  const returned: Upstream[] = []
  collectUpstreams(value, returned)
  if (returned.length > 0) {
    // Returned futures are the flow's result: resolve them, and let their failures fail the flow.
    await Promise.all(returned.map((u) => u.future.result({ raiseOnFailure: false })))
    const bad = returned.filter((u) => u.future.state.type !== 'Completed')
    if (bad.length > 0) {
      const first = bad[0]!.future.state
      return S.Failed(
        new PtrError(`${bad.length} of ${returned.length} returned task runs did not complete; the first ended ${first.name}: ${first.error?.message ?? ''}`, {
          code: 'PTR_RETURNED_RUN_FAILED',
          cause: first.error,
        }),
      )
    }
    value = substituteResults(value)
  }
  const subflows = flowRun.unhandledSubflows()
  if (options.failOnUnhandledTaskFailure !== false && (flowRun.unhandled.size > 0 || subflows.length > 0)) {
    const runs = [
      ...[...flowRun.unhandled].map((r) => ({ what: `'${r.name}'`, state: r.state })),
      ...subflows.map((f) => ({ what: `subflow run '${f.flowRunName}'`, state: f.state })),
    ]
    const kind = subflows.length === 0 ? 'task run' : flowRun.unhandled.size === 0 ? 'subflow run' : 'run'
    const shown = runs.slice(0, 3).map((r) => `${r.what} (${r.state.name}: ${r.state.error?.message ?? ''})`)
    const more = runs.length > 3 ? ` and ${runs.length - 3} more` : ''
    return S.Failed(
      new UnhandledTaskFailureError(
        `${runs.length} ${kind}${runs.length === 1 ? '' : 's'} failed and nothing handled ${runs.length === 1 ? 'it' : 'them'}: ${shown.join(', ')}${more}`,
        runs[0]!.state.error,
      ),
    )
  }
  return S.Completed(value)
}

async function runFlow<P, R>(flow: Flow<P, R>, parameters: P | undefined, options: FlowRunOptions = {}, call?: FlowCall<unknown>): Promise<FlowRunResult<R>> {
  const parent = currentContext()
  const parentFlow = parent?.owner instanceof FlowAttempt ? parent.owner.flowRun : undefined
  if (call) parentFlow?.subflowCalled(call)
  if (parameters !== undefined && (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters))) {
    throw new PtrError(`flow '${flow.name}': parameters must be one object of named values, e.g. ${flow.name}({ n: 3 }); got ${typeof parameters}`, {
      code: 'PTR_INVALID_PARAMETERS',
      exitCode: 2,
    })
  }
  if (flow.options.parameters) parameters = (await validateParameters(flow.name, flow.options.parameters, parameters ?? {})) as P
  const base = options.taskRunner ?? flow.options.taskRunner ?? parentFlow?.taskRunner ?? options.defaultTaskRunner ?? provider('defaultTaskRunner')()
  const runner = base.duplicate()
  const params = (parameters ?? {}) as Record<string, unknown>
  const retryDefaults = options.retryDefaults ?? parentFlow?.retryDefaults
  const results = options.results ?? parentFlow?.results
  const parentAttempt = parent?.owner instanceof FlowAttempt ? parent.owner : undefined
  const memoPath = parentAttempt && parentFlow ? `${parentFlow.memoPath}/${flow.name}#${parentAttempt.nextPosition(`flow:${flow.name}`)}` : ''
  const flowRun = new FlowRun(flow.name, params, runner, parentFlow?.id, retryDefaults, { results, path: memoPath, persistResult: flow.options.persistResult })
  const retryOptions = withRetryDefaults(flow.options, retryDefaults?.flowRetries, retryDefaults?.flowRetryDelaySeconds)
  const controller = new AbortController()
  const signals = [options.signal, parent?.signal].filter((s): s is AbortSignal => s !== undefined)
  const onAbort = (event: Event) => {
    const reason = (event.target as AbortSignal).reason
    flowRun.cancel(reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'flow run cancelled')
    controller.abort(flowRun.cancelError)
  }
  for (const signal of signals) {
    if (signal.aborted) onAbort({ target: signal } as unknown as Event)
    else signal.addEventListener('abort', onAbort, { once: true })
  }
  try {
    for (let number = 1; ; number++) {
      const attempt = new FlowAttempt(flowRun)
      const abortAttempt = () => attempt.controller.abort(flowRun.cancelError)
      controller.signal.addEventListener('abort', abortAttempt, { once: true })
      const outcome = await runAttempt(flow, flowRun, attempt, params, number)
      // Runs and subflows the flow started and never awaited still finish (and are shown) before it ends.
      await flowRun.allSettled()
      await flowRun.subflowsSettled()
      controller.signal.removeEventListener('abort', abortAttempt)
      const state = await finalState(flowRun, flow.options, outcome)
      if (number > retryOptions.retries || flowRun.cancelError || !isFailure(state)) {
        const hooked = enterState(flow, flowRun, state)
        if (hooked) await hooked
        break
      }
      const delay = retryDelayMs(retryOptions, number)
      flowRun.setState(S.AwaitingRetry(delay, state.error ?? new Error(`flow run ended ${state.name}`)))
      flowRun.forgetAttempt()
      if (delay > 0) await Promise.race([sleep(delay), flowRun.whenCancelled().catch(() => undefined)])
      if (flowRun.cancelError) {
        const hooked = enterState(flow, flowRun, S.Cancelled(flowRun.cancelError))
        if (hooked) await hooked
        break
      }
    }
  } finally {
    for (const signal of signals) signal.removeEventListener('abort', onAbort)
    await runner.close()
  }
  return { state: flowRun.state as State<R>, flowRun }
}

/** Runs the flow's parameters through its Standard Schema validator; throws one PtrError listing every issue. */
async function validateParameters(flowName: string, schema: StandardSchemaV1<any, any>, parameters: unknown): Promise<unknown> {
  const result = await schema['~standard'].validate(parameters)
  if (!result.issues) return result.value
  const issues = result.issues.map((issue) => {
    const path = (issue.path ?? []).map((p) => String(typeof p === 'object' ? p.key : p)).join('.')
    return path ? `'${path}': ${issue.message}` : issue.message
  })
  throw new PtrError(`flow '${flowName}': invalid parameters: ${issues.join('; ')}`, { code: 'PTR_INVALID_PARAMETERS', exitCode: 2, retryable: false })
}

/**
 * Defines a flow: a function of one object of named parameters that submits tasks.
 *
 * @example
 * export default flow({ name: 'hello' }, async ({ name = 'world' }: { name?: string }) => greet(name))
 */
export function flow<S extends StandardSchemaV1<any, any>, R = unknown>(
  options: FlowOptions & { parameters: S },
  fn: (parameters: NonNullable<S['~standard']['types']>['output']) => R,
): Flow<NonNullable<S['~standard']['types']>['input'], Awaited<R>>
export function flow<P = unknown, R = unknown>(fn: (parameters: P) => R): Flow<P, Awaited<R>>
export function flow<P = unknown, R = unknown>(options: FlowOptions, fn: (parameters: P) => R): Flow<P, Awaited<R>>
export function flow(a: unknown, b?: unknown): AnyFlow {
  const [options, fn] = (typeof a === 'function' ? [{}, a] : [a ?? {}, b]) as [FlowOptions, (parameters: unknown) => unknown]
  if (typeof fn !== 'function') {
    throw new PtrError(`flow(): expected a function to run, got ${typeof fn}; write flow({ name }, async (params) => ...)`, {
      code: 'PTR_INVALID_FLOW',
      exitCode: 2,
    })
  }
  const name = options.name ?? (fn.name || 'flow')
  validateRetryOptions(`flow '${name}'`, 'PTR_INVALID_FLOW_OPTION', options)
  const hooks = resolveHooks(`flow '${name}'`, 'PTR_INVALID_FLOW_OPTION', options)
  const self = function (parameters?: unknown) {
    let resolve!: (value: unknown) => void
    let reject!: (error: unknown) => void
    const call = new FlowCall<unknown>((res, rej) => {
      resolve = res
      reject = rej
    })
    // Whoever awaits the call gets its error; a failed subflow nobody awaits fails its parent instead.
    Promise.prototype.then.call(call, undefined, ignore)
    runFlow(self, parameters, {}, call).then(({ state, flowRun }) => {
      call.ended = { state, flowRunName: flowRun.name }
      if (state.type === 'Completed') resolve(state.result)
      else reject(state.error ?? new Error(`flow run ended ${state.name}`))
    }, reject)
    return call
  } as unknown as AnyFlow
  Object.defineProperties(self, {
    [FLOW]: { value: true },
    name: { value: name },
    options: { value: Object.freeze({ ...options, name }) },
    fn: { value: fn },
    hooks: { value: hooks },
    run: { value: (parameters?: unknown, runOptions?: FlowRunOptions) => runFlow(self, parameters, runOptions) },
  })
  return self
}
