/**
 * `ptr run` through the real binary, as a child process: example flows, output, exit codes,
 * bad input, signals, and a project that installs ptr as a dependency.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, describe, it } from 'node:test'
import { RUNNER_KINDS } from '../src/runners/kinds.ts'
import { REPO, runPtr, tempDir, waitForOutput } from './helpers/cli.ts'

const LINE = /^\d\d:\d\d:\d\d\.\d{3} /
const lastLine = (text: string) => text.trimEnd().split('\n').at(-1) ?? ''

describe('ptr run: example flows', () => {
  it('flows/pipeline.ts as its header and the README say: fails in its load, then --resume runs only the load', async () => {
    const dir = tempDir('ptr-pipeline-')
    try {
      const file = path.join(REPO, 'flows', 'pipeline.ts')
      const failed = await runPtr(['run', file, '--param', 'day=2026-11-30'], { cwd: dir.dir, env: { PIPELINE_FAIL: '1' } })
      assert.equal(failed.code, 1, failed.stdout + failed.stderr)
      assert.match(failed.stdout + failed.stderr, /the warehouse is not reachable/)
      const resumed = await runPtr(['run', file, '--resume'], { cwd: dir.dir })
      assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr)
      assert.match(resumed.stderr, /ptr: resuming flow run \S+ \(Failed\): 6 completed task runs to reuse/)
      assert.match(lastLine(resumed.stdout), /^7 task runs: 6 cached, 1 completed in/)
    } finally {
      dir.cleanup()
    }
  })

  for (const [file, args, code] of [
    ['flows/hello.ts', ['--param', 'name=Ada'], 0],
    ['flows/elevator.ts', ['--param', 'seconds=0.05'], 0],
    ['flows/map.ts', ['--param', 'n=4', '--param', 'factor=10'], 0],
    ['flows/failures.ts', [], 0],
    ['flows/failures.ts', ['--param', 'strict=true'], 1],
    ['flows/pipeline.ts', [], 0],
  ] as const) {
    it(`${file} ${args.join(' ')} exits ${code}`, async () => {
      const result = await runPtr(['run', file, ...args])
      assert.equal(result.code, code, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
      assert.match(lastLine(result.stdout), /^\d+ task runs?: .* in \d+\.\d\d s$/)
    })
  }

  it('prints one timestamped line per task-run state change, task output attributed to its run, and a summary', async () => {
    const result = await runPtr(['run', 'flows/map.ts', '--param', 'n=3', '--param', 'factor=10'])
    const lines = result.stdout.split('\n')
    for (const name of ['scale-\\d+', 'total-\\d+', 'describe-\\d+']) {
      for (const state of ['Pending', 'Running', 'Completed']) {
        assert.equal(lines.filter((l) => LINE.test(l) && new RegExp(` ${name} ${state}$`).test(l)).length, name.startsWith('scale') ? 3 : 1, `${name} ${state}`)
      }
    }
    assert.ok(lines.some((l) => /^\S+ flow \| sum of scaled numbers: 60$/.test(l)), result.stdout)
    assert.equal(lastLine(result.stdout).replace(/ in .*/, ''), '5 task runs: 5 completed')
    assert.doesNotMatch(result.stdout, /\x1b\[/, 'no ANSI codes with NO_COLOR')
  })

  it('names failures in the summary, with attempts and cause', async () => {
    const result = await runPtr(['run', 'flows/failures.ts', '--param', 'strict=true'])
    assert.match(result.stdout, /flaky_fetch-\d+ AwaitingRetry attempt 1 failed: connection reset \(attempt 1\); retrying in 0\.1 s/)
    assert.match(result.stdout, /store-\d+ NotReady: upstream parse-\d+ failed\n/)
    assert.match(result.stdout, /✗ parse-\d+ failed after 1 attempt\n +SyntaxError: .*JSON.*\n +at flows\/failures\.ts:\d+:\d+\n/)
    assert.match(result.stdout, /flow run failures-\S+ Failed: 1 task run failed and nothing handled it\n/)
    // Each error once in the summary (the plain line of its state change aside).
    const summary = result.stdout.slice(result.stdout.indexOf('\n\n'))
    assert.equal(summary.match(/after property value in JSON/g)?.length, 1, summary)
    assert.equal(lastLine(result.stdout).replace(/ in .*/, ''), '3 task runs: 1 completed, 1 failed, 1 not ready')
  })

  it('--runner picks the runner, whatever the flow code says', async () => {
    const project = tempDir()
    after(project.cleanup)
    writeFileSync(
      path.join(project.dir, 'which.ts'),
      `import { flow, getRunContext, ConcurrentTaskRunner } from '${REPO}/src/index.ts'
export default flow({ name: 'which', taskRunner: new ConcurrentTaskRunner() }, async () => { console.log('runner=' + getRunContext().taskRunner?.name) })`,
    )
    for (const runner of ['sequential', 'concurrent']) {
      const result = await runPtr(['run', 'which.ts', '--runner', runner], { cwd: project.dir })
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, new RegExp(`flow \\| runner=${runner}$`, 'm'))
    }
  })

  it('--param values are JSON when they parse, strings otherwise; --params takes an object', async () => {
    const project = tempDir()
    after(project.cleanup)
    writeFileSync(
      path.join(project.dir, 'params.ts'),
      `import { flow } from '${REPO}/src/index.ts'
export default flow({ name: 'params' }, async (p: Record<string, unknown>) => { console.log('params=' + JSON.stringify(p)) })`,
    )
    const result = await runPtr(['run', 'params.ts', '--params', '{"a":1,"b":"x"}', '--param', 'b=[1,2]', '--param', 'name=Ada', '-p', 'flag=true'], {
      cwd: project.dir,
    })
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /params=\{"a":1,"b":\[1,2\],"name":"Ada","flag":true\}/)
  })
})

describe('ptr run: bad input is one clear line and exit 2', () => {
  const project = tempDir()
  after(project.cleanup)
  const write = (name: string, text: string) => writeFileSync(path.join(project.dir, name), text)
  write('syntax.ts', `import { flow } from '${REPO}/src/index.ts'\nexport default flow(async () => {\n  const x = (1 +\n})\n`)
  write('none.ts', `export const answer = 42\n`)
  write('two.ts', `import { flow } from '${REPO}/src/index.ts'\nexport const a = flow({ name: 'alpha' }, async () => 1)\nexport const b = flow({ name: 'beta' }, async () => 2)\n`)
  write('throws.ts', `throw new Error('top-level boom')\n`)

  for (const [label, args, pattern] of [
    ['a missing file', ['run', 'nope.ts'], /^ptr: flow file not found: nope\.ts \(looked in .*\); check the path/],
    ['a syntax error', ['run', 'syntax.ts'], /^ptr: syntax error in syntax\.ts:4:0: .*; fix the file and run again$/],
    ['no flow exported', ['run', 'none.ts'], /^ptr: none\.ts exports no flow; define one with flow\(\) and export it/],
    ['an unknown flow name', ['run', 'two.ts', 'gamma'], /^ptr: two\.ts has no flow named 'gamma'; its flows: alpha \(export a\), beta \(export b\)$/],
    ['several flows and no default', ['run', 'two.ts'], /^ptr: two\.ts exports several flows and no default; name one: ptr run two\.ts <flow>, where <flow> is one of: alpha/],
    ['an unknown runner', ['run', 'two.ts', 'alpha', '--runner', 'warp'], new RegExp(`^ptr: flag --runner must be one of: ${RUNNER_KINDS.join(', ')}, got 'warp'$`)],
    ['a malformed --param', ['run', 'two.ts', 'alpha', '--param', 'oops'], /^ptr: --param 'oops' is malformed: expected name=value/],
    ['bad --params JSON', ['run', 'two.ts', 'alpha', '--params', '{n:'], /^ptr: --params is not valid JSON/],
    ['a file that throws on import', ['run', 'throws.ts'], /^ptr: throws\.ts threw while loading \(line 1\): top-level boom/],
    ['an unknown option', ['run', 'two.ts', '--frobnicate'], /unknown option '--frobnicate'/],
  ] as const) {
    it(label, async () => {
      const result = await runPtr(args, { cwd: project.dir })
      assert.equal(result.code, 2, `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`)
      assert.match(result.stderr.trim(), pattern)
      assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace')
      assert.ok(result.stderr.trim().split('\n').length <= 2, `more than two lines:\n${result.stderr}`)
    })
  }

  it('selects a named flow by export or flow name', async () => {
    assert.equal((await runPtr(['run', 'two.ts', 'beta'], { cwd: project.dir })).code, 0)
    assert.equal((await runPtr(['run', 'two.ts', 'a'], { cwd: project.dir })).code, 0)
  })
})

describe('ptr run: signals', () => {
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${signal} cancels queued runs as Cancelled, prints the summary and exits ${code}`, async () => {
      let stdout = ''
      const started = Date.now()
      const result = await runPtr(['run', 'flows/elevator.ts', '--param', 'seconds=20'], {
        onSpawn: (child) => {
          child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk))
          void waitForOutput(() => stdout, / stop_at_floor-\d+ Running/).then(() => child.kill(signal))
        },
      })
      assert.equal(result.code, code, result.stderr)
      assert.ok(Date.now() - started < 15_000, 'did not wait for the 20 s stops')
      assert.equal(result.stdout.split('\n').filter((l) => / stop_at_floor-\d+ Cancelled/.test(l)).length, 10)
      assert.match(lastLine(result.stdout), /^10 task runs: 10 cancelled in /)
      assert.match(result.stdout, /flow run elevator-\S+ Cancelled/)
      assert.match(result.stderr, new RegExp(`${signal} received, cancelling the flow run`))
    })
  }
})

describe('ptr --help', () => {
  it('ptr --help and ptr run --help show examples and exit 0', async () => {
    const top = await runPtr(['--help'])
    assert.equal(top.code, 0)
    assert.match(top.stdout, /Examples:\n\s+\$ ptr run flows\/hello\.ts/)
    const run = await runPtr(['run', '--help'])
    assert.equal(run.code, 0)
    assert.match(run.stdout, /--param <name=value>/)
    assert.match(run.stdout, /Exit codes: 0 completed, 1 failed or crashed, 2 usage error, 130 Ctrl-C, 143 SIGTERM/)
  })
})

describe('a project that depends on ptr', () => {
  it('runs its own flow file with npx ptr run, importing ptr by package name', async () => {
    const project = tempDir('ptr-project-')
    after(project.cleanup)
    writeFileSync(path.join(project.dir, 'package.json'), JSON.stringify({ name: 'user-project', private: true, type: 'module', dependencies: { ptr: `file:${REPO}` } }))
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: project.dir, stdio: 'pipe' })
    mkdirSync(path.join(project.dir, 'src'))
    writeFileSync(path.join(project.dir, 'src', 'shout.ts'), `export const shout = (s: string): string => s.toUpperCase() + '!'\n`)
    writeFileSync(
      path.join(project.dir, 'flow.ts'),
      `import { flow, task } from 'ptr'
import { shout } from './src/shout.ts'
export const loud = task({ name: 'loud' }, (s: string) => shout(s))
export default flow({ name: 'user' }, async ({ word = 'hi' }: { word?: string }) => { console.log(await loud(word)) })
`,
    )
    const out = execFileSync('npx', ['--no-install', 'ptr', 'run', 'flow.ts', '--param', 'word=hey'], {
      cwd: project.dir,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    })
    assert.match(out, /^\S+ flow \| HEY!$/m)
    assert.match(out, /loud-\d+ Completed/)
    assert.match(out, /flow run user-\S+ Completed/)
  })
})

describe('output to a closed pipe', () => {
  const shell = (command: string, cwd = REPO) =>
    spawnSync('bash', ['-c', `${command}; echo "ptr-exit=\${PIPESTATUS[0]}" >&2`], {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', NODE_TEST_CONTEXT: undefined, CI: 'true' },
    })
  const ptr = `${process.execPath} ${path.join(REPO, 'bin', 'ptr.js')}`
  for (const [label, command, code] of [
    ['ptr run … | head -1 ends quietly with the flow\'s exit code', `${ptr} run flows/elevator.ts --param seconds=0.05 | head -1`, 0],
    ['ptr run … | true (reader gone before the first line)', `${ptr} run flows/failures.ts --param strict=true | true`, 1],
    ['ptr runs list | head -1 ends quietly with 0', `${ptr} runs list | head -1`, 0],
    ['ptr runs list | true ends quietly with 0', `${ptr} runs list | true`, 0],
  ] as const) {
    it(label, () => {
      const dir = tempDir()
      after(dir.cleanup)
      const result = shell(command.replace('flows/', `${REPO}/flows/`), dir.dir)
      assert.doesNotMatch(result.stderr, /Unhandled|EPIPE|\n\s+at /, result.stderr)
      assert.match(result.stderr, new RegExp(`ptr-exit=${code}\\b`), result.stderr)
    })
  }
})

describe('ptr --version', () => {
  it('ptr --version and -V print the version and exit 0', async () => {
    const { version } = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }
    for (const flag of ['--version', '-V']) {
      const result = await runPtr([flag])
      assert.equal(result.code, 0, result.stderr)
      assert.equal(result.stdout.trim(), version)
    }
  })
})

describe('flow parameters declared with a Standard Schema validator (zod)', () => {
  const FILE = 'test/fixtures/params-flow.ts'
  it('--param limit=3 arrives as a number; a string parameter keeps what was written', async () => {
    const result = await runPtr(['run', FILE, '--param', 'limit=3', '--param', 'code=007'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /^result: 'number:3 today string:007'$/m)
  })
  it('an unknown --param exits 2, naming it and suggesting the closest parameter', async () => {
    const result = await runPtr(['run', FILE, '--param', 'limt=3'])
    assert.equal(result.code, 2, result.stdout)
    assert.equal(result.stderr.trim(), "ptr: --param limt=3: flow 'params_flow' has no parameter 'limt' (did you mean 'limit'?); its parameters: limit, day, code")
    const params = await runPtr(['run', FILE, '--params', '{"days": "x"}'])
    assert.equal(params.code, 2)
    assert.match(params.stderr, /no parameter 'days' \(did you mean 'day'\?\)/)
  })
  it('--param limit=abc for a number exits 2, naming the parameter', async () => {
    const result = await runPtr(['run', FILE, '--param', 'limit=abc'])
    assert.equal(result.code, 2, result.stdout)
    assert.match(result.stderr.trim(), /^ptr: flow 'params_flow': invalid parameters: 'limit': .*number/)
    assert.doesNotMatch(result.stderr, /^\s+at /m)
  })
  it('ptr run FILE --help lists the flow parameters', async () => {
    const result = await runPtr(['run', FILE, '--help'])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /--runner <kind> .*sequential, concurrent, thread, process, prefect/s)
    assert.match(result.stdout, /Parameters of flow 'params_flow':\n +--param limit=<integer> +how many rows to read \(default 10\)\n +--param day=<string> +\(default "today"\)\n +--param code=<string>\n/)
  })
  it('calling the flow from code validates too', async () => {
    const { default: paramsFlow } = await import('./fixtures/params-flow.ts')
    await assert.rejects(paramsFlow({ limit: -1 }), (error: Error & { code?: string }) => error.code === 'PTR_INVALID_PARAMETERS' && /'limit'/.test(error.message))
    assert.equal(await paramsFlow({ limit: 2 }), 'number:2 today undefined:undefined')
  })
})

describe('--output json and the report file', () => {
  it('ptr run --output json FILE takes FILE as the flow file, and the report goes to stdout', async () => {
    const result = await runPtr(['run', '--output', 'json', 'flows/hello.ts'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(JSON.parse(result.stdout).flowRun.flowName, 'hello')
  })
  it('--output json --output-file FILE, and the older --output json FILE.json after the flow file', async () => {
    const dir = tempDir()
    after(dir.cleanup)
    for (const args of [['--output', 'json', '--output-file', path.join(dir.dir, 'a.json')], ['--output', 'json', path.join(dir.dir, 'b.json')]]) {
      const result = await runPtr(['run', 'flows/hello.ts', ...args])
      assert.equal(result.code, 0, result.stderr)
    }
    assert.equal(JSON.parse(readFileSync(path.join(dir.dir, 'a.json'), 'utf8')).flowRun.flowName, 'hello')
    assert.equal(JSON.parse(readFileSync(path.join(dir.dir, 'b.json'), 'utf8')).flowRun.flowName, 'hello')
  })
})
