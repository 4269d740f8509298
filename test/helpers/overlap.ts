/**
 * The most intervals that overlapped in time, from [start, end] pairs (epoch ms). Ends sort before
 * starts at the same millisecond: a slot freed and taken again is not an overlap.
 */
export function maxOverlap(intervals: readonly { start: number; end: number }[]): number {
  const events = intervals.flatMap(({ start, end }) => [[start, 1] as const, [end, -1] as const])
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  let now = 0
  let max = 0
  for (const [, delta] of events) max = Math.max(max, (now += delta))
  return max
}
