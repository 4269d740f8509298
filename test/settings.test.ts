/**
 * The settings module in process: the example file, TypeScript config files, env hints,
 * the frozen result. CLI behaviour is in settings-cli.test.ts.
 */
import assert from 'node:assert/strict'
import { copyFileSync, readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { defaultLoaders } from 'cosmiconfig'
import { configViewCommand } from '../src/cli/config-view.ts'
import { ConcurrentTaskRunner } from '../src/runners/concurrent.ts'
import { envHints, resolveSettings } from '../src/settings/resolve.ts'
import { flowRunnerInfo, runnerForRun } from '../src/settings/runner.ts'
import { SETTINGS, SETTING_KEYS } from '../src/settings/schema.ts'
import { REPO, runPtr, tempProject } from './helpers/cli.ts'

const projects: Array<{ remove: () => void }> = []
after(() => {
  for (const project of projects) project.remove()
})
function project(files: Record<string, string> = {}) {
  const p = tempProject({ 'package.json': '{ "name": "settings-unit", "private": true }\n', ...files })
  projects.push(p)
  return p
}

/** `{ a: { b: 1 }, c: 2 }` → `['a.b', 'c']` */
function flatKeys(object: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(object).flatMap(([key, value]) =>
    value !== null && typeof value === 'object' && !Array.isArray(value) ? flatKeys(value as Record<string, unknown>, `${prefix}${key}.`) : [`${prefix}${key}`],
  )
}

describe('.prefectrc.example', () => {
  const examplePath = path.join(REPO, '.prefectrc.example')

  test('every key in it is a real setting, and every setting appears in it', async () => {
    const parsed = (await defaultLoaders['.yaml'](examplePath, readFileSync(examplePath, 'utf8'))) as Record<string, unknown>
    const keys = flatKeys(parsed)
    for (const key of keys) assert.ok(SETTING_KEYS.includes(key as never), `.prefectrc.example has '${key}', which is not a setting`)
    for (const key of SETTING_KEYS) assert.ok(keys.includes(key), `.prefectrc.example lacks the setting '${key}'`)
  })

  test('it is a valid config file whose values are the defaults', async () => {
    const p = project()
    copyFileSync(examplePath, p.path('.prefectrc'))
    const resolved = await resolveSettings({ cwd: p.dir, env: {} })
    for (const spec of SETTINGS) {
      const setting = resolved.settings[spec.key]
      assert.equal(setting.source.type, 'file', `${spec.key} was not read from the example`)
      assert.equal(setting.value, spec.default, `.prefectrc.example gives ${spec.key} = ${String(setting.value)}, but its default is ${String(spec.default)}`)
    }
  })

  test('every line above a setting explains it', () => {
    const lines = readFileSync(examplePath, 'utf8').split('\n')
    for (const [index, line] of lines.entries()) {
      if (!/^\s*\w+: \S/.test(line)) continue
      assert.match(lines[index - 1] ?? '', /^\s*#/, `.prefectrc.example line ${index + 1} (${line.trim()}) has no comment above it`)
    }
  })
})

test('docs/settings.md lists every setting, variable and flag', () => {
  const docs = readFileSync(path.join(REPO, 'docs', 'settings.md'), 'utf8')
  for (const spec of SETTINGS) {
    assert.ok(docs.includes(`\`${spec.key}\``), `docs/settings.md lacks the key ${spec.key}`)
    for (const name of spec.env) assert.ok(docs.includes(name), `docs/settings.md lacks ${name}`)
    if (spec.flag) assert.ok(docs.includes(spec.flag), `docs/settings.md lacks ${spec.flag}`)
  }
})

describe('TypeScript config files', () => {
  const shared = `export type Kind = 'sequential' | 'concurrent'\nexport const kind: Kind = 'sequential'\nexport const limit = (n: number): number => n * 2\n`

  test('prefect.config.ts loads through tsx, imports another .ts file, and leaves no files behind', async () => {
    const p = project({
      'shared.ts': shared,
      'prefect.config.ts': `import { kind, limit } from './shared.ts'\ninterface Config { runner: string; concurrent: { maxConcurrency: number } }\nconst config: Config = { runner: kind, concurrent: { maxConcurrency: limit(3) } }\nexport default config\n`,
    })
    const before = readdirSync(p.dir).sort()
    const resolved = await resolveSettings({ cwd: p.dir, env: {} })
    assert.equal(resolved.configFile, p.path('prefect.config.ts'))
    assert.equal(resolved.settings.runner.value, 'sequential')
    assert.equal(resolved.settings['concurrent.maxConcurrency'].value, 6)
    assert.deepEqual(readdirSync(p.dir).sort(), before)
  })

  test('.prefectrc.cts (CommonJS) and .prefectrc.mts load', async () => {
    const cjs = project({ '.prefectrc.cts': `const workers: number = 2\nmodule.exports = { processPool: { maxWorkers: workers } }\n` })
    assert.equal((await resolveSettings({ cwd: cjs.dir, env: {} })).settings['processPool.maxWorkers'].value, 2)
    const esm = project({ 'shared.ts': shared, '.prefectrc.mts': `import { limit } from './shared.ts'\nexport default { worker: { limit: limit(4) } }\n` })
    assert.equal((await resolveSettings({ cwd: esm.dir, env: {} })).settings['worker.limit'].value, 8)
  })

  test('through the ptr binary, with a bad value named by file and key', async () => {
    const p = project({ 'shared.ts': shared, '.prefectrc.ts': `import { limit } from './shared.ts'\nexport default { threadPool: { maxWorkers: limit(0) } }\n` })
    const before = readdirSync(p.dir).sort()
    const result = await runPtr(['config', 'view'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.equal(
      result.stderr.trim(),
      `ptr: config file ${p.path('.prefectrc.ts')}: threadPool.maxWorkers must be an integer from 1 and up (or null: the runner's own default), got 0 (number)`,
    )
    assert.deepEqual(readdirSync(p.dir).sort(), before)
  })

  test('a .ts config that does not compile exits 2 naming the file', async () => {
    const p = project({ 'prefect.config.ts': `export default { runner: 'sequential' ` })
    const result = await runPtr(['config', 'view'], { cwd: p.dir })
    assert.equal(result.code, 2)
    assert.match(result.stderr, new RegExp(`^ptr: config file ${p.path('prefect.config.ts').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} could not be`))
  })
})

describe('resolution', () => {
  test('the result is frozen and every value has a source', async () => {
    const p = project()
    const resolved = await resolveSettings({ cwd: p.dir, env: { PREFECT_LOGGING_LEVEL: 'WARNING' }, flags: { '--runner': 'sequential' } })
    assert.ok(Object.isFrozen(resolved) && Object.isFrozen(resolved.settings) && Object.isFrozen(resolved.settings.runner))
    assert.deepEqual(resolved.settings.logLevel, { key: 'logLevel', value: 'warning', source: { type: 'env', name: 'PREFECT_LOGGING_LEVEL' } })
    assert.deepEqual(resolved.settings.runner.source, { type: 'flag', name: '--runner' })
    assert.deepEqual(Object.keys(resolved.settings), [...SETTING_KEYS])
  })

  test('the canonical variable wins over its alias; an empty variable counts as unset', async () => {
    const p = project()
    const both = await resolveSettings({
      cwd: p.dir,
      env: { PREFECT_TASK_RUNNER_THREAD_POOL_MAX_WORKERS: '5', PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS: '9' },
    })
    assert.equal(both.settings['threadPool.maxWorkers'].value, 5)
    const empty = await resolveSettings({ cwd: p.dir, env: { PREFECT_TASK_RUNNER: '' } })
    assert.equal(empty.settings.runner.source.type, 'default')
  })

  test('a concurrency slot lease too short to be a whole millisecond is refused, naming the variable', async () => {
    const p = project()
    await assert.rejects(resolveSettings({ cwd: p.dir, env: { PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS: '0.0004' } }), /PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS.*0\.001/s)
    const ok = await resolveSettings({ cwd: p.dir, env: { PREFECT_CONCURRENCY_SLOT_LEASE_SECONDS: '0.5' } })
    assert.equal(ok.settings['concurrency.slotLeaseSeconds'].value, 0.5)
  })

  test('hints: near misses only', () => {
    assert.deepEqual(envHints({ PREFECT_API_URL: 'x', PREFECT_HOME: 'x', PREFECT_LOGGING_LEVEL: 'info', PATH: '/bin' }), [])
    assert.equal(envHints({ PREFECT_TASKS_RUNNER_CONCURRENT_MAX_CONCURRENCY: '3' }).length, 1)
    assert.match(envHints({ prefect_output: 'plain' })[0] ?? '', /did you mean PREFECT_OUTPUT\?/)
  })
})

describe('runnerForRun: what flow.run() is given', () => {
  const withRunner = { name: 'f', options: { taskRunner: new ConcurrentTaskRunner({ maxConcurrency: 3 }) } }
  const noRunner = { name: 'g', options: {} }
  const decide = async (flow: typeof withRunner | typeof noRunner, env: Record<string, string>, flags: Record<string, string> = {}) => {
    const p = project()
    const flowRunner = flowRunnerInfo(flow)
    return runnerForRun(await resolveSettings({ cwd: p.dir, env, flags, flowRunner }), flowRunner)
  }
  const describeRunner = (runner: { name: string; options?: unknown } | undefined) => runner && { kind: runner.name, options: runner.options }

  test("the flow's own runner, untouched, when nothing outranks it", async () => {
    assert.deepEqual(await decide(withRunner, { PREFECT_TASK_RUNNER: 'sequential', PREFECT_TASK_RUNNER_CONCURRENT_MAX_CONCURRENCY: '9' }), {})
  })

  test('a flag replaces it (taskRunner)', async () => {
    const chosen = await decide(withRunner, {}, { '--max-concurrency': '2' })
    assert.equal(chosen.defaultTaskRunner, undefined)
    assert.deepEqual(describeRunner(chosen.taskRunner), { kind: 'concurrent', options: { maxConcurrency: 2 } })
  })

  test('environment and file only fill in a flow that names no runner (defaultTaskRunner)', async () => {
    const chosen = await decide(noRunner, { PREFECT_TASK_RUNNER: 'sequential' })
    assert.equal(chosen.taskRunner, undefined)
    assert.equal(chosen.defaultTaskRunner?.name, 'sequential')
    const flagged = await decide(noRunner, {}, { '--runner': 'sequential' })
    assert.equal(flagged.taskRunner?.name, 'sequential')
  })
})

test('ptr config view in process: plain text with sources', async () => {
  const p = project({ '.prefectrc.json': '{ "worker": { "limit": 4 } }' })
  let stdout = ''
  let stderr = ''
  const sink = (write: (s: string) => void) => ({ write: (chunk: string) => (write(chunk), true) }) as unknown as NodeJS.WritableStream
  const code = await configViewCommand({
    cwd: p.dir,
    env: { PREFECT_COLOUR: 'never' },
    flags: { '--color': 'never' },
    showSources: true,
    json: false,
    stdout: sink((s) => (stdout += s)),
    stderr: sink((s) => (stderr += s)),
  })
  assert.equal(code, 0)
  assert.match(stdout, new RegExp(`^worker\\.limit +4 +file ${p.path('.prefectrc.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'))
  assert.match(stdout, /^color +never +flag --color$/m)
  assert.match(stderr, /PREFECT_COLOUR .* did you mean PREFECT_COLOR\?/)
})
