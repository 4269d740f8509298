/**
 * ptr's public API. Everything else under src/ may change freely.
 */
export { task } from './engine/task.ts'
export type { Task, StateTask, TaskOptions, CallOptions, WaitForItem, ResolvableArgs, MapArgs } from './engine/task-types.ts'
export { flow } from './engine/flow.ts'
export type { Flow, FlowOptions, FlowRunOptions, FlowRunResult } from './engine/flow.ts'
export type { RetryDefaults, RetryOptions } from './engine/retry.ts'
export type { HookOptions, StateHook } from './engine/hooks.ts'
export { tags } from './engine/tags.ts'
export { Completed, Failed, Cancelled } from './engine/state-values.ts'
export type { StateValueOptions } from './engine/state-values.ts'
export { PrefectFuture, PrefectFutureList, wait, asCompleted } from './engine/future.ts'
export type { ResultOptions, WaitResult } from './engine/future.ts'
export type { CacheKeyContext, CachePolicy, CachePolicyName, ResultStore, StoredResult, TaskResultOptions, TaskRunMemo } from './engine/result-types.ts'
export { allowFailure, unmapped, AllowFailure, Unmapped } from './engine/resolve.ts'
export type { Resolvable } from './engine/resolve.ts'
export { getRunContext, getRunLogger } from './engine/context.ts'
export type { RunContext, RunLogger } from './engine/context.ts'
export { isFinal, isSettled } from './engine/states.ts'
export type { State, StateType } from './engine/states.ts'
export { onRunEvent } from './engine/events.ts'
export type { RunEvent, RunEventListener, LogEvent, TaskRunInfo, FlowRunInfo, LogLevel } from './engine/events.ts'
export { TaskRunner } from './engine/task-runner.ts'
export { SequentialTaskRunner } from './runners/sequential.ts'
export { ConcurrentTaskRunner } from './runners/concurrent.ts'
export type { ConcurrentTaskRunnerOptions } from './runners/concurrent.ts'
export { ThreadPoolTaskRunner } from './runners/thread-pool.ts'
export type { ThreadPoolTaskRunnerOptions } from './runners/thread-pool.ts'
export { ProcessPoolTaskRunner } from './runners/process-pool.ts'
export type { ProcessPoolTaskRunnerOptions } from './runners/process-pool.ts'
export { TaskNotFoundInWorkerError, NotCloneableError } from './runners/pool-runner.ts'
export type { PoolTaskRunnerOptions, ResolvedPoolTaskRunnerOptions } from './runners/pool-runner.ts'
export { PrefectTaskRunner } from './runners/prefect.ts'
export type { PrefectTaskRunnerOptions } from './runners/prefect.ts'
export { PrefectDistributedFuture } from './queue/distributed-future.ts'
// Loaded for what it provides to the engine: `t.delay()`.
import './queue/delay.ts'
export { TaskWorker, serve } from './worker/task-worker.ts'
export type { TaskWorkerOptions, WorkerStatus } from './worker/task-worker.ts'
export type { QueueBackend } from './queue/backend.ts'
export {
  PtrError,
  UsageError,
  UpstreamTaskRunError,
  TaskRunTimeoutError,
  FlowRunTimeoutError,
  CancelledError,
  CrashedError,
  FutureTimeoutError,
  UnhandledTaskFailureError,
  MappingLengthMismatchError,
  MappingMissingIterableError,
} from './errors.ts'
