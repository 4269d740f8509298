// Builds the package: dist/ holds ptr's JavaScript (with source maps) and its .d.ts files, and the
// HTML report's page script bundled for the browser.
// dist/ is emptied first, so a module deleted from src/ never lingers in the built package.
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true })
let tsc
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
} catch {
  console.error('ptr build: typescript is not installed; run `npm install` in the ptr folder (it installs the build tools), then `npm run build`')
  process.exit(2)
}
const { status } = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
if (status !== 0) process.exit(status ?? 1)

// The HTML report's page script runs in a browser: bundled into one file that the report inlines.
let esbuild
try {
  esbuild = await import('esbuild')
} catch {
  console.error('ptr build: esbuild is not installed; run `npm install` in the ptr folder, then `npm run build`')
  process.exit(2)
}
await esbuild.build({
  entryPoints: [fileURLToPath(new URL('../src/render/report-html/page.ts', import.meta.url))],
  outfile: fileURLToPath(new URL('../dist/render/report-html/page.js', import.meta.url)),
  bundle: true,
  format: 'iife',
  target: 'es2020',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
})
