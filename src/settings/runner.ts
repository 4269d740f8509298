import { createTaskRunner } from '../runners/kinds.ts'
import type { TaskRunner } from '../engine/task-runner.ts'
import type { RetryDefaults } from '../engine/retry.ts'
import type { FlowRunnerInfo, ResolvedSettings } from './resolve.ts'
import { formatSource } from './resolve.ts'
import { sizeSettingFor } from './schema.ts'

/** What `flow.run()` is given: the runner settings turned into `taskRunner` / `defaultTaskRunner`. */
export interface RunnerForRun {
  /** Replaces the flow's own runner. */
  readonly taskRunner?: TaskRunner
  /** Used only when the flow's code names no runner. */
  readonly defaultTaskRunner?: TaskRunner
}

/** The default retry settings, as `flow.run()` takes them: a task's or flow's own options win. */
export function retryDefaultsFor(settings: ResolvedSettings): RetryDefaults {
  const { settings: s } = settings
  return {
    taskRetries: Number(s['tasks.defaultRetries'].value),
    taskRetryDelaySeconds: Number(s['tasks.defaultRetryDelaySeconds'].value),
    flowRetries: Number(s['flows.defaultRetries'].value),
    flowRetryDelaySeconds: Number(s['flows.defaultRetryDelaySeconds'].value),
  }
}

/** The runner a flow's code names, as the settings see it. */
export function flowRunnerInfo(flow: { name: string; options: { taskRunner?: TaskRunner | undefined } }): FlowRunnerInfo | undefined {
  const runner = flow.options.taskRunner
  if (!runner) return undefined
  const options = (runner as { options?: unknown }).options
  return { flowName: flow.name, name: runner.name, options: options && typeof options === 'object' ? (options as Record<string, unknown>) : undefined }
}

/**
 * Turns resolved settings into the runner a run gets. The kind is resolved first
 * (flag > flow code > env > file > default), then the size setting of that kind with the same
 * precedence; size settings of other kinds do not apply.
 *
 * - The flow's code named the runner and nothing outranked or completed it: the flow's own runner
 *   is used unchanged (nothing is passed).
 * - The flow's code named a runner and a flag changed its kind or size, or the code left the size
 *   open and the environment or a config file set it: a runner is built from the settings and
 *   passed as `taskRunner`, so it replaces the flow's.
 * - The flow's code names none: the built runner is passed as `taskRunner` when a flag decided the
 *   kind or the size, else as `defaultTaskRunner`.
 */
export function runnerForRun(settings: ResolvedSettings, flowRunner: FlowRunnerInfo | undefined): RunnerForRun {
  const kind = settings.settings.runner
  const sizeSpec = sizeSettingFor(String(kind.value))
  const size = sizeSpec ? settings.settings[sizeSpec.key as keyof typeof settings.settings] : undefined
  const sizeFrom = size?.source.type ?? 'default'
  if (flowRunner && kind.source.type === 'flow' && (sizeFrom === 'flow' || sizeFrom === 'default')) return {}

  const sizeValue = typeof size?.value === 'number' ? size.value : undefined
  const runner = createTaskRunner(
    String(kind.value),
    sizeSpec?.appliesTo === 'concurrent' ? { maxConcurrency: sizeValue } : { maxWorkers: sizeValue },
    formatSource(kind.source),
  )
  const byFlag = kind.source.type === 'flag' || size?.source.type === 'flag'
  return flowRunner || byFlag ? { taskRunner: runner } : { defaultTaskRunner: runner }
}
