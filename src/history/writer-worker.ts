/**
 * The history's writer thread: applies the batches the recorder posts (writer-protocol.ts) to the
 * history file through a HistoryWriter on its own connection, and says in the shared state which
 * batch it finished, so the recorder's close() can wait for it without an event loop turn. The
 * first failed write is posted on the error port; the writer then ignores what comes.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { HistoryWriter } from './writer.ts'
import type { WriteBatch, WriterData } from './writer-protocol.ts'
import { APPLIED, FAILED, PROGRESS } from './writer-protocol.ts'

const { file, state, errors, maxLogs } = workerData as WriterData
let writer: HistoryWriter | undefined
let failed = false

const done = (seq: number) => {
  Atomics.store(state, APPLIED, seq)
  Atomics.notify(state, APPLIED)
}

const fail = (error: unknown, seq: number) => {
  failed = true
  const message = error instanceof Error ? error.message : String(error)
  errors.postMessage(message)
  Atomics.store(state, FAILED, 1)
  done(seq)
  writer?.close()
  writer = undefined
}

try {
  writer = new HistoryWriter(file, { maxLogs })
  writer.onTransaction = () => {
    Atomics.add(state, PROGRESS, 1)
    // Waiters wait on APPLIED: wake them to see the progress.
    Atomics.notify(state, APPLIED)
  }
} catch (error) {
  fail(error, 0)
}

parentPort!.on('message', (batch: WriteBatch) => {
  if (failed) return done(batch.seq)
  try {
    writer!.apply(batch)
  } catch (error) {
    return fail(error, batch.seq)
  }
  if (batch.last) {
    writer!.close()
    writer = undefined
    parentPort!.close()
    errors.close()
  }
  done(batch.seq)
})
