/**
 * Settings through the real `ptr` binary: each precedence pair read back with
 * `ptr config view --json` and with a flow that reports the runner it got; config file search;
 * bad values from every source.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { DEFAULT_RUNNER_KIND, RUNNER_KINDS } from '../src/runners/kinds.ts'
import { SETTINGS } from '../src/settings/schema.ts'
import { REPO, runPtr, tempProject } from './helpers/cli.ts'

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'report-runner.ts')
const projects: Array<{ remove: () => void }> = []
after(() => {
  for (const project of projects) project.remove()
})

/** A temp project root (it has a package.json, so the config search stops there). */
function project(files: Record<string, string> = {}) {
  const p = tempProject({ 'package.json': '{ "name": "settings-test", "private": true }\n', ...files })
  projects.push(p)
  return p
}

interface ViewJson {
  configFile: string | null
  settings: Record<string, { value: unknown; source: string; origin: Record<string, unknown> }>
  hints: string[]
}

async function view(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<ViewJson> {
  const result = await runPtr(['config', 'view', '--json', ...args], options)
  assert.equal(result.code, 0, `ptr config view failed: ${result.stderr}`)
  return JSON.parse(result.stdout) as ViewJson
}

/** Runs the fixture flow and returns the runner it reported. */
async function runReport(flowName: string | undefined, args: string[], options: { cwd: string; env?: Record<string, string> }) {
  const out = path.join(options.cwd, `report-${Math.random().toString(36).slice(2)}.json`)
  const result = await runPtr(['run', FIXTURE, ...(flowName ? [flowName] : []), '--param', `out=${out}`, ...args], options)
  assert.equal(result.code, 0, `ptr run failed (${result.code}): ${result.stderr}\n${result.stdout}`)
  return JSON.parse(readFileSync(out, 'utf8')) as { kind: string; options: Record<string, unknown> }
}

describe('precedence through the ptr binary', () => {
  test('default: nothing set', async () => {
    const p = project()
    const json = await view([], { cwd: p.dir })
    assert.equal(json.configFile, null)
    assert.deepEqual(json.settings.runner, { value: DEFAULT_RUNNER_KIND, source: 'default', origin: { type: 'default' } })
    assert.equal((await runReport(undefined, [], { cwd: p.dir })).kind, DEFAULT_RUNNER_KIND)
  })

  test('config file over default', async () => {
    const p = project({ '.prefectrc': 'runner: sequential\n' })
    const json = await view([], { cwd: p.dir })
    assert.equal(json.configFile, p.path('.prefectrc'))
    assert.equal(json.settings.runner?.value, 'sequential')
    assert.equal(json.settings.runner?.source, `file ${p.path('.prefectrc')}`)
    assert.equal(json.settings.output?.source, 'default')
    assert.equal((await runReport(undefined, [], { cwd: p.dir })).kind, 'sequential')
  })

  test('environment over config file', async () => {
    const p = project({ '.prefectrc.json': JSON.stringify({ runner: 'sequential', concurrent: { maxConcurrency: 5 } }) })
    const env = { PREFECT_TASK_RUNNER: 'concurrent', PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY: '7' }
    const json = await view([], { cwd: p.dir, env })
    assert.equal(json.settings.runner?.source, 'env PREFECT_TASK_RUNNER')
    assert.equal(json.settings['concurrent.maxConcurrency']?.value, 7)
    assert.equal(json.settings['concurrent.maxConcurrency']?.source, 'env PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY')
    // The file still decides what the environment does not say.
    const fileOnly = await view([], { cwd: p.dir, env: { PREFECT_TASK_RUNNER: 'concurrent' } })
    assert.equal(fileOnly.settings['concurrent.maxConcurrency']?.value, 5)
    assert.deepEqual(await runReport(undefined, [], { cwd: p.dir, env }), { kind: 'concurrent', options: { maxConcurrency: 7 } })
  })

  test("the flow's own code over environment", async () => {
    const p = project()
    const env = { PREFECT_TASK_RUNNER: 'sequential', PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY: '7' }
    const json = await view([FIXTURE, 'withRunner'], { cwd: p.dir, env })
    assert.deepEqual(json.settings.runner, { value: 'concurrent', source: 'flow', origin: { type: 'flow', flow: 'with-runner' } })
    assert.equal(json.settings['concurrent.maxConcurrency']?.value, 3)
    assert.equal(json.settings['concurrent.maxConcurrency']?.source, 'flow')
    assert.deepEqual(await runReport('withRunner', [], { cwd: p.dir, env }), { kind: 'concurrent', options: { maxConcurrency: 3 } })
    // A flow that names no runner still gets the environment's.
    assert.equal((await runReport(undefined, [], { cwd: p.dir, env })).kind, 'sequential')
  })

  test('flag over the flow\'s own code', async () => {
    const p = project()
    const json = await view([FIXTURE, 'withRunner', '--runner', 'sequential'], { cwd: p.dir })
    assert.equal(json.settings.runner?.value, 'sequential')
    assert.equal(json.settings.runner?.source, 'flag --runner')
    assert.equal((await runReport('withRunner', ['--runner', 'sequential'], { cwd: p.dir })).kind, 'sequential')

    const sized = await view([FIXTURE, 'withRunner', '--max-concurrency', '2'], { cwd: p.dir })
    assert.equal(sized.settings.runner?.source, 'flow')
    assert.equal(sized.settings['concurrent.maxConcurrency']?.value, 2)
    assert.equal(sized.settings['concurrent.maxConcurrency']?.source, 'flag --max-concurrency')
    assert.deepEqual(await runReport('withRunner', ['--max-concurrency', '2'], { cwd: p.dir }), { kind: 'concurrent', options: { maxConcurrency: 2 } })
  })

  test('a size the flow code leaves open comes from the environment', async () => {
    const p = project()
    const env = { PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY: '6' }
    const json = await view([FIXTURE, 'openSize'], { cwd: p.dir, env })
    assert.equal(json.settings.runner?.source, 'flow')
    assert.equal(json.settings['concurrent.maxConcurrency']?.source, 'env PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY')
    assert.deepEqual(await runReport('openSize', [], { cwd: p.dir, env }), { kind: 'concurrent', options: { maxConcurrency: 6 } })
  })

  test('--max-workers on a runner that has no workers is an error naming the runner and its source', async () => {
    const p = project()
    const env = { PREFECT_TASK_RUNNER: 'sequential', PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS: '4' }
    const result = await runPtr(['run', FIXTURE, 'withRunner', '--param', 'out=x.json', '--max-workers', '2'], { cwd: p.dir, env })
    assert.equal(result.code, 2, result.stderr)
    assert.match(result.stderr, /^ptr: flag --max-workers applies to the thread and process runners, but this run uses the concurrent runner \(from flow\)/)
    assert.equal(result.stderr.trim().split('\n').length, 1)
  })

  const hasThread = (RUNNER_KINDS as readonly string[]).includes('thread')
  test('thread pool size: env over file, flag over env', { skip: hasThread ? false : 'no thread runner on this branch yet' }, async () => {
    const p = project({ '.prefectrc.yaml': 'runner: thread\nthreadPool:\n  maxWorkers: 3\n' })
    const env = { PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS: '4' }
    const fromEnv = await view([], { cwd: p.dir, env })
    assert.equal(fromEnv.settings['threadPool.maxWorkers']?.source, 'env PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS')
    const pool = async (args: string[], env?: Record<string, string>) => {
      const { kind, options } = await runReport(undefined, args, { cwd: p.dir, ...(env ? { env } : {}) })
      return { kind, maxWorkers: options.maxWorkers }
    }
    assert.deepEqual(await pool([], env), { kind: 'thread', maxWorkers: 4 })
    assert.deepEqual(await pool(['--max-workers', '2'], env), { kind: 'thread', maxWorkers: 2 })
    assert.deepEqual(await pool([]), { kind: 'thread', maxWorkers: 3 })
    assert.deepEqual(await pool(['--runner', 'process', '--max-workers', '2'], env), { kind: 'process', maxWorkers: 2 })
  })
})

describe('config file search', () => {
  test('a config in a parent folder is found from a subfolder', async () => {
    const p = project({ '.prefectrc.yaml': 'runner: sequential\n', 'deep/er/keep.txt': '' })
    const json = await view([], { cwd: p.path('deep', 'er') })
    assert.equal(json.configFile, p.path('.prefectrc.yaml'))
    assert.equal(json.settings.runner?.value, 'sequential')
    assert.equal((await runReport(undefined, [], { cwd: p.path('deep', 'er') })).kind, 'sequential')
  })

  test('the search stops at the project root (the nearest package.json)', async () => {
    const p = project({ '.prefectrc': 'runner: sequential\n', 'inner/package.json': '{}', 'inner/src/keep.txt': '' })
    const json = await view([], { cwd: p.path('inner', 'src') })
    assert.equal(json.configFile, null)
    assert.equal(json.settings.runner?.source, 'default')
  })

  test('--config overrides the search', async () => {
    const p = project({ '.prefectrc': 'runner: sequential\n', 'ci/settings.yaml': 'runner: concurrent\nconcurrent:\n  maxConcurrency: 4\n' })
    const json = await view(['--config', 'ci/settings.yaml'], { cwd: p.dir })
    assert.equal(json.configFile, p.path('ci', 'settings.yaml'))
    assert.equal(json.settings.runner?.value, 'concurrent')
    assert.deepEqual(await runReport(undefined, ['--config', 'ci/settings.yaml'], { cwd: p.dir }), { kind: 'concurrent', options: { maxConcurrency: 4 } })
  })

  test('--config naming a missing file exits 2', async () => {
    const p = project()
    const result = await runPtr(['config', 'view', '--config', 'nope.yaml'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.match(result.stderr, /^ptr: config file not found: nope\.yaml/)
  })

  test('package.json#prefect is read', async () => {
    const p = project()
    const pkg = project({ 'package.json': JSON.stringify({ name: 'x', prefect: { runner: 'sequential' } }) })
    assert.equal((await view([], { cwd: pkg.dir })).settings.runner?.source, `file ${pkg.path('package.json')}`)
    assert.equal((await view([], { cwd: p.dir })).settings.runner?.source, 'default')
  })
})

describe('bad values exit 2 and name their source', () => {
  const sizeCases = ['0', '-1', 'abc', '2.5']

  for (const bad of sizeCases) {
    test(`config file: threadPool.maxWorkers ${bad}`, async () => {
      const yamlValue = bad === 'abc' ? '"abc"' : bad
      const p = project({ '.prefectrc': `threadPool:\n  maxWorkers: ${yamlValue}\n` })
      const result = await runPtr(['config', 'view'], { cwd: p.dir })
      assert.equal(result.code, 2, result.stdout)
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
      assert.match(result.stderr, new RegExp(`^ptr: config file ${escape(p.path('.prefectrc'))}: threadPool\\.maxWorkers must be an integer from 1 and up`))
    })

    test(`environment: PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS=${bad}`, async () => {
      const p = project()
      const result = await runPtr(['run', FIXTURE, '--param', 'out=x.json'], { cwd: p.dir, env: { PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS: bad } })
      assert.equal(result.code, 2)
      assert.equal(
        result.stderr.trim(),
        `ptr: environment variable PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS: threadPool.maxWorkers must be an integer from 1 and up, got '${bad}'`,
      )
    })

    test(`environment alias: PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS=${bad}`, async () => {
      const p = project()
      const result = await runPtr(['config', 'view'], { cwd: p.dir, env: { PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS: bad } })
      assert.equal(result.code, 2)
      assert.match(result.stderr, /^ptr: environment variable PREFECT_TASKS_RUNNER_PROCESS_POOL_MAX_WORKERS: processPool\.maxWorkers must be an integer from 1 and up/)
    })

    for (const flag of ['--max-workers', '--max-concurrency']) {
      test(`flag: ${flag} ${bad}`, async () => {
        const p = project()
        const result = await runPtr(['run', FIXTURE, '--param', 'out=x.json', `${flag}=${bad}`], { cwd: p.dir })
        assert.equal(result.code, 2)
        assert.equal(result.stderr.trim(), `ptr: flag ${flag} must be an integer from 1 and up, got '${bad}'`)
      })
    }
  }

  const kinds = RUNNER_KINDS.join(', ')
  test('unknown runner from a config file', async () => {
    const p = project({ '.prefectrc.json': '{ "runner": "warp" }' })
    const result = await runPtr(['run', FIXTURE, '--param', 'out=x.json'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.equal(result.stderr.trim(), `ptr: config file ${p.path('.prefectrc.json')}: runner must be one of: ${kinds}, got 'warp'`)
  })

  test('unknown runner from the environment', async () => {
    const p = project()
    const result = await runPtr(['config', 'view'], { cwd: p.dir, env: { PREFECT_TASK_RUNNER: 'warp' } })
    assert.equal(result.code, 2)
    assert.equal(result.stderr.trim(), `ptr: environment variable PREFECT_TASK_RUNNER: runner must be one of: ${kinds}, got 'warp'`)
  })

  test('unknown runner from a flag', async () => {
    const p = project()
    const result = await runPtr(['run', FIXTURE, '--param', 'out=x.json', '--runner', 'warp'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.equal(result.stderr.trim(), `ptr: flag --runner must be one of: ${kinds}, got 'warp'`)
  })

  test('unknown key in a config file, with a suggestion', async () => {
    const p = project({ '.prefectrc': 'threadPool:\n  maxWorker: 4\n' })
    const result = await runPtr(['config', 'view'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.match(result.stderr, new RegExp(`^ptr: config file ${escape(p.path('.prefectrc'))}: unknown key 'threadPool\\.maxWorker' \\(did you mean 'threadPool\\.maxWorkers'\\?\\); known keys: runner, `))
  })

  test('every unknown key in a config file is reported at once', async () => {
    const p = project({ '.prefectrc': 'runer: thread\nthreadPool:\n  maxWorker: 4\ncolour: never\n' })
    const result = await runPtr(['config', 'view'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr)
    assert.match(result.stderr, /unknown keys 'runer' \(did you mean 'runner'\?\), 'threadPool\.maxWorker' \(did you mean 'threadPool\.maxWorkers'\?\), 'colour' \(did you mean 'color'\?\); known keys: /)
  })

  test('wrong type in a config file', async () => {
    const p = project({ '.prefectrc.json': '{ "runner": 3 }' })
    const result = await runPtr(['config', 'view'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.match(result.stderr, /runner must be one of: .*, got 3 \(number\)$/m)
  })

  test('a config file that is not valid YAML', async () => {
    const p = project({ '.prefectrc': 'runner: [\n' })
    const result = await runPtr(['config', 'view'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.match(result.stderr, new RegExp(`^ptr: config file ${escape(p.path('.prefectrc'))} could not be parsed`))
  })
})

describe('ptr config view output', () => {
  test('plain: one line per setting; --show-sources adds the source', async () => {
    const p = project({ '.prefectrc': 'logLevel: DEBUG\n' })
    const plain = await runPtr(['config', 'view'], { cwd: p.dir, env: { PREFECT_OUTPUT: 'plain' } })
    assert.equal(plain.code, 0, plain.stderr)
    const lines = plain.stdout.trim().split('\n')
    assert.equal(lines.length, SETTINGS.length)
    assert.match(plain.stdout, /^output +plain$/m)
    assert.doesNotMatch(plain.stdout, /PREFECT_OUTPUT/)
    const sourced = await runPtr(['config', 'view', '--show-sources'], { cwd: p.dir, env: { PREFECT_OUTPUT: 'plain' } })
    assert.match(sourced.stdout, /^output +plain +env PREFECT_OUTPUT$/m)
    assert.match(sourced.stdout, new RegExp(`^logLevel +debug +file ${escape(p.path('.prefectrc'))}$`, 'm'))
    assert.match(sourced.stdout, /^localDir +\.ptr +default$/m)
  })

  test('its help lists the setting flags it takes, asked either way (view --help, help view)', async () => {
    const p = project()
    for (const args of [['config', 'view', '--help'], ['config', 'help', 'view']]) {
      const help = await runPtr(args, { cwd: p.dir })
      assert.equal(help.code, 0, help.stderr)
      for (const flag of ['--runner', '--max-workers', '--max-concurrency', '--output', '--log-level', '--color', '--queue']) {
        assert.match(help.stdout, new RegExp(`^ {2}${flag} <value>`, 'm'), `${args.join(' ')}: ${flag}`)
      }
    }
  })

  test('a PREFECT_ variable one typo from a known one gets a hint; unrelated ones do not', async () => {
    const p = project()
    const result = await runPtr(['config', 'view'], {
      cwd: p.dir,
      env: { PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKER: '3', PREFECT_API_URL: 'http://localhost:4200/api' },
    })
    assert.equal(result.code, 0)
    assert.equal(
      result.stderr.trim(),
      'ptr: hint: environment variable PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKER is not a ptr setting and is ignored; did you mean PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS?',
    )
  })

  test('a password in the queue URL is never printed', async () => {
    const p = project()
    const json = await view([], { cwd: p.dir, env: { PREFECT_QUEUE_URL: 'redis://user:s3cret@example.com:6379/0' } })
    assert.equal(json.settings['queue.url']?.value, 'redis://user:***@example.com:6379/0')
    const plain = await runPtr(['config', 'view'], { cwd: p.dir, env: { PREFECT_QUEUE_URL: 'redis://user:s3cret@example.com:6379/0' } })
    assert.doesNotMatch(plain.stdout, /s3cret/)
    const flag = await view(['--queue', 'rediss://:s3cret@example.com:6380/1'], { cwd: p.dir })
    assert.equal(flag.settings['queue.url']?.value, 'rediss://:***@example.com:6380/1')
    assert.equal(flag.settings['queue.url']?.source, 'flag --queue')
    const bad = await runPtr(['config', 'view', '--queue', 'mysql://user:s3cret@example.com/db'], { cwd: p.dir })
    assert.equal(bad.code, 2)
    assert.doesNotMatch(bad.stdout + bad.stderr, /s3cret/)
  })
})

describe('queue settings', () => {
  test('ptr runs reads queue.url from .prefectrc, and the default queue file lives under localDir', async () => {
    const p = project({ '.prefectrc': 'queue:\n  url: sqlite:custom/q.db\nworker:\n  leaseSeconds: 2.5\n  maxLostLeases: 4\n' })
    const json = await view([], { cwd: p.dir })
    assert.equal(json.settings['worker.leaseSeconds']?.value, 2.5)
    assert.equal(json.settings['worker.maxLostLeases']?.value, 4)
    const listed = await runPtr(['runs', 'list'], { cwd: p.dir })
    assert.equal(listed.code, 0, listed.stderr)
    assert.ok(existsSync(p.path('custom', 'q.db')), 'the queue named in .prefectrc was opened')
    const q = project()
    const local = await runPtr(['runs', 'list'], { cwd: q.dir, env: { PREFECT_LOCAL_DIR: 'state' } })
    assert.equal(local.code, 0, local.stderr)
    assert.ok(existsSync(q.path('state', 'queue.db')), 'the default queue is <localDir>/queue.db')
    // Relative paths in a config file are relative to that file, wherever ptr runs from below it.
    const r = project({ '.prefectrc': 'localDir: state\n', 'sub/deeper/.keep': '' })
    const fromBelow = await runPtr(['runs', 'list'], { cwd: r.path('sub', 'deeper') })
    assert.equal(fromBelow.code, 0, fromBelow.stderr)
    assert.ok(existsSync(r.path('state', 'queue.db')), 'localDir from .prefectrc is next to it')
    assert.ok(!existsSync(r.path('sub', 'deeper', 'state')), 'not under the current folder')
    writeFileSync(r.path('.prefectrc'), 'queue:\n  url: sqlite:custom/q.db\n')
    assert.equal((await runPtr(['runs', 'list'], { cwd: r.path('sub', 'deeper') })).code, 0)
    assert.ok(existsSync(r.path('custom', 'q.db')), 'a relative sqlite: path in .prefectrc is next to it')
    const badLease = await runPtr(['runs', 'list'], { cwd: q.dir, env: { PREFECT_TASK_WORKER_LEASE_SECONDS: '0' } })
    assert.equal(badLease.code, 2)
    assert.match(badLease.stderr, /PREFECT_TASK_WORKER_LEASE_SECONDS/)
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
