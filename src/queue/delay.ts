import { provide } from '../engine/providers.ts'
import { collectUpstreams, substituteResults } from '../engine/resolve.ts'
import type { Upstream } from '../engine/resolve.ts'
import type { AnyTask } from '../engine/task-types.ts'
import { newRunId } from '../engine/task-run.ts'
import { UpstreamTaskRunError } from '../errors.ts'
import { encodeValue } from './codec.ts'
import { PrefectDistributedFuture } from './distributed-future.ts'
import { defaultQueue } from './open.ts'

/**
 * `t.delay(...args)`: puts one run of `task` on the default queue for a task worker and returns its
 * future at once. Works inside or outside a flow. Futures in the arguments (and `waitFor`) are
 * waited for here, then their values travel; arguments that cannot be stored throw at once.
 */
export function delayRun(task: AnyTask, args: readonly unknown[]): PrefectDistributedFuture {
  const id = newRunId()
  const name = task.runName(args)
  let upstreams: Upstream[] | undefined
  for (const arg of args) if (typeof arg === 'object' && arg !== null) collectUpstreams(arg, (upstreams ??= []))
  if (task.callOptions.waitFor) collectUpstreams(task.callOptions.waitFor, (upstreams ??= []))
  const enqueue = (values: readonly unknown[], bytes = encodeValue(values, `an argument of '${task.name}'`, 'args')) =>
    defaultQueue().then((queue) => queue.enqueue([{ id, task: task.name, name, args: bytes, retries: task.options.retries ?? 0 }]))
  let enqueued: Promise<void>
  if (!upstreams) {
    // Encode now, so an argument that cannot cross throws from delay() itself.
    const bytes = encodeValue(args, `an argument of '${task.name}'`, 'args')
    enqueued = enqueue(args, bytes)
  } else {
    // Check the rest of the arguments now (futures stand in as undefined), so a value that cannot
    // be stored throws from delay() itself, not once the upstreams have ended.
    encodeValue(substituteResults(args), `an argument of '${task.name}'`, 'args')
    const list = upstreams
    enqueued = Promise.all(list.map((u) => u.future.wait())).then(() => {
      const blocked = list.find(({ future, allowFailure }) => !(future.state.type === 'Completed' || (allowFailure && future.state.type === 'Failed')))
      if (blocked) {
        const { state } = blocked.future
        throw new UpstreamTaskRunError(
          `upstream task run ${blocked.future.taskRunId} ended ${state.name}${state.error ? `: ${state.error.message}` : ''}; '${name}' was not queued`,
          blocked.future.taskRunId,
          state.error,
        )
      }
      return enqueue(substituteResults(args) as unknown[])
    })
  }
  enqueued.catch(() => undefined)
  return new PrefectDistributedFuture(id, name, defaultQueue, enqueued)
}

provide({ delay: delayRun })
