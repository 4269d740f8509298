/**
 * What happens when things fail:
 * - `flaky_fetch` fails twice, then its retries get it through;
 * - `parse` throws, so `store`, which needs its value, never runs (NotReady);
 * - `report` gets the failure handed in through allowFailure() and carries on.
 *
 * Handing the failure to `report` counts as handling it, so the flow completes (exit 0).
 * With `--param strict=true` nothing handles it, and the flow fails (exit 1).
 *   ptr run flows/failures.ts
 */
import { allowFailure, flow, getRunContext, task } from 'ptr'

export const flakyFetch = task({ name: 'flaky_fetch', retries: 3, retryDelaySeconds: [0.1, 0.2] }, () => {
  const { attempt } = getRunContext().taskRun!
  if (attempt < 3) throw new Error(`connection reset (attempt ${attempt})`)
  return '{"rows": 3'
})

export const parse = task({ name: 'parse' }, (text: string): { rows: number } => JSON.parse(text))

export const store = task({ name: 'store' }, (data: { rows: number }) => `stored ${data.rows} rows`)

export const report = task({ name: 'report' }, (outcome: { rows: number } | Error) =>
  outcome instanceof Error ? `parse failed: ${outcome.message}` : `parsed ${outcome.rows} rows`,
)

export default flow({ name: 'failures' }, async ({ strict = false }: { strict?: boolean }) => {
  const text = flakyFetch.submit()
  const parsed = parse.submit(text)
  const stored = store.submit(parsed)
  if (!strict) console.log(await report(allowFailure(parsed)))
  await stored.wait()
  return `store ended ${stored.state.name}`
})
