/**
 * Benchmark harness: each scenario measures ptr and its raw peer in the same run, alternating
 * them, and reports the median of each with their ratio. Targets are printed next to the result;
 * they are checked here, by benchmarks, never by timed unit tests.
 */
export interface Contender {
  label: string
  /** Returns one measurement in the scenario's unit. */
  measure: () => Promise<number>
}

export interface Scenario {
  name: string
  unit: string
  /** Whether a lower value (time, memory) or a higher one (throughput) is better. */
  better: 'lower' | 'higher'
  ours: Contender
  peer?: Contender
  /** The target, e.g. `≤ 15 µs/run` or `≥ 0.8× peer`; `met` tells whether the median meets it. */
  target?: { text: string; met: (ours: number, peer: number | undefined) => boolean }
  /** Measurements per contender (the median is reported). @default 5 */
  repeats?: number
}

export interface ScenarioResult {
  name: string
  unit: string
  ours: number
  peer: number | undefined
  ratio: number | undefined
  target: string | undefined
  met: boolean | undefined
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

export async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const repeats = scenario.repeats ?? 5
  const ours: number[] = []
  const peer: number[] = []
  // Warm both up once, then alternate so machine noise hits both alike.
  await scenario.ours.measure()
  if (scenario.peer) await scenario.peer.measure()
  for (let i = 0; i < repeats; i++) {
    ours.push(await scenario.ours.measure())
    if (scenario.peer) peer.push(await scenario.peer.measure())
  }
  const o = median(ours)
  const p = scenario.peer ? median(peer) : undefined
  return {
    name: scenario.name,
    unit: scenario.unit,
    ours: o,
    peer: p,
    ratio: p === undefined ? undefined : o / p,
    target: scenario.target?.text,
    met: scenario.target?.met(o, p),
  }
}

const fmt = (n: number | undefined) => (n === undefined ? '—' : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))

export function formatResult(r: ScenarioResult, scenario: Scenario): string {
  const peer = scenario.peer ? `${scenario.peer.label} ${fmt(r.peer)} ${r.unit}` : 'no peer'
  const ratio = r.ratio === undefined ? '' : `  ratio ${r.ratio.toFixed(2)}×`
  const target = r.target ? `  target ${r.target}: ${r.met ? 'met' : 'MISSED'}` : ''
  return `${r.name}\n  ${scenario.ours.label} ${fmt(r.ours)} ${r.unit}  |  ${peer}${ratio}${target}`
}

/** Wall time of `fn` in milliseconds. */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e6
}
