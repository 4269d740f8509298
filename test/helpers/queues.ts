import assert from 'node:assert/strict'
import path from 'node:path'
import type { QueueBackend, QueueBackendOptions } from '../../src/queue/backend.ts'
import { RedisQueueBackend } from '../../src/queue/redis.ts'
import { SqliteQueueBackend } from '../../src/queue/sqlite.ts'
import { runPtr, tempDir } from './cli.ts'
import { redisSkipReason, startRedis } from './redis.ts'

/** One queue under test: `open()` gives another handle (another connection) on the same queue. */
export interface QueueUnderTest {
  readonly url: string
  open(options?: QueueBackendOptions): Promise<QueueBackend>
  cleanup(): Promise<void>
}

export interface QueueBackendFactory {
  readonly kind: string
  /** Why the backend cannot be tested here, if it cannot (the suite then skips with this message). */
  readonly skip?: () => string | undefined
  create(): Promise<QueueUnderTest>
}

/** Every backend the queue contract suite checks. The Redis backend joins this list. */
export const QUEUES_UNDER_TEST: readonly QueueBackendFactory[] = [
  {
    kind: 'sqlite',
    async create() {
      const { dir, cleanup } = tempDir('ptr-queue-')
      const file = path.join(dir, 'queue.db')
      const opened: QueueBackend[] = []
      return {
        url: `sqlite:${file}`,
        async open(options) {
          const backend = new SqliteQueueBackend(file, options)
          opened.push(backend)
          return backend
        },
        async cleanup() {
          await Promise.all(opened.map((b) => b.close()))
          cleanup()
        },
      }
    },
  },
  {
    kind: 'redis',
    skip: redisSkipReason,
    async create() {
      const server = await startRedis()
      const opened: QueueBackend[] = []
      return {
        url: server.url,
        async open(options) {
          const backend = await RedisQueueBackend.connect(server.url, options)
          opened.push(backend)
          return backend
        },
        async cleanup() {
          await Promise.all(opened.map((b) => b.close()))
          await server.stop()
        },
      }
    },
  },
]

/**
 * `ptr run test/fixtures/queue-cancel-flow.ts --runner prefect` with no worker, sent SIGINT once
 * its 3 runs are on `queue`: checks that ptr reports them Cancelled and that the queue agrees.
 */
export async function interruptQueuedFlow(queue: QueueBackend, env: Record<string, string>): Promise<void> {
  const result = await runPtr(['run', 'test/fixtures/queue-cancel-flow.ts', '--runner', 'prefect'], {
    env,
    onSpawn: (child) => {
      void (async () => {
        while ((await queue.list({ task: 'q_work' })).length < 3) await new Promise((resolve) => setTimeout(resolve, 20))
        child.kill('SIGINT')
      })()
    },
  })
  assert.equal(result.code, 130, `${result.stdout}\n${result.stderr}`)
  assert.match(result.stdout, /3 task runs: 3 cancelled/)
  const runs = await queue.list({ task: 'q_work' })
  assert.deepEqual(runs.map((r) => r.state), ['Cancelled', 'Cancelled', 'Cancelled'])
}
