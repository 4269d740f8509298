// Raw peer of the Redis queue benchmark: one BullMQ Worker at concurrency 10 with a no-op
// processor (what `ptr worker serve --limit 10` does with a no-op task). argv: redis URL, queue name.
const { Worker } = require('bullmq')
const IORedis = require('ioredis')
const connection = new IORedis(process.argv[2], { maxRetriesPerRequest: null })
const worker = new Worker(process.argv[3], async (job) => job.data.i, { connection, concurrency: 10 })
worker.on('ready', () => process.stdout.write('ready\n'))
