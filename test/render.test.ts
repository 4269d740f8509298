/**
 * Renderer choice, plain output thinning, and the JSON and JUnit reports (through the real binary).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import { after, describe, it } from 'node:test'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { XMLParser } from 'fast-xml-parser'
import { ConcurrentTaskRunner, flow } from '../src/index.ts'
import { runEvents } from '../src/engine/events.ts'
import { PlainRenderer } from '../src/render/plain.ts'
import { RunRecorder } from '../src/render/recorder.ts'
import { chooseColor, chooseRenderer } from '../src/render/select.ts'
import { boom, double, flaky } from './fixtures/tasks.ts'
import { REPO, runPtr, tempDir } from './helpers/cli.ts'

describe('choosing the renderer', () => {
  const cases: [string, boolean, Record<string, string>, string][] = [
    ['auto', true, {}, 'live'],
    ['auto', false, {}, 'plain'],
    ['auto', true, { CI: 'true' }, 'plain'],
    ['auto', true, { CI: '1' }, 'plain'],
    ['auto', true, { CI: 'false' }, 'live'],
    ['auto', true, { TERM: 'dumb' }, 'plain'],
    ['live', true, { CI: 'true' }, 'live'],
    ['live', false, {}, 'plain'],
    ['plain', true, {}, 'plain'],
    ['json', true, {}, 'plain'],
  ]
  for (const [output, isTTY, env, expected] of cases) {
    it(`output=${output}, ${isTTY ? 'a terminal' : 'not a terminal'}, ${JSON.stringify(env)} → ${expected}`, () => {
      assert.equal(chooseRenderer({ output, isTTY, env }), expected)
    })
  }
  it('colour: always/never decide; auto follows FORCE_COLOR, then NO_COLOR, then the terminal', () => {
    assert.equal(chooseColor('always', false, { NO_COLOR: '1' }), true)
    assert.equal(chooseColor('never', true, { FORCE_COLOR: '1' }), false)
    assert.equal(chooseColor('auto', false, { FORCE_COLOR: '1' }), true)
    assert.equal(chooseColor('auto', true, { NO_COLOR: '1' }), false)
    assert.equal(chooseColor('auto', true, {}), true)
    assert.equal(chooseColor('auto', false, {}), false)
  })
})

describe('plain renderer', () => {
  const demo = flow({ name: 'demo', taskRunner: new ConcurrentTaskRunner() }, async () => {
    double.submit(1)
    boom.submit('kaput')
    flaky.withOptions({ retries: 1, retryDelaySeconds: 0.01 }).submit(2)
    flaky.withOptions({ name: 'flaky_now', retries: 1 }).submit(2)
  })
  async function render(options: ConstructorParameters<typeof PlainRenderer>[1]): Promise<string> {
    const out = new PassThrough()
    let text = ''
    out.on('data', (chunk: Buffer) => (text += chunk))
    const renderer = new PlainRenderer(out, { color: false, ...options })
    const recorder = new RunRecorder()
    const offs = [runEvents.on(renderer.onEvent), runEvents.on(recorder.onEvent)]
    const { state } = await demo.run()
    offs.forEach((off) => off())
    await renderer.end(recorder, state)
    return text
  }

  it('info shows every state change; warning only retries and worse; error only failures', async () => {
    const info = await render({ logLevel: 'info' })
    assert.match(info, / double-\d+ Running\n/)
    assert.match(info, / flaky-\d+ AwaitingRetry /)
    assert.match(info, / boom-\d+ Failed: kaput\n/)
    const warning = await render({ logLevel: 'warning' })
    assert.doesNotMatch(warning, / (double|boom|flaky)-\d+ Running\n/)
    assert.match(warning, / flaky-\d+ AwaitingRetry /)
    // A retry with no delay: no AwaitingRetry, a Retrying line with the failed attempt's error.
    assert.match(warning, / flaky_now-\d+ Retrying attempt 1 failed: attempt 1 failed; retrying now\n/)
    assert.match(warning, / boom-\d+ Failed: kaput\n/)
    const error = await render({ logLevel: 'error' })
    assert.doesNotMatch(error, / AwaitingRetry /)
    assert.match(error, / boom-\d+ Failed: kaput\n/)
  })

  it('--quiet prints only failures and the summary', async () => {
    const quiet = await render({ quiet: true })
    const lines = quiet.trim().split('\n').filter(Boolean)
    assert.ok(lines.every((l) => !/ (Pending|Running|Completed|AwaitingRetry)$/.test(l)), quiet)
    assert.match(quiet, / boom-\d+ Failed: kaput\n/)
    assert.match(lines.at(-1)!, /^4 task runs: 3 completed, 1 failed in /)
    assert.doesNotMatch(quiet, /flow run demo-\S+ Running/)
  })
})

describe('reports', () => {
  const project = tempDir()
  after(project.cleanup)
  const schema = JSON.parse(readFileSync(path.join(REPO, 'docs', 'report.schema.json'), 'utf8'))
  const validator = new Ajv2020({ strict: true, allErrors: true, validateFormats: false }).compile(schema)
  // A plain boolean: the validator's type guard would narrow the report to `unknown`.
  const validate = Object.assign((data: unknown): boolean => validator(data), {
    get errors() {
      return validator.errors
    },
  })

  it('--output json FILE writes the whole run, valid against docs/report.schema.json', async () => {
    const file = path.join(project.dir, 'out', 'report.json')
    const result = await runPtr(['run', 'flows/failures.ts', '--param', 'strict=true', '--output', 'json', file])
    assert.equal(result.code, 1, result.stderr)
    const report: any = JSON.parse(readFileSync(file, 'utf8'))
    assert.ok(validate(report), JSON.stringify(validate.errors, null, 2))
    assert.equal(report.flowRun.state.type, 'Failed')
    assert.deepEqual(report.flowRun.parameters, { strict: true })
    assert.equal(report.taskRuns.length, 3)
    const byTask = Object.fromEntries(report.taskRuns.map((r: { taskName: string }) => [r.taskName, r]))
    assert.deepEqual(byTask.flaky_fetch.stateHistory.map((s: { name: string }) => s.name), ['Pending', 'Running', 'AwaitingRetry', 'Retrying', 'AwaitingRetry', 'Retrying', 'Completed'])
    assert.equal(byTask.flaky_fetch.attempts, 3)
    assert.equal(byTask.parse.error.name, 'SyntaxError')
    assert.equal(byTask.store.state.name, 'NotReady')
    assert.equal(byTask.store.error.cause.name, 'SyntaxError', 'the NotReady error carries the upstream cause')
    assert.deepEqual(report.counts, { Completed: 1, Failed: 1, NotReady: 1 })
    for (const run of report.taskRuns) for (const s of run.stateHistory) assert.ok(!Number.isNaN(Date.parse(s.timestamp)))
  })

  it('an error from a helper in another .ts file: the summary names that file and line with a code frame; the JSON report has the stack', async () => {
    const file = path.join(project.dir, 'user-error.json')
    const junit = path.join(project.dir, 'user-error.xml')
    const result = await runPtr(['run', 'test/fixtures/user-error/flow.ts', '--output', 'json', '--output-file', file, '--junit', junit])
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stdout, /✗ pick-0 failed after 1 attempt\n +TypeError: Cannot read properties of undefined \(reading 'at'\)\n +at test\/fixtures\/user-error\/helper\.ts:6:\d+\n/)
    assert.match(result.stdout, /> 6 \|   return rows!\.at\(0\)!\.id\n +\| +\^/)
    assert.equal(result.stdout.match(/Cannot read properties/g)?.length, 2, `the error once in the summary (and once as the plain line):\n${result.stdout}`)
    assert.doesNotMatch(result.stdout, /node:internal/, 'no full stack without --debug')
    const report: any = JSON.parse(readFileSync(file, 'utf8'))
    assert.ok(validate(report), JSON.stringify(validate.errors, null, 2))
    const error = report.taskRuns[0].error
    assert.equal(error.name, 'TypeError')
    assert.match(error.stack, /helper\.ts:6:\d+/)
    assert.equal(error.location.file, path.join('test', 'fixtures', 'user-error', 'helper.ts'))
    assert.equal(error.location.line, 6)
    const xml = readFileSync(junit, 'utf8')
    assert.match(xml, /<failure message="Cannot read properties of undefined \(reading 'at'\)" type="Failed">[^<]*at test\/fixtures\/user-error\/helper\.ts:6:\d+\nTypeError: [^<]*at firstId \([^<]*helper\.ts:6:\d+\)/)
  })

  it("prints the flow's return value after the run; --quiet hides it", async () => {
    const shown = await runPtr(['run', 'flows/hello.ts', '--param', 'name=Ada'])
    assert.match(shown.stdout, /^result: 'Hello, Ada!'$/m)
    const quiet = await runPtr(['run', 'flows/hello.ts', '--param', 'name=Ada', '--quiet'])
    assert.equal(quiet.code, 0, quiet.stderr)
    assert.doesNotMatch(quiet.stdout, /result:/)
  })

  it('--debug shows the whole stack; GITHUB_ACTIONS=true adds an ::error annotation at the user line', async () => {
    const debug = await runPtr(['--debug', 'run', 'test/fixtures/user-error/flow.ts'])
    assert.equal(debug.code, 1, debug.stderr)
    assert.match(debug.stdout, /at firstId \(.*helper\.ts:6:\d+\)\n +at .*flow\.ts:5:\d+/)
    const gha = await runPtr(['run', 'test/fixtures/user-error/flow.ts'], { env: { GITHUB_ACTIONS: 'true' } })
    assert.match(gha.stdout, /^::error file=test\/fixtures\/user-error\/helper\.ts,line=6,col=\d+,title=pick-0 failed::TypeError: Cannot read properties of undefined \(reading 'at'\)$/m)
    assert.equal(gha.stdout.match(/^::error /gm)?.length, 1, gha.stdout)
  })

  it('--output json without a file prints the report on stdout and the view on stderr', async () => {
    const result = await runPtr(['run', 'flows/map.ts', '--param', 'n=4', '--output', 'json'])
    assert.equal(result.code, 0, result.stderr)
    const report: any = JSON.parse(result.stdout)
    assert.ok(validate(report), JSON.stringify(validate.errors))
    assert.equal(report.taskRuns.length, 6)
    assert.match(result.stderr, /6 task runs: 6 completed in /)
  })

  it('--output refuses a report file that is not .json, so a flow file is never overwritten', async () => {
    const result = await runPtr(['run', 'flows/hello.ts', '--output', 'json', '--output-file', 'flows/hello.ts'])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /the report file must end in \.json/)
    assert.match(readFileSync(path.join(REPO, 'flows', 'hello.ts'), 'utf8'), /export default flow/)
  })

  it('--junit refuses a file that is not .xml, before the run, so a flow file is never overwritten', async () => {
    const flowFile = path.join(project.dir, 'keep.ts')
    const source = `import { flow } from '${REPO}/src/index.ts'\nexport default flow({ name: 'keep' }, async () => 'kept')\n`
    writeFileSync(flowFile, source)
    const result = await runPtr(['run', flowFile, '--junit', flowFile])
    assert.equal(result.code, 2, result.stderr)
    assert.match(result.stderr, /--junit .*keep\.ts: the report file must end in \.xml .*for example --junit junit\.xml/)
    assert.equal(readFileSync(flowFile, 'utf8'), source)
  })

  it('--junit FILE writes JUnit XML: one test case per task run, failures counted right, logs as their output', async () => {
    const flowFile = path.join(project.dir, 'many.ts')
    writeFileSync(
      flowFile,
      `import { flow, task } from '${REPO}/src/index.ts'
export const check = task({ name: 'check' }, (n: number) => { console.log('checking ' + n); if (n % 3 === 0) throw new Error('multiple of 3: ' + n + ' <&>'); return n })
export default flow({ name: 'many', failOnUnhandledTaskFailure: false }, async () => { console.log('flow says <hi>'); await check.map([1, 2, 3, 4, 5, 6, 7]).wait() })
`,
    )
    const junit = path.join(project.dir, 'junit.xml')
    const json = path.join(project.dir, 'many.json')
    const result = await runPtr(['run', flowFile, '--junit', junit, '--output', 'json', json])
    assert.equal(result.code, 0, result.stderr)
    const report: any = JSON.parse(readFileSync(json, 'utf8'))
    assert.ok(validate(report), JSON.stringify(validate.errors, null, 2))
    for (const run of report.taskRuns) {
      assert.deepEqual(run.logs.map((l: { level: string; message: string }) => `${l.level} ${l.message}`), [`info checking ${run.mapIndex + 1}`])
      assert.equal(run.logsOmitted, 0)
    }
    assert.deepEqual(report.flowRun.logs.map((l: { message: string }) => l.message), ['flow says <hi>'])
    const xml = readFileSync(junit, 'utf8')
    const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xml)
    const suites = parsed.testsuites
    assert.equal(suites.tests, '7')
    assert.equal(suites.failures, '2')
    const cases = [suites.testsuite.testcase].flat()
    assert.equal(cases.length, 7)
    const failed = cases.filter((c: { failure?: unknown }) => c.failure)
    assert.equal(failed.length, 2)
    assert.match(failed[0].failure.message, /multiple of 3: \d <&>/)
    // Run check-<i> checked i + 1.
    for (const c of cases) assert.match(c['system-out'], new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3} info +checking ${Number(c.name.split('-').pop()) + 1}$`))
    assert.match(suites.testsuite['system-out'], /info +flow says <hi>$/)
  })
})

describe('the bin preloads its dependencies', () => {
  // A plain node child: the preload runs before tsx's hooks exist, as in bin/ptr.js.
  const preload = (): { failed: string[] } => {
    const script = "const m = await import('./bin/preload.js'); console.log(JSON.stringify({ failed: await m.preloadDependencies() }))"
    return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8' }))
  }

  it('every preloaded module loads without tsx', () => {
    assert.deepEqual(preload().failed, [])
  })
})
