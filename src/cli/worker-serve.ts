import { importFlowFile } from './load-flow.ts'
import { ExitCode, UsageError } from '../errors.ts'
import type { AnyTask } from '../engine/task-types.ts'
import { resolveQueueSettings } from '../settings/queue.ts'
import { setSlotLease } from '../limits/open.ts'
import { TaskWorker, tasksOf } from '../worker/task-worker.ts'

export interface ServeCommandOptions {
  files: readonly string[]
  /** `--config PATH`. */
  config?: string | undefined
  limit: string | undefined
  queue: string | undefined
  statusPort: string | undefined
  statusHost: string | undefined
  grace: string | undefined
  lease: string | undefined
  stdout?: NodeJS.WritableStream
  cwd?: string
  env?: NodeJS.ProcessEnv
}

function parseNumber(flag: string, value: string | undefined, check: (n: number) => boolean, expected: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (value.trim() === '' || !check(n)) throw new UsageError(`${flag} must be ${expected}, got '${value}'`, 'PTR_BAD_OPTION')
  return n
}

/** Lines written in one event-loop turn go out in one write: a busy worker prints thousands a second. */
function lineWriter(out: NodeJS.WritableStream): { line: (text: string) => void; flush: () => void } {
  let buffered = ''
  const flush = () => {
    if (buffered === '') return
    out.write(buffered)
    buffered = ''
  }
  return {
    line: (text) => {
      if (buffered === '') setImmediate(flush)
      buffered += `${text}\n`
    },
    flush,
  }
}

/** `ptr worker serve FILE...`: serves the tasks the files export until SIGTERM or Ctrl-C; returns the exit code. */
export async function serveCommand(options: ServeCommandOptions): Promise<number> {
  // Queue URL, limit and lease come from the settings (flag > env > config file > default).
  const cwd = options.cwd ?? process.cwd()
  const queue = await resolveQueueSettings({
    cwd,
    env: options.env ?? process.env,
    configPath: options.config,
    flags: { '--queue': options.queue, '--limit': options.limit, '--lease': options.lease },
  })
  for (const hint of queue.settings.hints) process.stderr.write(`ptr: hint: ${hint}\n`)
  const limit = Number(queue.settings.settings['worker.limit'].value)
  setSlotLease(Math.round(Number(queue.settings.settings['concurrency.slotLeaseSeconds'].value) * 1000))
  const statusPort = parseNumber('--status-port', options.statusPort, (n) => Number.isInteger(n) && n >= 0 && n < 65536, 'a port number (0 for any free one)')
  const graceSeconds = parseNumber('--grace', options.grace, (n) => n >= 0, 'seconds from 0 and up')
  const tasks: AnyTask[] = []
  for (const file of options.files) {
    const { exports } = await importFlowFile(file)
    const found = tasksOf(exports)
    if (found.length === 0) {
      throw new UsageError(`${file} exports no tasks; export the tasks to serve from it: export const fetchPage = task({ name: 'fetch_page' }, async (url: string) => ...)`, 'PTR_NO_TASKS')
    }
    tasks.push(...found)
  }
  const out = lineWriter(options.stdout ?? process.stdout)
  const worker = new TaskWorker(tasks, {
    limit,
    queue: queue.url,
    queueSource: queue.source,
    leaseSeconds: queue.leaseMs / 1000,
    maxLostLeases: queue.maxLostLeases,
    ...(statusPort === undefined ? {} : { statusPort }),
    ...(options.statusHost === undefined ? {} : { statusHost: options.statusHost }),
    ...(graceSeconds === undefined ? {} : { graceSeconds }),
    log: out.line,
  })

  // A second signal ends the worker at once: in-flight runs are handed back, waiting at most this
  // long for the queue (it may be the thing that is down), and nothing else is waited for.
  const HAND_BACK_MS = 2_000
  const bounded = (stopping: Promise<void>) => {
    let timer: NodeJS.Timeout | undefined
    return Promise.race([stopping.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, HAND_BACK_MS)))]).finally(() => clearTimeout(timer))
  }
  let signalled = 0
  let stopped!: () => void
  const stoppedPromise = new Promise<void>((resolve) => (stopped = resolve))
  const onSignal = (signal: NodeJS.Signals) => {
    signalled++
    if (signalled === 1) {
      process.stderr.write(`ptr: ${signal} received: no new runs; waiting for ${worker.status().inFlight} in flight (press Ctrl-C again to hand them back now)\n`)
      void worker.stop().then(stopped, stopped)
    } else if (signalled === 2) {
      process.stderr.write(`ptr: ${signal} again: handing in-flight runs back to the queue and exiting\n`)
      void bounded(worker.stop({ graceSeconds: 0 })).then(stopped)
    } else {
      stopped()
    }
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    await worker.start()
    const status = worker.statusAddress
    out.line(
      `worker ${worker.id} serving ${worker.tasks.length} task${worker.tasks.length === 1 ? '' : 's'} (${worker.tasks.join(', ')}) from ${worker.queueUrl}, limit ${worker.limit}` +
        (status ? `, status on http://${status.host}:${status.port}/status` : ''),
    )
    // The queue failing for good (its file deleted or read-only) ends the worker with exit 2 and one line.
    const fault = await Promise.race([stoppedPromise.then(() => undefined), worker.failed])
    if (fault) {
      await bounded(worker.stop({ graceSeconds: 0 }))
      throw fault
    }
    const s = worker.status()
    out.line(`worker ${worker.id} stopped: ${s.completed} completed, ${s.failed} failed, ${s.retried} retried`)
    return ExitCode.Completed
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    if (signalled < 2) await worker.stop({ graceSeconds: 0 })
    out.flush()
  }
}
