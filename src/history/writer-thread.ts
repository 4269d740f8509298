import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads'
import type { MessagePort } from 'node:worker_threads'
import { HistoryWriter } from './writer.ts'
import type { WriteBatch, WriterData } from './writer-protocol.ts'
import { APPLIED, FAILED, PROGRESS, STATE_SLOTS } from './writer-protocol.ts'

// The thread's entry beside this module: writer-worker.js in the built package, writer-worker.ts
// when ptr runs from its sources (see sourcesBundle).
const FROM_SOURCES = import.meta.url.endsWith('.ts')
const SCRIPT = new URL(`./writer-worker${FROM_SOURCES ? '.ts' : '.js'}`, import.meta.url)
let bundled: string | undefined

/**
 * From ptr's sources (its tests and benchmarks), the thread runs writer-worker.ts and the few
 * modules it imports bundled into one CommonJS script (by esbuild, a dependency), once per
 * process: registering tsx in the thread would start a loader thread of its own, which costs more
 * time and memory than the writer. better-sqlite3 stays outside, required from here. esbuild's
 * own binary does it, in a child process (about 10 ms): its JavaScript API's buildSync would keep
 * a worker thread of its own in this process, some 10 MB, for the process's life.
 */
function sourcesBundle(): string {
  if (bundled !== undefined) return bundled
  const require = createRequire(import.meta.url)
  const esbuild = path.join(path.dirname(require.resolve('esbuild/package.json')), 'bin', 'esbuild')
  const script = fileURLToPath(SCRIPT)
  const code = execFileSync(esbuild, [script, '--bundle', '--platform=node', '--format=cjs', '--target=node20', '--external:better-sqlite3', '--log-level=error'], { encoding: 'utf8' })
  bundled = `(function (require) {\n${code}\n})(require('node:module').createRequire(${JSON.stringify(script)}))`
  return bundled
}
/** How long wait() waits for a writer that makes no progress (a write waits up to 10 s for another process's lock). */
const STALL_MS = 20_000
/** Batches posted and not yet written past which post() waits: the writer's queue stays a few MB. */
const MAX_IN_FLIGHT = 12
/**
 * The writer's heap limit (MB). Its live data are a few tens of MB at most (the unsettled runs it
 * holds, the batch at hand; big values reach it as bytes, outside its heap), but V8 lets an old
 * generation fill a share of its limit before its first full collection: with the process's limit
 * (4 GB here) a 100,000-run map left the writer ~85 MB of heap, mostly garbage; with 1 GB, ~50 MB.
 * A writer that still outgrows it (thousands of running tasks, each holding a thousand long log
 * lines) is stopped, and the flow run goes on unrecorded.
 */
export const WRITER_HEAP_MB = 1024

/**
 * The main thread's side of the history's writer thread (writer-worker.ts): posts batches, and
 * knows from the shared state which ones are written and whether writing failed, without waiting
 * for an event loop turn. The thread is unref'd: it never keeps the process alive.
 *
 * The thread starts with the first batch posted before the last, or earlier when warm() is
 * called: a flow run that ends before then (under 250 ms, a few dozen task runs) has its one
 * batch written here, on the caller's thread, which costs a millisecond or two where starting a
 * thread costs some 40 ms.
 */
export class WriterThread {
  readonly #file: string
  readonly #maxLogs: number
  readonly #heapMb: number
  #worker: Worker | undefined
  readonly #state = new Int32Array(new SharedArrayBuffer(STATE_SLOTS * Int32Array.BYTES_PER_ELEMENT))
  #errors: MessagePort | undefined
  #posted = 0
  #error: Error | undefined
  #closed = false
  /** Called once, with the error that stopped the writer (a failed write, a thread that died). */
  onError: ((error: Error) => void) | undefined

  constructor(file: string, maxLogs: number, { heapMb = WRITER_HEAP_MB }: { heapMb?: number } = {}) {
    this.#file = file
    this.#maxLogs = maxLogs
    this.#heapMb = heapMb
    // From the sources, bundle now: the first post should not wait for esbuild.
    if (FROM_SOURCES) sourcesBundle()
  }

  /** Starts the thread ahead of the first batch (see HistoryRecorder's WARM_AT_OPS); once. */
  warm(): void {
    if (this.#worker === undefined && !this.#closed) this.#start()
  }

  #start(): Worker {
    const { port1, port2 } = new MessageChannel()
    this.#errors = port1
    const data: WriterData = { file: this.#file, state: this.#state, errors: port2, maxLogs: this.#maxLogs }
    const worker = new Worker(FROM_SOURCES ? sourcesBundle() : SCRIPT, {
      eval: FROM_SOURCES,
      workerData: data,
      transferList: [port2],
      // What it allocates per batch dies young: a small young generation keeps its memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 8, maxOldGenerationSizeMb: this.#heapMb },
    })
    worker.unref()
    port1.on('message', (message: string) => this.#fail(new Error(message)))
    port1.unref()
    worker.on('error', (error: Error & { code?: string }) => {
      if (error.code !== 'ERR_WORKER_OUT_OF_MEMORY') return this.#fail(error)
      this.#fail(new Error(`the history's writer thread ran out of its ${this.#heapMb} MB of memory (long log lines of many running tasks?); the rest of this run is not recorded`))
    })
    worker.on('exit', (code) => {
      if (!this.#closed) this.#fail(new Error(`the history's writer thread stopped (exit code ${code})`))
    })
    this.#worker = worker
    return worker
  }

  /** The seq the next batch posted gets. */
  get next(): number {
    return this.#posted + 1
  }

  /** The last batch written. */
  get applied(): number {
    return Atomics.load(this.#state, APPLIED)
  }

  /** The error that stopped the writer, if one did (read now, not at the next event loop turn). */
  get failed(): Error | undefined {
    if (this.#error === undefined && Atomics.load(this.#state, FAILED) === 1) {
      const message = this.#errors && receiveMessageOnPort(this.#errors)
      this.#fail(new Error(message === undefined ? 'the run history could not be written' : String(message.message)))
    }
    return this.#error
  }

  /** Posts a batch; returns its seq. */
  post(batch: Omit<WriteBatch, 'seq'>): number {
    const seq = ++this.#posted
    if (batch.last) this.#closed = true
    if (this.#worker === undefined && batch.last) {
      this.#writeHere({ seq, ...batch })
      return seq
    }
    const worker = this.#worker ?? this.#start()
    // A writer that lags (a map of 100,000 no-op runs) must not queue up its whole history.
    if (seq - Atomics.load(this.#state, APPLIED) > MAX_IN_FLIGHT) this.wait(seq - MAX_IN_FLIGHT)
    worker.postMessage({ seq, ...batch } satisfies WriteBatch)
    return seq
  }

  /** The only batch, written on this thread (see the class comment). */
  #writeHere(batch: WriteBatch): void {
    let writer: HistoryWriter | undefined
    try {
      writer = new HistoryWriter(this.#file, { maxLogs: this.#maxLogs })
      writer.apply(batch)
    } catch (error) {
      Atomics.store(this.#state, FAILED, 1)
      this.#fail(error as Error)
    } finally {
      writer?.close()
      Atomics.store(this.#state, APPLIED, batch.seq)
    }
  }

  /** Blocks until batch `seq` is written (or writing failed, or the writer stalled). Returns whether it was written. */
  wait(seq: number): boolean {
    let progress = Atomics.load(this.#state, PROGRESS)
    let since = Date.now()
    for (;;) {
      const applied = Atomics.load(this.#state, APPLIED)
      if (applied >= seq) return this.failed === undefined
      // Woken by each batch and each transaction (PROGRESS), or after a while to look again.
      Atomics.wait(this.#state, APPLIED, applied, 200)
      const now = Atomics.load(this.#state, PROGRESS)
      if (now !== progress) {
        progress = now
        since = Date.now()
      } else if (Date.now() - since > STALL_MS) {
        this.#fail(new Error(`the history's writer thread wrote nothing for ${STALL_MS / 1000} s; the last changes may be missing`))
        return false
      }
    }
  }

  /** Stops the thread without waiting (after the last batch, or when writing failed). */
  stop(): void {
    this.#closed = true
    this.#errors?.close()
    void this.#worker?.terminate()
  }

  #fail(error: Error): void {
    if (this.#error) return
    this.#error = error
    this.onError?.(error)
  }
}
