/**
 * ptr as users get it: the packed package (`npm pack` of the built dist/) installed into a project
 * outside the repository, type-checked by that project's own strict `tsc`, and run with its own
 * `ptr` binary. Also the import rules of ptr's sources (no circles, layers top-down).
 */
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { REPO, tempDir } from './helpers/cli.ts'

const TSC = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
const DEPCRUISE = path.join(REPO, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs')

function run(command: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, NODE_TEST_CONTEXT: undefined, ...env }, timeout: 240_000 })
  return { code: result.status, out: `${result.stdout ?? ''}${result.stderr ?? ''}`, stdout: result.stdout ?? '', stderr: result.stderr ?? '' }
}

/** The same as run(), without blocking: the type checks run side by side. */
function runAsync(command: string, args: readonly string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, encoding: 'utf8', timeout: 240_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: unknown }).code as number | null) : 0, out: `${stdout}${stderr}` })
    })
  })
}

/** A user's flow that touches the public API the way the README shows it. */
const USER_FLOW = `import { ThreadPoolTaskRunner, allowFailure, flow, task, unmapped, wait } from 'ptr'
import type { PrefectFuture } from 'ptr'

export const double = task({ name: 'double', retries: 1, retryDelaySeconds: [0.1] }, async (n: number) => n * 2)
export const label = task({ name: 'label' }, (n: number | Error, prefix: string): string => (n instanceof Error ? 'failed' : prefix + String(n)))

export default flow({ name: 'etl', taskRunner: new ThreadPoolTaskRunner({ maxWorkers: 2 }) }, async ({ n = 3 }: { n?: number }) => {
  const first: PrefectFuture<number> = double.submit(n)
  const doubled = double.map([1, 2, 3])
  const labels = label.map(doubled, unmapped('#'))
  const tolerant = label.withOptions({ waitFor: [first] }).submit(allowFailure(first), 'x')
  const { done } = await wait([first, tolerant])
  const later = () => double.delay(4)
  void later
  const values: string[] = await labels.result()
  return { first: await first.result(), values, done: done.length }
})
`

/** The same API used wrongly: the user's tsc must say so. */
const WRONG_FLOW = `import { task } from 'ptr'

export const double = task({ name: 'double' }, async (n: number) => n * 2)
export const wrong = () => double.submit('three')
`

const TSCONFIG_BASE = {
  strict: true,
  skipLibCheck: false,
  noEmit: true,
  noUncheckedIndexedAccess: true,
  exactOptionalPropertyTypes: true,
  verbatimModuleSyntax: true,
  isolatedModules: true,
}

describe('the installed package (npm pack, then npm install in a user project)', () => {
  let project: { dir: string; cleanup: () => void }
  let packed: { dir: string; cleanup: () => void }
  let files: string[] = []
  const write = (name: string, content: string) => {
    const file = path.join(project.dir, name)
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, content)
  }
  const checks = new Map<string, Promise<{ code: number | null; out: string }>>()
  const tsc = (name: string, config: object, include: string[]) => {
    write(`tsconfig.${name}.json`, JSON.stringify({ compilerOptions: config, include }))
    checks.set(name, runAsync(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], project.dir))
  }
  const checked = (name: string) => checks.get(name)!

  before(() => {
    assert.ok(existsSync(path.join(REPO, 'dist', 'index.js')), 'dist/ is missing: npm test builds it first (npm run build)')
    packed = tempDir('ptr-pack-')
    const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packed.dir], REPO)
    assert.equal(pack.code, 0, pack.out)
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[]
    files = info!.files.map((f) => f.path)
    project = tempDir('ptr-user-')
    write('package.json', JSON.stringify({ name: 'user-project', version: '1.0.0', private: true, type: 'module' }))
    // --ignore-scripts: better-sqlite3 would compile for two minutes; nothing here opens a queue.
    const install = run('npm', ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', path.join(packed.dir, info!.filename), '@types/node@20'], project.dir)
    assert.equal(install.code, 0, install.out)
    write('flows/etl.ts', USER_FLOW)
    write('flows/wrong.ts', WRONG_FLOW)
    write('flows/hello.ts', readFileSync(path.join(REPO, 'flows', 'hello.ts'), 'utf8'))
    tsc('nodenext', { ...TSCONFIG_BASE, target: 'esnext', module: 'nodenext', types: ['node'] }, ['flows/etl.ts', 'flows/hello.ts'])
    tsc('bundler', { ...TSCONFIG_BASE, target: 'esnext', module: 'esnext', moduleResolution: 'bundler', types: ['node'] }, ['flows/etl.ts'])
    tsc('no-dom', { ...TSCONFIG_BASE, target: 'ES2022', lib: ['ES2022'], module: 'nodenext', types: ['node'] }, ['flows/etl.ts'])
    tsc('wrong', { ...TSCONFIG_BASE, target: 'esnext', module: 'nodenext', types: ['node'] }, ['flows/wrong.ts'])
  })
  after(() => {
    project?.cleanup()
    packed?.cleanup()
  })

  it('ships built JavaScript and declarations, not TypeScript sources', () => {
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), files.join('\n'))
    assert.ok(files.includes('bin/ptr.js') && files.includes('dist/runners/pool-bootstrap.mjs'))
    const sources = files.filter((f) => /\.[cm]?ts$/.test(f) && !/\.d\.[cm]?ts$/.test(f))
    assert.deepEqual(sources, [])
    const manifest = JSON.parse(readFileSync(path.join(project.dir, 'node_modules', 'ptr', 'package.json'), 'utf8')) as { exports: Record<string, unknown> }
    assert.deepEqual(manifest.exports['.'], { types: './dist/index.d.ts', default: './dist/index.js' })
  })

  it('type-checks in a strict project with module nodenext (skipLibCheck off)', async () => {
    const result = await checked('nodenext')
    assert.equal(result.code, 0, result.out)
  })

  it('type-checks with moduleResolution bundler', async () => {
    const result = await checked('bundler')
    assert.equal(result.code, 0, result.out)
  })

  it('type-checks without the DOM library (lib ES2022, Node types only)', async () => {
    const result = await checked('no-dom')
    assert.equal(result.code, 0, result.out)
  })

  it("still catches a wrong argument type in the user's code", async () => {
    const result = await checked('wrong')
    assert.notEqual(result.code, 0)
    assert.match(result.out, /flows\/wrong\.ts\(4,42\): error TS2345: Argument of type 'string' is not assignable to parameter of type 'Resolvable<number>'/)
    assert.doesNotMatch(result.out, /node_modules/)
  })

  it("runs a flow with the project's own ptr binary, though the project does not depend on tsx", () => {
    const manifest = JSON.parse(readFileSync(path.join(project.dir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    assert.deepEqual(Object.keys(manifest.dependencies).sort(), ['@types/node', 'ptr'])
    const bin = path.join(project.dir, 'node_modules', '.bin', 'ptr')
    const hello = run(bin, ['run', 'flows/hello.ts', '--param', 'name=Ada'], project.dir, { CI: 'true', NO_COLOR: '1' })
    assert.equal(hello.code, 0, hello.out)
    assert.match(hello.out, /Hello, Ada!/)
    // Installed without install scripts (as npm does for a package its allowScripts does not name),
    // better-sqlite3 has no build: ptr says so in one line, with what to run, and runs the flow anyway.
    assert.match(hello.stderr, /^ptr: the run history is off for this run: ptr's SQLite driver \([^\n]*node_modules\/better-sqlite3\) has no build it can load on Node v[\d.]+ [^\n]*: run npm rebuild better-sqlite3 in your project[^\n]*\n$/)
    // The thread pool's workers load the user's .ts through ptr's own tsx, and ptr as built JS.
    const etl = run(bin, ['run', 'flows/etl.ts'], project.dir, { CI: 'true', NO_COLOR: '1' })
    assert.equal(etl.code, 0, etl.out)
    assert.match(etl.out, /8 task runs: 8 completed/)
  })
})

describe('import rules (dependency-cruiser, as npm run lint runs them)', () => {
  it("ptr's sources have no import circle and respect the layers", () => {
    const result = run(process.execPath, [DEPCRUISE, '--config', '.dependency-cruiser.cjs', 'src'], REPO)
    assert.equal(result.code, 0, result.out)
  })

  it('a deliberate circle and an upward import fail the rules', () => {
    const result = run(process.execPath, [DEPCRUISE, '--config', '.dependency-cruiser.cjs', 'test/fixtures/import-rules/src'], REPO)
    assert.notEqual(result.code, 0)
    assert.match(result.out, /error no-circular: test\/fixtures\/import-rules\/src\/engine\/first\.ts/)
    assert.match(result.out, /error engine-below-runners: test\/fixtures\/import-rules\/src\/engine\/upward\.ts → test\/fixtures\/import-rules\/src\/cli\/command\.ts/)
  })
})
