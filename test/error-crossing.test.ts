/**
 * Errors from the user's code keep their class, message, stack, cause and own data across every
 * runner (sequential, concurrent, thread, process) and through the queue's stored errors.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import type { TaskRunner } from '../src/index.ts'
import { loadError, storeError } from '../src/queue/codec.ts'
import * as E from './fixtures/error-tasks.ts'
import { RUNNERS_UNDER_TEST } from './helpers/runners.ts'

const HELPER = fileURLToPath(new URL('./fixtures/error-helper.ts', import.meta.url))
/** The line of the helper's `throw`, found by its marker. */
const THROW_LINE = readFileSync(HELPER, 'utf8').split('\n').findIndex((line) => line.includes('// THROWS HERE')) + 1

/** Checks what every channel must keep; `error` is what the flow sees. */
function checkKind(kind: string, error: unknown): void {
  assert.ok(error instanceof Error, kind)
  const builtins: Record<string, [new (...args: never[]) => Error, string, string]> = {
    range: [RangeError, 'RangeError', 'too far'],
    syntax: [SyntaxError, 'SyntaxError', 'bad syntax'],
    reference: [ReferenceError, 'ReferenceError', 'x is not defined'],
    eval: [EvalError, 'EvalError', 'bad eval'],
    uri: [URIError, 'URIError', 'bad uri'],
  }
  const builtin = builtins[kind]
  if (builtin) {
    assert.ok(error instanceof builtin[0], `${kind}: ${error.name} is not a ${builtin[1]}`)
    assert.equal(error.name, builtin[1])
    assert.equal(error.message, builtin[2])
  } else if (kind === 'code') {
    assert.equal(error.message, 'no such file')
    assert.deepEqual({ ...(error as unknown as Record<string, unknown>) }, { code: 'ENOENT', errno: -2, path: '/nope' })
  } else if (kind === 'aggregate') {
    assert.ok(error instanceof AggregateError, 'an AggregateError')
    assert.equal(error.errors.length, 2)
    assert.ok(error.errors[0] instanceof TypeError)
    assert.equal(error.errors[0].message, 'first')
    assert.ok(error.errors[1] instanceof RangeError)
  } else if (kind === 'abort') {
    assert.ok(error instanceof DOMException, 'a DOMException')
    assert.equal(error.name, 'AbortError')
    assert.equal(error.message, 'the operation was aborted')
  } else if (kind === 'custom') {
    assert.equal(error.name, 'QuotaError')
    assert.equal(error.message, 'over quota')
    assert.equal((error as E.QuotaError).limit, 10)
    const cause = error.cause as E.QuotaError
    assert.ok(cause instanceof Error)
    assert.equal(cause.name, 'QuotaError')
    assert.equal(cause.limit, 5)
    assert.match(cause.stack ?? '', /error-tasks\.ts:\d+/)
    assert.ok(cause.cause instanceof TypeError)
    assert.equal(cause.cause.message, 'root cause')
  }
  assert.match(error.stack ?? '', /error-tasks\.ts:\d+:\d+/, `${kind}: the stack names the task's file`)
}

const KINDS = ['range', 'code', 'syntax', 'reference', 'eval', 'uri', 'aggregate', 'abort', 'custom']

for (const runnerUnderTest of RUNNERS_UNDER_TEST) {
  describe(`errors cross the ${runnerUnderTest.kind} runner`, () => {
    const opened: TaskRunner[] = []
    after(async () => {
      await Promise.all(opened.map((r) => r.close()))
    })
    const make = () => {
      const runner = runnerUnderTest.create(2)
      opened.push(runner)
      return runner
    }

    it("a TypeError from a helper in another .ts file: instanceof TypeError, and its stack names that file and line", async () => {
      const runner = make()
      const state = await runner.submit(E.measure, ['circle']).wait()
      assert.equal(state.type, 'Failed')
      const error = state.error
      assert.ok(error instanceof TypeError, `got ${error?.constructor.name}`)
      assert.equal(error.message, 'cannot measure a circle')
      assert.ok(error.stack?.includes(`error-helper.ts:${THROW_LINE}:`), `the stack should name ${HELPER}:${THROW_LINE}:\n${error.stack}`)
    })

    it('built-in classes, AggregateError, DOMException, codes, user classes and causes keep what they are', async () => {
      const runner = make()
      const states = await Promise.all(KINDS.map((kind) => runner.submit(E.throwKind, [kind]).wait()))
      states.forEach((state, i) => {
        assert.equal(state.type, 'Failed', KINDS[i])
        checkKind(KINDS[i]!, state.error)
      })
    })
  })
}

describe("errors stored on the queue", () => {
  it('storeError() and loadError() keep classes, stacks, causes and own data through JSON', async () => {
    for (const kind of KINDS) {
      const thrown = await Promise.resolve().then(() => E.throwKind.fn(kind)).then(
        () => undefined,
        (error: unknown) => error,
      )
      // The backends keep a stored error as JSON.
      const stored = JSON.parse(JSON.stringify(storeError(thrown)))
      checkKind(kind, loadError(stored, 'Failed', 'Failed', 'run-1'))
    }
  })
})
