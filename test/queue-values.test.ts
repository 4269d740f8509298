/**
 * `t.delay()` refuses, at the call, arguments the queue cannot store as they are: functions,
 * symbols, and instances of classes (they would arrive as plain objects, without their methods).
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import path from 'node:path'
import { ConcurrentTaskRunner, PrefectTaskRunner } from '../src/index.ts'
import { tempDir } from './helpers/cli.ts'
import { Point } from './fixtures/pool-tasks.ts'
import * as T from './fixtures/tasks.ts'

describe('t.delay() with a value that cannot be stored', () => {
  it('throws at the call, naming the task and where the value is; also with a future in the arguments', async () => {
    assert.throws(
      () => T.echo.delay(new Point(1, 2)),
      /an argument of 'echo' cannot be stored on the queue: args\[0\] is an instance of Point, which would arrive as a plain object, without its methods/,
    )
    assert.throws(() => T.echo.delay({ callback: () => 1 }), /an argument of 'echo' cannot be stored on the queue/)
    await using runner = new ConcurrentTaskRunner()
    const upstream = runner.submit(T.sleeper, [20])
    // Its upstream has not ended yet: the rest of the arguments is checked now, not once it has.
    assert.throws(() => T.echo.delay({ after: upstream, origin: new Point(0, 0) }), /an argument of 'echo' cannot be stored on the queue: args\[0\]\.origin is an instance of Point/)
    await upstream.wait()
  })
})

describe('PrefectTaskRunner with a value that cannot be stored', () => {
  it('fails that run before it is queued, naming the task run and the argument path', async () => {
    const dir = tempDir()
    try {
      await using runner = new PrefectTaskRunner({ queue: `sqlite:${path.join(dir.dir, 'queue.db')}` })
      const state = await runner.submit(T.echo, [new Point(1, 2)]).wait()
      assert.equal(state.type, 'Failed')
      assert.match(state.error?.message ?? '', /an argument of 'echo-\d+' cannot be stored on the queue: args\[0\] is an instance of Point/)
    } finally {
      dir.cleanup()
    }
  })
})
