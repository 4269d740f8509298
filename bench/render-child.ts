/**
 * Child of render.bench.ts, run inside a pty (`script`): runs one flow with the live view or with
 * no view and writes its wall time (ms) to the file named by PTR_BENCH_OUT.
 */
import { writeFileSync } from 'node:fs'
import { ConcurrentTaskRunner, flow, task } from '../src/index.ts'
import { runEvents } from '../src/engine/events.ts'
import { LiveRenderer } from '../src/render/live.ts'
import { RunRecorder } from '../src/render/recorder.ts'

const [mode, scenario] = process.argv.slice(2) as ['live' | 'none', 'sleep' | 'noop']
export const sleep5 = task({ name: 'sleep5' }, (i: number) => new Promise<number>((resolve) => setTimeout(() => resolve(i), 5)))
export const noop = task({ name: 'noop' }, async (i: number) => i)

const bench = flow({ name: 'render_bench', taskRunner: new ConcurrentTaskRunner(scenario === 'sleep' ? { maxConcurrency: 8 } : {}) }, async () => {
  const items = Array.from({ length: scenario === 'sleep' ? 2_000 : 100_000 }, (_, i) => i)
  await (scenario === 'sleep' ? sleep5 : noop).map(items).result()
})

const recorder = new RunRecorder()
const renderer = mode === 'live' ? new LiveRenderer({ color: true }) : undefined
const offs = [runEvents.on(recorder.onEvent)]
if (renderer) offs.push(runEvents.on(renderer.onEvent))
const start = performance.now()
await renderer?.start()
const { state } = await bench.run()
await renderer?.end(recorder, state)
const ms = performance.now() - start
offs.forEach((off) => off())
if (state.type !== 'Completed') throw new Error(`bench flow ended ${state.name}`)
writeFileSync(process.env.PTR_BENCH_OUT!, String(ms))
