// The runner kinds' names alone (kinds.ts builds them): the CLI lists them in its help without
// loading every runner.

/** The runner kinds `--runner` accepts. */
export const RUNNER_KINDS = ['sequential', 'concurrent', 'thread', 'process', 'prefect'] as const
export type RunnerKind = (typeof RUNNER_KINDS)[number]
/** The runner flows get when nothing (flag, flow code, environment, config file) names one. */
export const DEFAULT_RUNNER_KIND: RunnerKind = 'thread'
