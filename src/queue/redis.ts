import type { QueueBackend, QueueBackendOptions } from './backend.ts'
import { UsageError } from '../errors.ts'
import { redactUrl } from './url.ts'

export class RedisQueueBackend {
  static async connect(url: string, _options: QueueBackendOptions & { source?: string } = {}): Promise<QueueBackend> {
    throw new UsageError(`queue URL '${redactUrl(url)}': the Redis backend is not available yet`, 'PTR_BAD_QUEUE_URL')
  }
}
