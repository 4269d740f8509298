/**
 * The soak benchmark's task: notes each execution's start and end in a file of its worker
 * process (`SOAK_LOG` folder), so the benchmark can count executions and check the limit even
 * for workers it SIGKILLed mid-run.
 */
import { appendFileSync } from 'node:fs'
import path from 'node:path'
import { getRunContext, task } from '../src/index.ts'

const log = process.env.SOAK_LOG ? path.join(process.env.SOAK_LOG, `exec-${process.pid}.log`) : undefined

export const soakStep = task({ name: 'bench_soak_step' }, async (i: number, ms: number) => {
  if (log) appendFileSync(log, `S ${i} ${getRunContext().taskRun?.attempt ?? 0} ${Date.now()}\n`)
  if (ms > 0) await new Promise((r) => setTimeout(r, ms))
  if (log) appendFileSync(log, `E ${i} ${Date.now()}\n`)
  return i
})
