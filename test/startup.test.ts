/**
 * What ptr run's fast start must keep: the flow file and the user's files it imports are bundled
 * once per run and imported by the main process and by every pool worker as plain JavaScript
 * (no tsx), yet each module's top-level code runs once per isolate, a changed file is picked up
 * by the next run, a task a worker cannot find fails at submit time with its message, stacks
 * and `import.meta.url` name the user's own .ts files, and a flow the bundle cannot keep still
 * runs (through tsx).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { after, describe, it } from 'node:test'
import { REPO, runPtr, tempProject } from './helpers/cli.ts'

// The built package, as a user's flow imports it by name (a temp folder cannot resolve 'ptr').
const PTR = pathToFileURL(path.join(REPO, 'dist', 'index.js')).href
const TSX_FLAG = `globalThis[Symbol.for('ptr.tsxRegistered')] !== undefined`

const helper = (word: string) => `import { appendFileSync } from 'node:fs'
import { isMainThread, threadId } from 'node:worker_threads'
import { task } from '${PTR}'

// Top-level code: one line per isolate that evaluates this module.
appendFileSync(process.env.LOAD_LOG!, \`\${process.pid}/\${isMainThread ? 'main' : threadId}\\n\`)

// 100 ms each, so that both workers of a pool of 2 take runs.
export const word = task({ name: 'word' }, (n: number) => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
  return { word: '${word}', n, tsx: ${TSX_FLAG}, url: import.meta.url, note: 'see import.meta.url' }
})

export const fail = task({ name: 'fail' }, (n: number): number => {
  throw new RangeError(\`no \${n}\`) // THROWS HERE
})
`

const FLOW = `import { flow, task } from '${PTR}'
import { fail, word } from './helper.ts'

export default flow({ name: 'startup' }, async ({ mode = 'word' }: { mode?: string }) => {
  if (mode === 'fail') return await fail.submit(1).result()
  if (mode === 'local') {
    const local = task({ name: 'local_task' }, (n: number) => n)
    return await local.submit(1).result()
  }
  const results = await word.map([1, 2, 3, 4, 5, 6]).result()
  console.log('RESULT ' + JSON.stringify({ main: { tsx: ${TSX_FLAG} }, results }))
})
`

// A computed import: a bundle cannot keep what it resolves to, so ptr runs this file through tsx.
const COMPUTED = `import { flow } from '${PTR}'

export default flow({ name: 'computed' }, async () => {
  const name = './helper.ts'
  const { word } = await import(name)
  const result = await word.submit(7).result()
  console.log('RESULT ' + JSON.stringify({ main: { tsx: ${TSX_FLAG} }, results: [result] }))
})
`

interface Outcome {
  main: { tsx: boolean }
  results: { word: string; n: number; tsx: boolean; url: string; note: string }[]
}

function parseResult(stdout: string): Outcome {
  const line = stdout.split('\n').find((l) => l.includes('RESULT '))
  assert.ok(line, `no RESULT line in:\n${stdout}`)
  return JSON.parse(line.slice(line.indexOf('RESULT ') + 'RESULT '.length)) as Outcome
}

// Words the bundle cannot keep, but only in comments: it still bundles the file.
const COMMENTED = `// Not CommonJS: this file uses no require(), __dirname or module.exports.
/* Nor import(name) of a computed name, nor import.meta.resolve. */
${FLOW}`

describe('ptr run: the flow bundle', () => {
  const project = tempProject({ 'flow.ts': FLOW, 'helper.ts': helper('one'), 'computed.ts': COMPUTED, 'commented.ts': COMMENTED })
  after(project.remove)
  const log = project.path('load.log')
  const run = (args: string[]) => runPtr(['run', ...args], { cwd: project.dir, env: { LOAD_LOG: log } })
  const loads = () => readFileSync(log, 'utf8').trim().split('\n')

  for (const kind of ['thread', 'process'] as const) {
    it(`${kind}: no tsx anywhere, top-level code once per isolate (main + 2 workers), import.meta.url names the .ts file`, async () => {
      writeFileSync(log, '')
      const result = await run(['flow.ts', '--runner', kind, '--max-workers', '2'])
      assert.equal(result.code, 0, result.stderr + result.stdout)
      const outcome = parseResult(result.stdout)
      assert.equal(outcome.main.tsx, false, 'the main process imported the bundle, not the .ts files through tsx')
      assert.deepEqual(outcome.results.map((r) => r.n), [1, 2, 3, 4, 5, 6])
      for (const r of outcome.results) {
        assert.equal(r.tsx, false, 'the worker imported the bundle')
        assert.equal(r.url, pathToFileURL(project.path('helper.ts')).href)
        assert.equal(r.note, 'see import.meta.url', 'a string that names import.meta is left as written')
      }
      const lines = loads()
      assert.equal(lines.length, 3, `one load per isolate, got:\n${lines.join('\n')}`)
      assert.equal(new Set(lines).size, 3)
      assert.equal(lines.filter((l) => l.endsWith('/main')).length, kind === 'thread' ? 1 : 3)
    })
  }

  it('a changed file is picked up by the next run, in the main process and in the workers', async () => {
    writeFileSync(project.path('helper.ts'), helper('one'))
    const first = parseResult((await run(['flow.ts', '--runner', 'thread', '--max-workers', '2'])).stdout)
    assert.deepEqual(new Set(first.results.map((r) => r.word)), new Set(['one']))
    writeFileSync(project.path('helper.ts'), helper('two'))
    const second = parseResult((await run(['flow.ts', '--runner', 'thread', '--max-workers', '2'])).stdout)
    assert.deepEqual(new Set(second.results.map((r) => r.word)), new Set(['two']))
  })

  for (const kind of ['thread', 'process'] as const) {
    it(`${kind}: a stack from the user's code points at the .ts line`, async () => {
      writeFileSync(project.path('helper.ts'), helper('one'))
      const line = helper('one').split('\n').findIndex((l) => l.includes('// THROWS HERE')) + 1
      const result = await run(['flow.ts', '--runner', kind, '--param', 'mode=fail', '--debug'])
      assert.equal(result.code, 1, result.stderr + result.stdout)
      const output = result.stdout + result.stderr
      assert.match(output, /RangeError: no 1/)
      assert.match(output, new RegExp(`helper\\.ts:${line}:\\d+`), output)
      assert.doesNotMatch(output, /\.mjs:\d+/, 'no frame in the bundle')
    })

    it(`${kind}: a task a worker cannot find fails at submit time, naming the .ts file`, async () => {
      const result = await run(['flow.ts', '--runner', kind, '--param', 'mode=local'])
      assert.equal(result.code, 1, result.stderr + result.stdout)
      const output = result.stdout + result.stderr
      const where = kind === 'thread' ? 'a worker thread' : 'a worker process'
      assert.match(output, new RegExp(`task 'local_task' was not found in ${where}: .*flow\\.ts does not define it at its top level; define it with task\\(\\) at the top level`))
      assert.doesNotMatch(output, /local_task-0 Running/, 'the run never started')
    })
  }

  it("the bundle's folder goes however the run ends (a flow that calls process.exit), and so do folders of runs that were killed", async () => {
    const tmp = project.path('tmp')
    mkdirSync(tmp, { recursive: true })
    // A folder a SIGKILLed run left: its pid is gone.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!
    const left = path.join(tmp, `ptr-run-${dead}@${os.hostname().replace(/[^\w.-]/g, '_')}-x1`)
    mkdirSync(left)
    writeFileSync(project.path('exits.ts'), `import { flow } from '${PTR}'\nexport default flow({ name: 'exits' }, async () => { process.exit(0) })\n`)
    const result = await runPtr(['run', 'exits.ts', '--runner', 'thread'], { cwd: project.dir, env: { TMPDIR: tmp } })
    assert.equal(result.code, 0, result.stderr + result.stdout)
    assert.deepEqual(readdirSync(tmp), [], 'no bundle folder is left, this run\'s or the killed one\'s')
  })

  it('words the bundle cannot keep, in comments only, do not stop it: the file is still bundled', async () => {
    writeFileSync(log, '')
    const result = await run(['commented.ts', '--runner', 'thread', '--max-workers', '1'])
    assert.equal(result.code, 0, result.stderr + result.stdout)
    const outcome = parseResult(result.stdout)
    assert.equal(outcome.main.tsx, false, 'the main process imported the bundle, not the .ts files through tsx')
    for (const r of outcome.results) assert.equal(r.tsx, false, 'the worker imported the bundle')
  })

  it('a flow the bundle cannot keep (a computed import) runs through tsx, whatever bundles the environment names', async () => {
    writeFileSync(log, '')
    // As a ptr run started from a task of another run inherits them: never this run's.
    const inherited = JSON.stringify({ url: pathToFileURL(project.path('gone', 'stale.mjs')).href, modules: [pathToFileURL(project.path('helper.ts')).href], typescript: false })
    const result = await runPtr(['run', 'computed.ts', '--runner', 'thread', '--max-workers', '1'], { cwd: project.dir, env: { LOAD_LOG: log, PTR_MODULE_BUNDLE: inherited } })
    assert.equal(result.code, 0, result.stderr + result.stdout)
    const outcome = parseResult(result.stdout)
    assert.equal(outcome.main.tsx, true)
    assert.equal(outcome.results[0]!.tsx, true)
    assert.equal(outcome.results[0]!.word, 'one')
    assert.equal(loads().length, 2)
  })
})
