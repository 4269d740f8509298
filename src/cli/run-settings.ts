import type { AnyFlow } from '../engine/flow.ts'
import { resolveSettings } from '../settings/resolve.ts'
import type { ResolvedSettings } from '../settings/resolve.ts'
import type { RunnerForRun } from '../settings/runner.ts'
import { flowRunnerInfo, retryDefaultsFor, runnerForRun } from '../settings/runner.ts'
import type { RetryDefaults } from '../engine/retry.ts'

export interface RunSettingsFlags {
  runner?: string | undefined
  config?: string | undefined
  maxWorkers?: string | undefined
  maxConcurrency?: string | undefined
  output?: string | undefined
  logLevel?: string | undefined
  color?: string | undefined
  queue?: string | undefined
}

/**
 * `ptr run`'s runner from the settings: flag > the flow's code > environment > config file >
 * default, for the kind and then for the size of that kind (see `runnerForRun`). Prints hints
 * (a PREFECT_* variable that looks like a typo) to stderr.
 */
export async function runnerSettingsForRun(
  flow: AnyFlow,
  flags: RunSettingsFlags,
  cwd = process.cwd(),
  env = process.env,
): Promise<RunnerForRun & { settings: ResolvedSettings; retryDefaults: RetryDefaults }> {
  const flowRunner = flowRunnerInfo(flow)
  const settings = await resolveSettings({
    cwd,
    env,
    configPath: flags.config,
    flags: {
      '--runner': flags.runner,
      '--max-workers': flags.maxWorkers,
      '--max-concurrency': flags.maxConcurrency,
      '--output': flags.output,
      '--log-level': flags.logLevel,
      '--color': flags.color,
      '--queue': flags.queue,
    },
    flowRunner,
  })
  for (const hint of settings.hints) process.stderr.write(`ptr: hint: ${hint}\n`)
  return { ...runnerForRun(settings, flowRunner), settings, retryDefaults: retryDefaultsFor(settings) }
}
