import path from 'node:path'
import { PoolTaskRunner } from '../runners/pool-runner.ts'
import { ProcessPoolTaskRunner } from '../runners/process-pool.ts'
import { ThreadPoolTaskRunner } from '../runners/thread-pool.ts'
import { startBundling } from './bundle-flow.ts'
import { startupMark } from '../runners/startup-trace.ts'
import { forgetInheritedBundle } from '../runners/bundles.ts'

/**
 * `ptr run`, before it loads the modules that run a flow: starts bundling the flow file (esbuild
 * works in its own process meanwhile) and the pool workers the flags ask for, so both overlap
 * the rest of the start-up. Best effort: what goes wrong here is found and said later.
 */
export function startEarly(file: string, flags: { runner?: string | undefined; maxWorkers?: string | undefined }, cwd = process.cwd()): void {
  startupMark('run: early start (bundle, workers)')
  forgetInheritedBundle()
  startBundling(path.resolve(cwd, file))
  startWorkersEarly(flags)
}

/**
 * `ptr run --runner thread|process`: the flag outranks everything else, so the pool's workers can
 * start now, while the flow file is bundled and imported, and the flow run's runner takes them
 * (see PoolTaskRunner.startWorkersEarly). As many as `--max-workers` says, else one: the size may
 * still come from the environment, a config file or the flow's code, and the rest start on demand.
 * A flag with a bad value starts nothing (the settings say what is wrong).
 */
function startWorkersEarly(flags: { runner?: string | undefined; maxWorkers?: string | undefined }): void {
  if (flags.runner !== 'thread' && flags.runner !== 'process') return
  const size = flags.maxWorkers === undefined ? 1 : Number(flags.maxWorkers)
  if (!Number.isInteger(size) || size < 1) return
  const runner = flags.runner === 'thread' ? new ThreadPoolTaskRunner({ maxWorkers: size }) : new ProcessPoolTaskRunner({ maxWorkers: size })
  runner.startWorkersEarly()
}

/** The workers started early import the run's bundle now, while the main process resolves settings and opens the history. */
export const loadBundleInEarlyWorkers = (): void => PoolTaskRunner.loadBundleInEarlyWorkers()

/** Ends the workers started early that no runner took (the flow ran elsewhere, or never ran). */
export const stopEarlyWorkers = (): Promise<void> => PoolTaskRunner.stopEarlyWorkers()
