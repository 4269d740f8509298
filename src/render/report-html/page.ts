/**
 * The HTML report's page: runs in the browser, inlined into the file at build time (esbuild bundles
 * it; see scripts/build.mjs). It reads the run from `<script id="ptr-data">` and draws the flow
 * runs, a timeline (a lane per worker slot, a bar per attempt), the task graph and a table of runs.
 * Plain DOM and SVG, no library: a few hundred elements at any size (bars too narrow to see merge
 * into one, lanes and table rows outside the view are not drawn, large maps fold into one node).
 */
import type { ErrorRecord, PageData, PageLog, PageRun } from './page-data.ts'

declare global {
  interface Window {
    /** Set once the page has drawn: `readyMs` since navigation, and handles for tests. */
    ptrReport?: { readyMs: number; lanes: number; bars: number; nodes: number; select(run: number): void }
  }
}

const data = JSON.parse(document.getElementById('ptr-data')!.textContent!) as PageData
const runs = data.runs
const SVG = 'http://www.w3.org/2000/svg'

// ---------------------------------------------------------------------------------------------
// Small helpers

type Attrs = Record<string, string | number | undefined>
function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.setAttribute(k, String(v))
  for (const child of children) if (child !== null && child !== undefined) node.append(child)
  return node
}
function s(tag: string, attrs: Attrs = {}, text?: string): SVGElement {
  const node = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.setAttribute(k, String(v))
  if (text !== undefined) node.textContent = text
  return node
}
const $ = (id: string) => document.getElementById(id)!

const COLOURS: Record<string, string> = {
  Completed: '#2f9e44',
  Cached: '#69db7c',
  Failed: '#e03131',
  TimedOut: '#c2255c',
  Crashed: '#862e9c',
  Cancelled: '#868e96',
  NotReady: '#f08c00',
  Running: '#1c7ed6',
  Retrying: '#1c7ed6',
  Pending: '#adb5bd',
  Scheduled: '#74c0fc',
  AwaitingRetry: '#ffa94d',
}
const TYPE_COLOURS: Record<string, string> = { Completed: COLOURS.Completed!, Failed: COLOURS.Failed!, Crashed: COLOURS.Crashed!, Cancelled: COLOURS.Cancelled!, Running: COLOURS.Running!, Pending: COLOURS.Pending!, Scheduled: COLOURS.Scheduled! }
const stateName = (i: number) => data.states[i]?.[0] ?? '?'
const stateType = (i: number) => data.states[i]?.[1] ?? '?'
const colourOf = (i: number) => COLOURS[stateName(i)] ?? TYPE_COLOURS[stateType(i)] ?? '#adb5bd'
/** Worse first: a cluster of bars takes the colour of its worst attempt. */
const SEVERITY: Record<string, number> = { Crashed: 6, Failed: 5, TimedOut: 5, Cancelled: 3, NotReady: 2, Running: 1 }
const severity = (i: number) => SEVERITY[stateName(i)] ?? SEVERITY[stateType(i)] ?? 0

function duration(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)} ms`
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
  const m = Math.floor(ms / 60_000)
  return `${m} min ${Math.round((ms - m * 60_000) / 1000)} s`
}
const clock = (rel: number) => new Date(data.t0 + rel).toISOString().slice(11, 23)
const when = (rel: number) => `+${duration(rel)} (${clock(rel)})`
const badge = (state: number) => h('span', { class: 'badge', style: `background:${colourOf(state)}` }, stateName(state))
const runName = (i: number) => runs[i]![1]
const taskName = (run: PageRun) => data.tasks[run[2]] ?? '?'
const flowLabel = (f: number) => (f < 0 ? '-' : (data.flows[f]?.name ?? '?'))

const tip = $('tip')
function showTip(event: MouseEvent, lines: string[]): void {
  tip.textContent = ''
  for (const [i, line] of lines.entries()) tip.append(i === 0 ? h('b', {}, line) : h('div', {}, line))
  tip.style.display = 'block'
  const x = Math.min(event.clientX + 14, window.innerWidth - tip.offsetWidth - 8)
  const y = event.clientY + 16 + tip.offsetHeight > window.innerHeight ? event.clientY - tip.offsetHeight - 10 : event.clientY + 16
  tip.style.left = `${x}px`
  tip.style.top = `${y}px`
}
const hideTip = () => (tip.style.display = 'none')

// ---------------------------------------------------------------------------------------------
// Selection: clicking a bar, a node or a row shows that run's details.

let selected = -1
const onSelect: (() => void)[] = []
function select(run: number): void {
  selected = run
  showRunDetails(run)
  for (const redraw of onSelect) redraw()
}

// ---------------------------------------------------------------------------------------------
// Header: the flow runs (subflows nested), counts by state, wall time.

function drawSummary(): void {
  const root = data.flows[0]
  const head = $('summary')
  if (!root) {
    head.append(h('p', {}, 'This report has no flow run.'))
    return
  }
  head.append(
    h('h1', {}, `${root.flowName} `, h('span', { class: 'muted' }, root.name), ' ', badge(root.state)),
    h(
      'p',
      { class: 'facts' },
      `wall time ${duration(data.wallSeconds * 1000)} · ${runs.length} task run${runs.length === 1 ? '' : 's'} · runner ${root.runner} · started ${new Date(data.t0).toISOString().replace('T', ' ').slice(0, 19)} UTC · ${data.tool}${data.source === 'history' ? ' (from the run history)' : ''}${data.logsOmitted > 0 ? ` · ${data.logsOmitted} log lines not in this page (see the JSON report)` : ''}`,
    ),
  )
  const counts = h('p', { class: 'counts' })
  for (const [name, n] of Object.entries(data.counts).sort((a, b) => b[1] - a[1])) {
    const index = data.states.findIndex(([state]) => state === name)
    const chip = h('button', { class: 'chip', style: `border-color:${index < 0 ? '#adb5bd' : colourOf(index)}`, 'data-state': name }, `${n} ${name}`)
    chip.addEventListener('click', () => setStateFilter(name))
    counts.append(chip)
  }
  head.append(counts)
  const tree = h('ul', { class: 'flows' })
  const children = new Map<number, number[]>()
  data.flows.forEach((f, i) => {
    if (i === 0) return
    const list = children.get(f.parent) ?? []
    list.push(i)
    children.set(f.parent, list)
  })
  const item = (i: number, into: HTMLElement, depth: number): void => {
    const f = data.flows[i]!
    const params = f.parameters !== '{}' && f.parameters !== '[]' && f.parameters !== 'null' ? ` · parameters ${f.parameters}` : ''
    const took = f.start !== null && f.end !== null ? ` · ${duration(f.end - f.start)}` : ''
    const li = h(
      'li',
      { 'data-flow': i },
      h('a', { href: '#', class: 'flow-link' }, `${depth > 0 ? 'subflow ' : 'flow '}${f.flowName}`),
      ' ',
      h('span', { class: 'muted' }, f.name),
      ' ',
      badge(f.state),
      h('span', { class: 'muted' }, ` · ${f.taskRuns} task runs · ${f.runner}${took}${params}`),
      f.error ? h('div', { class: 'err-line' }, `${f.error.name}: ${f.error.message.split('\n')[0]}`) : null,
    )
    li.querySelector('a')!.addEventListener('click', (e) => {
      e.preventDefault()
      showFlowDetails(i)
    })
    into.append(li)
    const kids = children.get(i)
    if (kids) {
      const ul = h('ul', {})
      for (const k of kids) item(k, ul, depth + 1)
      li.append(ul)
    }
  }
  item(0, tree, 0)
  for (const [parent, kids] of children) if (parent < 0 || parent >= data.flows.length) for (const k of kids) item(k, tree, 1)
  head.append(tree)
}

// ---------------------------------------------------------------------------------------------
// Timeline: a lane per (flow run, slot); a bar per attempt.

interface Bar {
  run: number
  attempt: number
  start: number
  end: number
  outcome: number
  retried: boolean
  message: string | undefined
}
interface Lane {
  /** `flow`: the flow run's own span, above the lanes of its slots. */
  kind: 'flow' | 'slot'
  label: string
  flow: number
  bars: Bar[]
  /** The longest bar: how far back to look for bars that reach into the view. */
  longest: number
}

function buildLanes(): Lane[] {
  const byKey = new Map<string, Lane>()
  const loose = new Map<number, Bar[]>()
  runs.forEach((run, i) => {
    run[7].forEach(([start, end, slot, outcome, retried, message], k) => {
      const bar: Bar = { run: i, attempt: k + 1, start, end, outcome, retried: retried === 1, message }
      if (slot < 0) {
        const list = loose.get(run[3]) ?? []
        list.push(bar)
        loose.set(run[3], list)
        return
      }
      const key = `${run[3]}\u0000${slot}`
      let lane = byKey.get(key)
      if (!lane) byKey.set(key, (lane = { kind: 'slot', label: data.slots[slot] ?? '?', flow: run[3], bars: [], longest: 0 }))
      lane.bars.push(bar)
    })
  })
  // Attempts that held no slot (nested in another run's worker) are packed into lanes of their own.
  for (const [flow, bars] of loose) {
    bars.sort((a, b) => a.start - b.start)
    const packed: Lane[] = []
    for (const bar of bars) {
      let lane = packed.find((l) => l.bars[l.bars.length - 1]!.end <= bar.start)
      if (!lane) packed.push((lane = { kind: 'slot', label: `nested ${packed.length + 1}`, flow, bars: [], longest: 0 }))
      lane.bars.push(bar)
    }
    for (const [i, lane] of packed.entries()) byKey.set(`${flow}\u0000nested${i}`, lane)
  }
  // Each flow run gets a lane of its own span, first among its lanes.
  data.flows.forEach((f, i) => byKey.set(`${i}\u0000`, { kind: 'flow', label: `${f.parent >= 0 ? 'subflow' : 'flow'} ${f.flowName}`, flow: i, bars: [], longest: 0 }))
  const natural = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true })
  const rank = (lane: Lane) => (lane.flow < 0 ? 1e9 : lane.flow)
  const lanes = [...byKey.values()].sort((a, b) => rank(a) - rank(b) || (a.kind === b.kind ? natural(a.label, b.label) : a.kind === 'flow' ? -1 : 1))
  for (const lane of lanes) {
    lane.bars.sort((a, b) => a.start - b.start)
    for (const bar of lane.bars) lane.longest = Math.max(lane.longest, bar.end - bar.start)
  }
  return lanes
}

const LANE_H = 22
const LABEL_W = 190
const AXIS_H = 22

function drawTimeline(): { lanes: number; bars: number } {
  const lanes = buildLanes()
  const total = lanes.reduce((n, l) => n + l.bars.length, 0)
  const slotLanes = lanes.filter((l) => l.kind === 'slot').length
  const root = $('timeline')
  root.append(
    h('p', { class: 'muted' }, `${total} attempt${total === 1 ? '' : 's'} on ${slotLanes} lane${slotLanes === 1 ? '' : 's'} (a lane per worker slot of each flow run's task runner, under the flow run's own span). Wheel to zoom, drag to pan, click a bar for its run.`),
  )
  if (total === 0 && data.flows.length === 0) {
    root.append(h('p', {}, 'No attempt ran.'))
    return { lanes: 0, bars: 0 }
  }
  const tools = h('div', { class: 'tools' })
  const button = (label: string, title: string, action: () => void) => {
    const b = h('button', { title }, label)
    b.addEventListener('click', action)
    tools.append(b)
  }
  root.append(tools)
  const axis = s('svg', { class: 'axis', height: AXIS_H }) as SVGSVGElement
  const body = h('div', { class: 'tl-body' })
  const spacer = h('div', { style: `height:${lanes.length * LANE_H}px` })
  const plot = s('svg', { class: 'tl-plot' }) as SVGSVGElement
  body.append(spacer, plot)
  body.style.height = `${Math.min(lanes.length * LANE_H + 2, 440)}px`
  root.append(axis, body)

  const pad = Math.max(data.span * 0.01, 1)
  let view0 = -pad
  let view1 = data.span + pad
  const width = () => Math.max(200, body.clientWidth - LABEL_W - 16)
  const x = (t: number) => LABEL_W + ((t - view0) / (view1 - view0)) * width()
  const timeAt = (px: number) => view0 + ((px - LABEL_W) / width()) * (view1 - view0)
  let drawn = 0
  let frame = 0
  const redrawSoon = () => (frame ||= requestAnimationFrame(draw))

  function draw(): void {
    frame = 0
    const w = width()
    const full = LABEL_W + w
    // Axis: about one tick per 100 px, at a round step.
    axis.setAttribute('width', String(full))
    axis.textContent = ''
    const raw = ((view1 - view0) / w) * 100
    const p = 10 ** Math.floor(Math.log10(raw))
    const step = [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw) ?? raw
    for (let t = Math.ceil(view0 / step) * step; t <= view1; t += step) {
      axis.append(s('line', { x1: x(t), x2: x(t), y1: AXIS_H - 6, y2: AXIS_H, class: 'tick' }))
      axis.append(s('text', { x: x(t) + 2, y: AXIS_H - 8, class: 'tick-label' }, duration(t)))
    }
    // Only the lanes in view, and in each only bars wide enough to see; narrower ones merge.
    const top = body.scrollTop
    const height = body.clientHeight
    const first = Math.max(0, Math.floor(top / LANE_H))
    const last = Math.min(lanes.length - 1, Math.ceil((top + height) / LANE_H))
    plot.setAttribute('width', String(full))
    plot.setAttribute('height', String((last - first + 1) * LANE_H))
    plot.style.top = `${first * LANE_H}px`
    plot.textContent = ''
    drawn = 0
    for (let li = first; li <= last; li++) {
      const lane = lanes[li]!
      const y = (li - first) * LANE_H
      const g = s('g', { class: 'lane', 'data-lane': li, 'data-label': lane.label, 'data-flow': lane.flow, 'data-kind': lane.kind })
      if (li % 2 === 1) g.append(s('rect', { x: 0, y, width: full, height: LANE_H, class: 'stripe' }))
      if (lane.kind === 'flow') {
        const f = data.flows[lane.flow]!
        g.append(s('text', { x: 6, y: y + 15, class: 'lane-label flow-label' }, lane.label))
        if (f.start !== null) {
          const x0 = x(f.start)
          g.append(s('rect', { x: x0, y: y + 7, width: Math.max(2, x(f.end ?? data.span) - x0), height: LANE_H - 14, rx: 3, fill: colourOf(f.state), class: 'flow-bar', 'data-flow': lane.flow }))
        }
        plot.append(g)
        continue
      }
      const flowName = lane.flow >= 0 && data.flows.length > 1 ? `${data.flows[lane.flow]!.flowName} › ` : ''
      g.append(s('text', { x: 6, y: y + 15, class: 'lane-label' }, `${flowName}${lane.label}`))
      const bars = lane.bars
      // First bar that may reach into the view (bars are sorted by start).
      let lo = 0
      let hi = bars.length
      const from = view0 - lane.longest
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (bars[mid]!.start < from) lo = mid + 1
        else hi = mid
      }
      let cluster: { x0: number; x1: number; n: number; worst: Bar; first: Bar; last: Bar } | undefined
      const flush = () => {
        if (!cluster) return
        if (cluster.n === 1) drawBar(g, cluster.first, y)
        else {
          const r = s('rect', { x: cluster.x0, y: y + 4, width: Math.max(2, cluster.x1 - cluster.x0), height: LANE_H - 8, fill: colourOf(cluster.worst.outcome), class: 'cluster', 'data-count': cluster.n, 'data-from': cluster.first.start, 'data-to': cluster.last.end })
          g.append(r)
          drawn++
        }
        cluster = undefined
      }
      for (let i = lo; i < bars.length; i++) {
        const bar = bars[i]!
        if (bar.start > view1) break
        if (bar.end < view0) continue
        const x0 = x(bar.start)
        const x1 = x(bar.end)
        if (x1 - x0 >= 3) {
          flush()
          drawBar(g, bar, y)
          continue
        }
        if (cluster && x0 <= cluster.x1 + 1) {
          cluster.x1 = Math.max(cluster.x1, x1)
          cluster.n++
          cluster.last = bar
          if (severity(bar.outcome) > severity(cluster.worst.outcome)) cluster.worst = bar
        } else {
          flush()
          cluster = { x0, x1: Math.max(x1, x0 + 2), n: 1, worst: bar, first: bar, last: bar }
        }
      }
      flush()
      plot.append(g)
    }
  }
  function drawBar(g: SVGElement, bar: Bar, y: number): void {
    const x0 = x(bar.start)
    const r = s('rect', {
      x: x0,
      y: y + 3,
      width: Math.max(2, x(bar.end) - x0),
      height: LANE_H - 6,
      rx: 2,
      fill: colourOf(bar.outcome),
      class: `bar${bar.retried ? ' retried' : ''}${bar.run === selected ? ' sel' : ''}`,
      'data-run': bar.run,
      'data-attempt': bar.attempt,
      'data-state': stateName(bar.outcome),
    })
    g.append(r)
    drawn++
  }
  const barOf = (target: EventTarget | null): Bar | undefined => {
    const el = target as SVGElement | null
    const run = el?.getAttribute?.('data-run')
    const attempt = el?.getAttribute?.('data-attempt')
    if (run === null || run === undefined || attempt === null || attempt === undefined) return undefined
    const r = runs[Number(run)]!
    const a = r[7][Number(attempt) - 1]!
    return { run: Number(run), attempt: Number(attempt), start: a[0], end: a[1], outcome: a[3], retried: a[4] === 1, message: a[5] }
  }
  plot.addEventListener('mousemove', (event) => {
    const target = event.target as SVGElement
    const bar = barOf(target)
    if (bar) {
      const run = runs[bar.run]!
      const detail = data.details[bar.run]
      const lines = [
        run[1],
        `attempt ${bar.attempt} of ${run[7].length}: ${stateName(bar.outcome)}${bar.retried ? ' (retried)' : ''}`,
        `${clock(bar.start)} → ${clock(bar.end)} (${duration(bar.end - bar.start)})`,
        `${taskName(run)} in ${flowLabel(run[3])}`,
      ]
      const error = bar.message ?? (bar.attempt === run[7].length ? detail?.error?.message : undefined)
      if (error && stateName(bar.outcome) !== 'Completed') lines.push(error.split('\n')[0]!.slice(0, 300))
      showTip(event, lines)
    } else if (target.classList?.contains('flow-bar')) {
      const f = data.flows[Number(target.getAttribute('data-flow'))]!
      showTip(event, [`flow run ${f.name}`, `${stateName(f.state)}, ${f.taskRuns} task runs on ${f.runner}`, f.start === null ? '' : `${clock(f.start)} → ${f.end === null ? '…' : clock(f.end)}${f.end === null ? '' : ` (${duration(f.end - f.start)})`}`])
    } else if (target.classList?.contains('cluster')) {
      const from = Number(target.getAttribute('data-from'))
      const to = Number(target.getAttribute('data-to'))
      showTip(event, [`${target.getAttribute('data-count')} attempts`, `${clock(from)} → ${clock(to)}`, 'zoom in to see each one'])
    } else hideTip()
  })
  plot.addEventListener('mouseleave', hideTip)
  plot.addEventListener('click', (event) => {
    const bar = barOf(event.target)
    if (bar) return select(bar.run)
    const flow = (event.target as SVGElement).getAttribute?.('data-flow')
    if ((event.target as SVGElement).classList?.contains('flow-bar') && flow !== null) showFlowDetails(Number(flow))
  })
  const zoom = (factor: number, at: number) => {
    const span = Math.min(Math.max((view1 - view0) * factor, 0.05), data.span * 4 + 10)
    const ratio = (at - view0) / (view1 - view0)
    view0 = at - ratio * span
    view1 = view0 + span
    redrawSoon()
  }
  body.addEventListener(
    'wheel',
    (event) => {
      if (event.shiftKey || Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
        const shift = ((event.deltaX || event.deltaY) / width()) * (view1 - view0)
        view0 += shift
        view1 += shift
        redrawSoon()
      } else zoom(Math.exp(event.deltaY * 0.002), timeAt(event.offsetX + (event.target === body ? 0 : 0)))
      event.preventDefault()
    },
    { passive: false },
  )
  let drag: { x: number; v0: number; v1: number } | undefined
  body.addEventListener('pointerdown', (event) => {
    drag = { x: event.clientX, v0: view0, v1: view1 }
  })
  window.addEventListener('pointermove', (event) => {
    if (!drag || (event.buttons & 1) === 0) return (drag = undefined)
    const shift = ((event.clientX - drag.x) / width()) * (drag.v1 - drag.v0)
    if (Math.abs(event.clientX - drag.x) < 3) return
    view0 = drag.v0 - shift
    view1 = drag.v1 - shift
    hideTip()
    redrawSoon()
  })
  window.addEventListener('pointerup', () => (drag = undefined))
  body.addEventListener('scroll', redrawSoon)
  window.addEventListener('resize', redrawSoon)
  const middle = () => (view0 + view1) / 2
  button('+', 'zoom in', () => zoom(0.5, middle()))
  button('−', 'zoom out', () => zoom(2, middle()))
  button('whole run', 'show the whole run', () => {
    view0 = -pad
    view1 = data.span + pad
    redrawSoon()
  })
  onSelect.push(redrawSoon)
  draw()
  return { lanes: slotLanes, bars: drawn }
}

// ---------------------------------------------------------------------------------------------
// Task graph: task runs as nodes, upstream edges; a large map (or many runs of a task) folds into one node.

/** A map with more runs than this folds into one node. */
const FOLD_MAP = 8
/** Past this many nodes in one flow run, its runs fold into one node per task. */
const MAX_NODES = 300
const NODE_W = 170
const NODE_H = 40
const GAP_X = 60
const GAP_Y = 14

interface GraphNode {
  key: string
  flow: number
  runs: number[]
  label: string
  task: string
  layer: number
  order: number
  x: number
  y: number
  ups: Set<GraphNode>
}

function drawGraph(): number {
  const root = $('graph')
  const keyOf = new Array<string>(runs.length)
  const flowsOf = new Map<number, number[]>()
  runs.forEach((run, i) => {
    const list = flowsOf.get(run[3]) ?? []
    list.push(i)
    flowsOf.set(run[3], list)
  })
  const nodes = new Map<string, GraphNode>()
  const node = (key: string, flow: number, label: string, task: string): GraphNode => {
    let n = nodes.get(key)
    if (!n) nodes.set(key, (n = { key, flow, runs: [], label, task, layer: 0, order: 0, x: 0, y: 0, ups: new Set() }))
    return n
  }
  for (const [flow, members] of flowsOf) {
    const folded = (i: number) => {
      const map = runs[i]![4]
      return map >= 0 && data.maps[map]![2] > FOLD_MAP
    }
    let count = 0
    const seenMaps = new Set<number>()
    for (const i of members) {
      if (!folded(i)) count++
      else if (!seenMaps.has(runs[i]![4])) {
        seenMaps.add(runs[i]![4])
        count++
      }
    }
    const byTask = count > MAX_NODES
    for (const i of members) {
      const run = runs[i]!
      const task = taskName(run)
      let key: string
      let label: string
      if (byTask) {
        key = `t${flow}:${run[2]}`
        label = task
      } else if (folded(i)) {
        key = `m${run[4]}`
        label = `${task} ×${data.maps[run[4]]![2]}`
      } else {
        key = `r${i}`
        label = run[1]
      }
      keyOf[i] = key
      node(key, flow, label, task).runs.push(i)
    }
  }
  for (const n of nodes.values()) if (n.runs.length > 1 && n.key.startsWith('t')) n.label = `${n.task} ×${n.runs.length}`
  const edges = new Map<string, { from: GraphNode; to: GraphNode; n: number }>()
  runs.forEach((run, i) => {
    const to = nodes.get(keyOf[i]!)!
    for (const u of run[8]) {
      const from = nodes.get(keyOf[u]!)!
      if (from === to) continue
      const key = `${from.key}>${to.key}`
      const edge = edges.get(key)
      if (edge) edge.n++
      else edges.set(key, { from, to, n: 1 })
      if (from.flow === to.flow) to.ups.add(from)
    }
  })
  root.append(
    h('p', { class: 'muted' }, `${nodes.size} node${nodes.size === 1 ? '' : 's'}, ${edges.size} edge${edges.size === 1 ? '' : 's'}: an edge for each future passed as an argument or in waitFor. A map of more than ${FOLD_MAP} runs is one node; click a node for its runs.`),
  )
  if (nodes.size === 0) {
    root.append(h('p', {}, 'No task run.'))
    return 0
  }
  // Layers (longest path from a source), per flow run; then a few barycentre sweeps to uncross edges.
  const groups: { flow: number; nodes: GraphNode[]; width: number; height: number; x: number; y: number; depth: number }[] = []
  const flowOrder = [...flowsOf.keys()].sort((a, b) => (a < 0 ? 1e9 : a) - (b < 0 ? 1e9 : b))
  for (const flow of flowOrder) {
    const members = [...nodes.values()].filter((n) => n.flow === flow)
    const memo = new Map<GraphNode, number>()
    const layerOf = (n: GraphNode, stack: Set<GraphNode>): number => {
      const known = memo.get(n)
      if (known !== undefined) return known
      stack.add(n)
      let layer = 0
      for (const u of n.ups) if (!stack.has(u)) layer = Math.max(layer, layerOf(u, stack) + 1)
      stack.delete(n)
      memo.set(n, layer)
      return layer
    }
    // Iterative enough: ups chains are bounded by MAX_NODES per flow.
    for (const n of members) n.layer = layerOf(n, new Set())
    const layers: GraphNode[][] = []
    for (const n of members) (layers[n.layer] ??= []).push(n)
    for (const layer of layers) layer?.forEach((n, i) => (n.order = i))
    const downs = new Map<GraphNode, GraphNode[]>()
    for (const n of members) for (const u of n.ups) downs.set(u, [...(downs.get(u) ?? []), n])
    for (let sweep = 0; sweep < 4; sweep++) {
      const pass = sweep % 2 === 0 ? layers.slice(1) : layers.slice(0, -1).reverse()
      for (const layer of pass) {
        if (!layer) continue
        const centre = (n: GraphNode) => {
          const near = sweep % 2 === 0 ? [...n.ups] : (downs.get(n) ?? [])
          return near.length === 0 ? n.order : near.reduce((sum, m) => sum + m.order, 0) / near.length
        }
        const keyed = layer.map((n) => [centre(n), n] as const).sort((a, b) => a[0] - b[0])
        keyed.forEach(([, n], i) => (n.order = i))
        layer.sort((a, b) => a.order - b.order)
      }
    }
    let height = 0
    for (const layer of layers) if (layer) height = Math.max(height, layer.length)
    for (const n of members) {
      n.x = n.layer * (NODE_W + GAP_X)
      n.y = n.order * (NODE_H + GAP_Y)
    }
    let depth = 0
    for (let f = flow; f >= 0 && data.flows[f]!.parent >= 0; f = data.flows[f]!.parent) depth++
    groups.push({ flow, nodes: members, width: layers.length * (NODE_W + GAP_X) - GAP_X, height: height * (NODE_H + GAP_Y) - GAP_Y, x: 0, y: 0, depth })
  }
  // Flow runs as groups, stacked: the root's graph first, then each subflow in a box of its own.
  let y = 10
  let width = 0
  for (const group of groups) {
    group.x = 16 + group.depth * 24
    group.y = y + 26
    y = group.y + group.height + 30
    width = Math.max(width, group.x + group.width + 24)
  }
  const svg = s('svg', { width: width + 200, height: y, class: 'graph' })
  const defs = s('defs')
  const marker = s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' })
  marker.append(s('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#868e96' }))
  defs.append(marker)
  svg.append(defs)
  const at = (n: GraphNode) => {
    const group = groups.find((g) => g.flow === n.flow)!
    return { x: group.x + n.x, y: group.y + n.y }
  }
  for (const group of groups) {
    const f = group.flow >= 0 ? data.flows[group.flow] : undefined
    const label = f ? `${group.depth > 0 ? 'subflow' : 'flow'} ${f.flowName} · ${f.name} · ${stateName(f.state)}` : 'task runs outside a flow run'
    group.width = Math.max(group.width, NODE_W, label.length * 6.6)
    svg.append(
      s('rect', { x: group.x - 10, y: group.y - 24, width: group.width + 20, height: group.height + 34, rx: 6, class: 'group', 'data-flow': group.flow }),
      s('text', { x: group.x - 2, y: group.y - 8, class: 'group-label' }, label),
    )
  }
  for (const edge of edges.values()) {
    const a = at(edge.from)
    const b = at(edge.to)
    const x1 = a.x + NODE_W
    const y1 = a.y + NODE_H / 2
    const x2 = b.x
    const y2 = b.y + NODE_H / 2
    const bend = Math.max(30, Math.abs(x2 - x1) / 2)
    const path = s('path', {
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      class: `edge${edge.from.flow === edge.to.flow ? '' : ' cross'}`,
      'marker-end': 'url(#arrow)',
      'data-from': edge.from.key,
      'data-to': edge.to.key,
      'data-from-task': edge.from.task,
      'data-to-task': edge.to.task,
      'data-count': edge.n,
    })
    svg.append(path)
  }
  const nodeEls = new Map<GraphNode, SVGElement>()
  for (const n of nodes.values()) {
    const p = at(n)
    const g = s('g', { class: 'node', 'data-node': n.key, 'data-task': n.task, 'data-label': n.label, 'data-runs': n.runs.length, transform: `translate(${p.x},${p.y})` })
    g.append(s('rect', { width: NODE_W, height: NODE_H, rx: 5, class: 'node-box' }))
    // A bar of state counts along the bottom: one colour for a single run, shares for a folded node.
    const byState = new Map<number, number>()
    for (const i of n.runs) byState.set(runs[i]![6], (byState.get(runs[i]![6]) ?? 0) + 1)
    let offset = 0
    for (const [state, count] of [...byState].sort((a, b) => severity(b[0]) - severity(a[0]))) {
      const w = (count / n.runs.length) * NODE_W
      g.append(s('rect', { x: offset, y: NODE_H - 7, width: w, height: 7, fill: colourOf(state) }))
      offset += w
    }
    g.append(s('text', { x: 8, y: 15, class: 'node-label' }, n.label.length > 24 ? `${n.label.slice(0, 23)}…` : n.label))
    const states = [...byState].map(([state, count]) => (n.runs.length === 1 ? stateName(state) : `${count} ${stateName(state)}`)).join(', ')
    g.append(s('text', { x: 8, y: 28, class: 'node-sub' }, states.length > 30 ? `${states.slice(0, 29)}…` : states))
    g.addEventListener('click', () => {
      if (n.runs.length === 1) select(n.runs[0]!)
      else showGroupDetails(n.label, n.runs)
    })
    g.addEventListener('mousemove', (event) => showTip(event, [n.label, states, n.runs.length === 1 ? `task ${n.task}` : `${n.runs.length} runs of ${n.task}`]))
    g.addEventListener('mouseleave', hideTip)
    nodeEls.set(n, g)
    svg.append(g)
  }
  onSelect.push(() => {
    for (const [n, el] of nodeEls) el.classList.toggle('sel', n.runs.includes(selected))
  })
  root.append(h('div', { class: 'graph-box' }, svg))
  return nodes.size
}

// ---------------------------------------------------------------------------------------------
// Table of runs: filter by state, search by name; only the rows in view are in the page.

let stateFilter = ''
let searchText = ''
let groupFilter: Set<number> | undefined
let refreshTable = () => {}
function setStateFilter(name: string): void {
  stateFilter = name
  ;($('state-filter') as HTMLSelectElement).value = name
  refreshTable()
  $('runs').scrollIntoView({ block: 'start' })
}

const ROW_H = 26
function drawTable(): void {
  const root = $('runs')
  const select_ = h('select', { id: 'state-filter' }, h('option', { value: '' }, 'all states'))
  const names = new Map<string, number>()
  for (const run of runs) names.set(stateName(run[6]), (names.get(stateName(run[6])) ?? 0) + 1)
  for (const [name, n] of [...names].sort((a, b) => b[1] - a[1])) select_.append(h('option', { value: name }, `${name} (${n})`))
  const search = h('input', { id: 'search', type: 'search', placeholder: 'search by name' })
  const shown = h('span', { class: 'muted', id: 'shown' })
  const clear = h('button', { id: 'clear-group', style: 'display:none' }, 'show all runs')
  root.append(h('div', { class: 'tools' }, select_, search, clear, shown))
  const header = h('div', { class: 'row head' }, ...['name', 'task', 'flow', 'state', 'attempts', 'started', 'duration', 'slot'].map((c) => h('span', {}, c)))
  const body = h('div', { class: 'table-body' })
  const spacer = h('div', {})
  const rows = h('div', { class: 'rows' })
  body.append(spacer, rows)
  root.append(header, body)
  let list: number[] = []
  const draw = () => {
    const top = body.scrollTop
    const first = Math.max(0, Math.floor(top / ROW_H) - 5)
    const last = Math.min(list.length, first + Math.ceil(body.clientHeight / ROW_H) + 10)
    rows.style.top = `${first * ROW_H}px`
    rows.textContent = ''
    for (let k = first; k < last; k++) {
      const i = list[k]!
      const run = runs[i]!
      const attempts = run[7]
      const start = attempts[0]?.[0]
      const end = attempts[attempts.length - 1]?.[1]
      const slots = [...new Set(attempts.map((a) => data.slots[a[2]] ?? '-'))].join(', ')
      const row = h(
        'div',
        { class: `row${i === selected ? ' sel' : ''}`, 'data-run': i },
        h('span', { title: run[1] }, run[1]),
        h('span', {}, taskName(run)),
        h('span', {}, flowLabel(run[3])),
        h('span', {}, badge(run[6])),
        h('span', {}, String(attempts.length)),
        h('span', {}, start === undefined ? '-' : `+${duration(start)}`),
        h('span', {}, start === undefined || end === undefined ? '-' : duration(end - start)),
        h('span', {}, slots || '-'),
      )
      row.addEventListener('click', () => select(i))
      rows.append(row)
    }
  }
  refreshTable = () => {
    const text = searchText.toLowerCase()
    list = []
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i]!
      if (groupFilter && !groupFilter.has(i)) continue
      if (stateFilter && stateName(run[6]) !== stateFilter) continue
      if (text && !run[1].toLowerCase().includes(text) && !taskName(run).toLowerCase().includes(text)) continue
      list.push(i)
    }
    spacer.style.height = `${list.length * ROW_H}px`
    body.style.height = `${Math.min(Math.max(list.length, 1) * ROW_H + 2, 360)}px`
    shown.textContent = `${list.length} of ${runs.length} runs`
    clear.style.display = groupFilter ? '' : 'none'
    draw()
  }
  select_.addEventListener('change', () => {
    stateFilter = select_.value
    refreshTable()
  })
  search.addEventListener('input', () => {
    searchText = search.value
    refreshTable()
  })
  clear.addEventListener('click', () => {
    groupFilter = undefined
    refreshTable()
  })
  // One redraw per frame however many scroll events come in it.
  let frame = 0
  body.addEventListener('scroll', () => {
    frame ||= requestAnimationFrame(() => {
      frame = 0
      draw()
    })
  })
  onSelect.push(draw)
  refreshTable()
}

// ---------------------------------------------------------------------------------------------
// Details: a run's facts, attempts, error with stack and cause, logs.

function errorBlock(error: ErrorRecord, depth = 0): HTMLElement {
  const box = h(
    'div',
    { class: 'error' },
    h('div', { class: 'error-title' }, `${depth > 0 ? 'caused by ' : ''}${error.name}: ${error.message}`),
    error.location ? h('div', { class: 'muted' }, `at ${error.location.file}:${error.location.line}:${error.location.column}`) : null,
    error.stack ? h('pre', { class: 'stack' }, error.stack) : null,
  )
  if (error.cause) box.append(errorBlock(error.cause, depth + 1))
  return box
}
function logsBlock(logs: PageLog[] | undefined, omitted: number | undefined): HTMLElement | null {
  // No lines kept but some left out (the page's budget ran out): the note alone says where they are.
  if ((!logs || logs.length === 0) && !omitted) return null
  let pre: HTMLElement | null = null
  if (logs && logs.length > 0) {
    pre = h('pre', { class: 'logs' })
    for (const [t, level, message] of logs) pre.append(h('span', { class: `log-${level}` }, `${clock(t)} ${level.padEnd(7)} ${message}\n`))
  }
  return h('div', {}, h('h3', {}, 'logs'), pre, omitted ? h('p', { class: 'muted' }, `${omitted} more lines not in this page (see the JSON report)`) : null)
}
function showRunDetails(i: number): void {
  const run = runs[i]!
  const detail = data.details[i] ?? {}
  const box = $('details')
  box.textContent = ''
  const facts = h('dl', {})
  const fact = (name: string, value: Node | string) => facts.append(h('dt', {}, name), h('dd', {}, value))
  fact('id', run[0])
  fact('task', taskName(run))
  fact('flow run', flowLabel(run[3]))
  if (run[5] >= 0) fact('map index', String(run[5]))
  if (detail.tags) fact('tags', detail.tags.join(', '))
  if (run[8].length > 0) {
    const ups = h('span', {})
    for (const u of run[8].slice(0, 50)) {
      const a = h('a', { href: '#', class: 'up-link' }, runName(u))
      a.addEventListener('click', (e) => {
        e.preventDefault()
        select(u)
      })
      ups.append(a, ' ')
    }
    if (run[8].length > 50) ups.append(`and ${run[8].length - 50} more`)
    fact('upstream', ups)
  }
  fact('created', when(run[9]))
  box.append(h('h2', { id: 'details-title' }, `${run[1]} `, badge(run[6])), facts)
  if (run[7].length > 0) {
    const list = h('ol', { class: 'attempts' })
    for (const [start, end, slot, outcome, retried, message] of run[7]) {
      list.append(
        h('li', {}, badge(outcome), ` ${when(start)} for ${duration(end - start)} on ${data.slots[slot] ?? 'no slot'}${retried ? ', retried' : ''}`, message ? h('div', { class: 'muted' }, message) : null),
      )
    }
    box.append(h('h3', {}, 'attempts'), list)
  } else box.append(h('p', { class: 'muted' }, 'It never ran an attempt.'))
  if (detail.message && !detail.error) box.append(h('p', { class: 'err-line' }, detail.message))
  if (detail.error) box.append(h('h3', {}, 'error'), errorBlock(detail.error))
  const logs = logsBlock(detail.logs, detail.logsOmitted)
  if (logs) box.append(logs)
  box.classList.add('open')
  box.scrollIntoView({ block: 'nearest' })
}
function showFlowDetails(f: number): void {
  const flow = data.flows[f]!
  const box = $('details')
  box.textContent = ''
  const facts = h('dl', {})
  const fact = (name: string, value: string) => facts.append(h('dt', {}, name), h('dd', {}, value))
  fact('id', flow.id)
  fact('flow', flow.flowName)
  fact('task runner', flow.runner)
  fact('parameters', flow.parameters)
  if (flow.tags.length > 0) fact('tags', flow.tags.join(', '))
  if (flow.start !== null) fact('started', when(flow.start))
  if (flow.start !== null && flow.end !== null) fact('took', duration(flow.end - flow.start))
  fact('task runs', String(flow.taskRuns))
  box.append(h('h2', { id: 'details-title' }, `flow run ${flow.name} `, badge(flow.state)), facts)
  if (flow.error) box.append(h('h3', {}, 'error'), errorBlock(flow.error))
  const logs = logsBlock(flow.logs, flow.logsOmitted)
  if (logs) box.append(logs)
  box.classList.add('open')
  box.scrollIntoView({ block: 'nearest' })
}
function showGroupDetails(label: string, members: number[]): void {
  groupFilter = new Set(members)
  stateFilter = ''
  ;($('state-filter') as HTMLSelectElement).value = ''
  refreshTable()
  const box = $('details')
  box.textContent = ''
  const counts = new Map<number, number>()
  for (const i of members) counts.set(runs[i]![6], (counts.get(runs[i]![6]) ?? 0) + 1)
  const p = h('p', {})
  for (const [state, n] of counts) p.append(badge(state), ` ${n}  `)
  box.append(h('h2', { id: 'details-title' }, label), p, h('p', { class: 'muted' }, `The table below now lists these ${members.length} runs; click one for its details.`))
  const failed = members.filter((i) => data.details[i]?.error).slice(0, 20)
  if (failed.length > 0) {
    const ul = h('ul', {})
    for (const i of failed) {
      const a = h('a', { href: '#' }, runName(i))
      a.addEventListener('click', (e) => {
        e.preventDefault()
        select(i)
      })
      ul.append(h('li', {}, a, `: ${data.details[i]!.error!.message.split('\n')[0]}`))
    }
    box.append(h('h3', {}, 'errors'), ul)
  }
  box.classList.add('open')
}

const PROBLEMS_SHOWN = 10
/** The runs that did not complete, first: what a reader of a failed CI run looks for. */
function drawProblems(): void {
  const root = $('problems')
  const bad = runs.map((_, i) => i).filter((i) => data.details[i]?.error || data.details[i]?.message)
  if (bad.length === 0) {
    root.remove()
    return
  }
  const ul = h('ul', {})
  for (const i of bad.slice(0, PROBLEMS_SHOWN)) {
    const run = runs[i]!
    const detail = data.details[i]!
    const text = detail.error ? `${detail.error.name}: ${detail.error.message}` : detail.message!
    const a = h('a', { href: '#', 'data-run': i }, run[1])
    a.addEventListener('click', (e) => {
      e.preventDefault()
      select(i)
    })
    ul.append(h('li', {}, a, ' ', badge(run[6]), ` ${text.split('\n')[0]!.slice(0, 200)}`))
  }
  root.append(h('h2', {}, `${bad.length} run${bad.length === 1 ? '' : 's'} did not complete`), ul)
  if (bad.length > PROBLEMS_SHOWN) root.append(h('p', { class: 'muted' }, `and ${bad.length - PROBLEMS_SHOWN} more: filter the table below by state`))
}

drawSummary()
drawProblems()
const timeline = drawTimeline()
const nodes = drawGraph()
drawTable()
window.ptrReport = { readyMs: performance.now(), lanes: timeline.lanes, bars: timeline.bars, nodes, select }
document.body.setAttribute('data-ready', '1')
