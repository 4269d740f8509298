/**
 * Types flow end to end. These checks run in `npm test`'s type check (tsc): each
 * `@ts-expect-error` fails the build if the line ever stops being an error, and each
 * `expectType` fails it if the inferred type changes.
 */
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { Completed, ConcurrentTaskRunner, Failed, allowFailure, flow, tags, task, unmapped } from '../src/index.ts'
import type { PrefectFuture, PrefectFutureList, State, StateTask, Task, TaskRunInfo } from '../src/index.ts'

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const expectType = <T>(_value: T) => ({ is: <U>(..._proof: Equals<T, U> extends true ? [] : [never]) => undefined })

export const toText = task({ name: 'to_text' }, async (n: number) => `#${n}`)
export const join = task({ name: 'join' }, (parts: string[], separator: string) => parts.join(separator))
export const tolerant = task({ name: 'tolerant' }, (value: number | Error) => (value instanceof Error ? -1 : value))
// A task that may return a state has the state's value as its value.
export const maybe = task({ name: 'maybe' }, (n: number) => (n > 0 ? n : Failed({ message: 'not positive' })))
export const wrapped = task({ name: 'wrapped' }, () => Completed({ result: 'w' }))
// Hooks get the task, the run's info and the state.
export const hooked = task(
  {
    name: 'hooked',
    onFailure: (t, run, state) => {
      expectType(t).is<Task<[n: number], any>>()
      expectType(run).is<TaskRunInfo>()
      expectType(state).is<State>()
    },
    onCompletion: [async () => undefined],
  },
  (n: number) => n,
)

const typesFlow = flow({ name: 'types', taskRunner: new ConcurrentTaskRunner() }, async ({ n }: { n: number }) => {
  const text = toText.submit(n)
  expectType(text).is<PrefectFuture<string>>()
  // A future of T is accepted where T is, also inside arrays.
  const joined = join.submit([text, 'literal'], ', ')
  expectType(joined).is<PrefectFuture<string>>()
  const many = toText.map([1, 2, 3])
  expectType(many).is<PrefectFutureList<string>>()
  expectType(join.map([['a'], ['b']], unmapped('-'))).is<PrefectFutureList<string>>()
  expectType(await toText(n)).is<string>()
  expectType(await text.result()).is<string>()
  expectType(await text.result({ raiseOnFailure: false })).is<string | Error>()
  // allowFailure() only where the parameter admits an Error.
  tolerant.submit(allowFailure(toText.submit(1) as unknown as PrefectFuture<number>))
  // @ts-expect-error a future of string is not a number
  toText.submit(text)
  // @ts-expect-error allowFailure() where the task cannot take an Error
  toText.submit(allowFailure(toText.submit(1) as unknown as PrefectFuture<number>))
  // @ts-expect-error waitFor takes futures
  toText.withOptions({ waitFor: [1] })
  toText.withOptions({ waitFor: [allowFailure(text), [text]] })
  expectType(maybe.submit(1)).is<PrefectFuture<number>>()
  expectType(await wrapped()).is<string>()
  // returnState: calls and submit() resolve to the final state.
  const stateful = toText.withOptions({ returnState: true })
  expectType(stateful).is<StateTask<[n: number], string>>()
  expectType(await stateful(1)).is<State<string>>()
  expectType(await stateful.submit(1)).is<State<string>>()
  expectType(stateful.withOptions({ returnState: false })).is<Task<[n: number], string>>()
  expectType(await many.result({ raiseOnFailure: false })).is<(string | Error)[]>()
  expectType(await many.result()).is<string[]>()
  expectType(await tags(['a'], async () => toText(1))).is<string>()
  // @ts-expect-error tags() takes a list of strings
  void (() => tags('a', () => 1))
  // allowFailure() over a whole list, where the items admit an Error.
  tolerant.map(allowFailure(toText.map([1]) as unknown as PrefectFutureList<number>))
  return joined.result()
})

it('the typed flow runs', async () => {
  expectType(typesFlow).is<import('../src/index.ts').Flow<{ n: number }, string>>()
  // @ts-expect-error the flow's parameters are required and typed
  void (() => typesFlow({ n: 'x' }))
  assert.equal(await typesFlow({ n: 7 }), '#7, literal')
})
