import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { RunReport } from '../report-json.ts'
import { pageData } from './data.ts'
import { PAGE_CSS } from './style.ts'

/**
 * The page's script. The built package carries it bundled (dist/render/report-html/page.js, made
 * by scripts/build.mjs); run from the sources, it is bundled here with esbuild (which tsx brings).
 */
let pageScript: Promise<string> | undefined
function loadPageScript(): Promise<string> {
  return (pageScript ??= (async () => {
    try {
      return readFileSync(new URL('./page.js', import.meta.url), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    const source = fileURLToPath(new URL('./page.ts', import.meta.url))
    const { build } = await import('esbuild')
    const result = await build({ entryPoints: [source], bundle: true, format: 'iife', target: 'es2020', minify: true, write: false, logLevel: 'silent' })
    return result.outputFiles[0]!.text
  })())
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
/** JSON that can sit inside a `<script>` element: no `</script>`, no `<!--`, no line separators JavaScript dislikes. */
const scriptSafe = (json: string) => json.replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')

export interface HtmlReportOptions {
  /** `run` for `ptr run --report`, `history` for `ptr flow-runs show ID --report`. */
  source: 'run' | 'history'
}

/**
 * One self-contained HTML page for a run: the flow runs, a timeline of attempts (a lane per worker
 * slot), the task graph and a table of runs with errors and logs. Everything is inline and the
 * page's Content-Security-Policy forbids any request, so it opens offline and as a CI artifact.
 */
export async function buildHtmlReport(report: RunReport, options: HtmlReportOptions): Promise<string> {
  const script = await loadPageScript()
  const data = pageData(report, { source: options.source })
  const root = report.flowRun
  const title = root ? `${root.flowName} ${root.name}: ${root.state.name} — ptr report` : 'ptr report'
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="${escapeHtml(report.tool.name)} ${escapeHtml(report.tool.version)}">
<title>${escapeHtml(title)}</title>
<style>${PAGE_CSS}</style>
</head>
<body>
<header id="summary"></header>
<section id="problems"></section>
<section><h2>Timeline</h2><div id="timeline"></div></section>
<section><h2>Task graph</h2><div id="graph"></div></section>
<section><h2>Task runs</h2><div id="runs"></div></section>
<section id="details" aria-live="polite"><p class="muted">Click a bar, a node or a row to see its run here: attempts, error with stack, logs.</p></section>
<div id="tip" role="tooltip"></div>
<noscript>This report draws with JavaScript; the same run is in the JSON report (ptr run --output json).</noscript>
<script type="application/json" id="ptr-data">${scriptSafe(JSON.stringify(data))}</script>
<script>${script.replace(/<\/script/gi, '<\\/script')}</script>
</body>
</html>
`
}
