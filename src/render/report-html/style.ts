/** The report page's styles (inlined into the file). */
export const PAGE_CSS = `
:root { color-scheme: light; --fg: #212529; --muted: #6c757d; --line: #dee2e6; --bg: #fff; --soft: #f8f9fa; --sel: #fab005; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1400px; padding: 16px 20px 80px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 4px 0; }
h2 { font-size: 17px; margin: 22px 0 6px; }
h3 { font-size: 14px; margin: 14px 0 4px; }
section { border-top: 1px solid var(--line); }
.muted { color: var(--muted); }
.facts { margin: 2px 0; color: var(--muted); }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; color: #fff; font-size: 12px; line-height: 18px; vertical-align: 1px; }
.chip { border: 2px solid; background: var(--bg); border-radius: 12px; padding: 1px 9px; margin: 0 6px 4px 0; cursor: pointer; font: inherit; }
ul.flows { list-style: none; padding-left: 0; margin: 6px 0; }
ul.flows ul { list-style: none; padding-left: 22px; border-left: 2px solid var(--line); margin-left: 6px; }
.err-line { color: #c92a2a; white-space: pre-wrap; }
.tools { display: flex; gap: 6px; align-items: center; margin: 6px 0; }
.tools button, .tools select, .tools input { font: inherit; padding: 2px 8px; }
.tl-body { position: relative; overflow-y: auto; overflow-x: hidden; border: 1px solid var(--line); cursor: grab; user-select: none; }
.tl-plot { position: absolute; left: 0; }
.axis { display: block; }
.tick { stroke: #adb5bd; }
.tick-label { font-size: 11px; fill: var(--muted); }
.stripe { fill: var(--soft); }
.lane-label { font-size: 12px; fill: var(--fg); }
.flow-label { font-weight: 600; }
.flow-bar { cursor: pointer; opacity: .85; }
.bar { cursor: pointer; }
.bar.retried { opacity: .55; }
.bar.sel, .node.sel .node-box { stroke: var(--sel); stroke-width: 3px; }
.cluster { opacity: .8; }
.graph-box { overflow: auto; max-height: 560px; border: 1px solid var(--line); }
.group { fill: none; stroke: #ced4da; stroke-dasharray: 4 3; }
.group-label { font-size: 12px; fill: var(--muted); }
.node { cursor: pointer; }
.node-box { fill: #fff; stroke: #adb5bd; }
.node-label { font-size: 12px; font-weight: 600; }
.node-sub { font-size: 11px; fill: var(--muted); }
.edge { fill: none; stroke: #868e96; stroke-width: 1.3px; }
.edge.cross { stroke-dasharray: 5 4; }
.row { display: grid; grid-template-columns: 2.2fr 1.3fr 1.3fr 1fr .6fr .9fr .9fr 1fr; gap: 8px; height: 26px; align-items: center; padding: 0 8px; border-bottom: 1px solid var(--soft); cursor: pointer; }
.row span { overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.row.head { font-weight: 600; cursor: default; border-bottom: 1px solid var(--line); }
.row.sel { background: #fff3bf; }
.row:not(.head):hover { background: var(--soft); }
.table-body { position: relative; overflow-y: auto; border: 1px solid var(--line); }
.rows { position: absolute; left: 0; right: 0; }
#details { padding-bottom: 20px; }
#details dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 6px 0; }
#details dt { color: var(--muted); }
#details dd { margin: 0; }
.error { border-left: 3px solid #e03131; padding: 4px 10px; margin: 6px 0; background: #fff5f5; }
.error .error { background: #fff; }
.error-title { font-weight: 600; white-space: pre-wrap; }
pre { overflow: auto; max-height: 340px; background: var(--soft); padding: 8px; font-size: 12px; }
.log-warning { color: #e67700; }
.log-error { color: #c92a2a; }
#tip { position: fixed; display: none; z-index: 10; max-width: 460px; background: #212529; color: #fff; padding: 6px 9px; border-radius: 4px; font-size: 12px; pointer-events: none; white-space: pre-wrap; }
`
