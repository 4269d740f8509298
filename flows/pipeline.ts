/**
 * Resuming a flow run: extract, transform (a map), load. With PIPELINE_FAIL=1 the load fails, and
 * the run exits 1; `--resume` then runs only the load: extract and transform show as Cached.
 *   PIPELINE_FAIL=1 ptr run flows/pipeline.ts --param day=2026-11-30
 *   ptr run flows/pipeline.ts --resume
 */
import { flow, task } from 'ptr'

export const extract = task({ name: 'extract' }, (day: string) => Array.from({ length: 5 }, (_, i) => `${day}#${i + 1}`))

export const transform = task({ name: 'transform' }, (record: string) => record.toUpperCase())

export const load = task({ name: 'load' }, (records: string[]) => {
  if (process.env.PIPELINE_FAIL) throw new Error('the warehouse is not reachable (PIPELINE_FAIL is set); unset it and run again with --resume')
  return `loaded ${records.length} records`
})

export default flow({ name: 'pipeline' }, async ({ day = '2026-11-30' }: { day?: string }) => {
  const records = await extract(day)
  const transformed = await transform.map(records).result()
  return await load(transformed)
})
