// Builds the package: dist/ holds ptr's JavaScript (with source maps) and its .d.ts files.
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
process.exit(status ?? 1)
