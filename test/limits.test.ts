/**
 * The limits against every store (a real SQLite file, a real redis-server): one suite, run
 * unchanged against both. Two `Limits` on two connections stand for two processes.
 */
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { after, before, describe, it, mock } from 'node:test'
import { Redis } from 'ioredis'
import { Limits, LimitNotFoundError } from '../src/limits/limits.ts'
import { closeDefaultLimits, defaultLimits, openLimitStore } from '../src/limits/open.ts'
import type { LimitStore } from '../src/limits/store.ts'
import { ConcurrentTaskRunner, concurrency, flow, getRunContext, rateLimit, task } from '../src/index.ts'
import type { State } from '../src/index.ts'
import { setDefaultQueue } from '../src/queue/open.ts'
import { tempDir } from './helpers/cli.ts'
import { maxOverlap } from './helpers/overlap.ts'
import { redisSkipReason, startRedis } from './helpers/redis.ts'
import type { TestRedis } from './helpers/redis.ts'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface StoreUnderTest {
  name: string
  skip?: string | undefined
  start(): Promise<{ url: string; stop(): Promise<void> }>
}

const STORES: StoreUnderTest[] = [
  {
    name: 'SQLite',
    async start() {
      const { dir, cleanup } = tempDir('ptr-limits-')
      return { url: `sqlite:${dir}/queue.db`, stop: async () => cleanup() }
    },
  },
  {
    name: 'Redis',
    skip: redisSkipReason(),
    async start() {
      const redis: TestRedis = await startRedis()
      return { url: redis.url, stop: () => redis.stop() }
    },
  },
]

for (const under of STORES) {
  describe(`limits on ${under.name}`, { skip: under.skip }, () => {
    let target: { url: string; stop(): Promise<void> }
    const opened: (Limits | LimitStore)[] = []
    let admin: LimitStore
    let uniq = 0
    /** A fresh limit name per test: the store is shared by the tests of this suite. */
    const fresh = (what: string) => `${what}-${++uniq}`
    const limits = async (leaseMs = 5_000) => {
      const made = new Limits((await openLimitStore(target.url))!, { leaseMs, warn: () => undefined })
      opened.push(made)
      return made
    }

    before(async () => {
      target = await under.start()
      admin = (await openLimitStore(target.url))!
      opened.push(admin)
    })
    after(async () => {
      setDefaultQueue(undefined)
      await closeDefaultLimits()
      for (const o of opened.reverse()) await o.close()
      await target.stop()
    })

    it('create, list, inspect, reset and delete', async () => {
      const name = fresh('db')
      assert.equal(await admin.create(name, 2, 0), 'created')
      assert.equal(await admin.create(name, 3, 0), 'updated')
      const a = await limits()
      const held = await a.acquire([name], { holder: 'run-a (1)' })
      const info = await admin.get(name)
      assert.equal(info?.limit, 3)
      assert.equal(info?.active, 1)
      assert.deepEqual(info?.holders.map((h) => h.holder), ['run-a (1)'])
      assert.ok((await admin.list()).some((l) => l.name === name))
      assert.equal(await admin.reset(name), true)
      assert.equal((await admin.get(name))?.active, 0, 'reset frees every slot')
      await held.release()
      assert.equal(await admin.delete(name), true)
      assert.equal(await admin.get(name), undefined)
      assert.equal(await admin.delete(name), false)
      assert.equal(await admin.reset(name), false)
    })

    it('never more holders than the limit, across two handles, and every waiter gets its turn', async () => {
      const name = fresh('db')
      await admin.create(name, 2, 0)
      const [a, b] = [await limits(), await limits()]
      const spans: { start: number; end: number }[] = []
      await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const held = await (i % 2 ? a : b).acquire([name])
          const start = Date.now()
          await sleep(40)
          spans.push({ start, end: Date.now() })
          await held.release()
        }),
      )
      assert.equal(spans.length, 12)
      assert.equal(maxOverlap(spans), 2)
      assert.equal((await admin.get(name))?.active, 0, 'all slots given back')
    })

    it('waiters go oldest first, across handles', async () => {
      const name = fresh('line')
      await admin.create(name, 1, 0)
      const [a, b] = [await limits(), await limits()]
      const first = await a.acquire([name])
      const order: number[] = []
      const waits: Promise<void>[] = []
      for (let i = 0; i < 6; i++) {
        waits.push((i % 2 ? a : b).acquire([name], { onWait: () => undefined }).then(async (held) => {
          order.push(i)
          await held.release()
        }))
        // Each in line before the next asks (the store decides the order, not the event loop).
        await sleep(30)
      }
      await first.release()
      await Promise.all(waits)
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5])
    })

    it('many acquisitions at once behind a held slot: all get their turn, in order of arrival', async () => {
      const name = fresh('burst')
      await admin.create(name, 1, 0)
      const [a, b] = [await limits(), await limits()]
      const hold = await b.acquire([name])
      const order: number[] = []
      // Started in one turn: the first asks the store, the others wait behind it in this process.
      const all = Array.from({ length: 8 }, (_, i) => a.acquire([name]).then(async (held) => {
        order.push(i)
        await held.release()
      }))
      await sleep(100)
      assert.equal(order.length, 0)
      await hold.release()
      await Promise.all(all)
      assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7])
    })

    it('a run needing a free limit is not held up by waiters of a full one', async () => {
      const [full, free] = [fresh('full'), fresh('free')]
      await admin.create(full, 1, 0)
      await admin.create(free, 1, 0)
      const a = await limits()
      const hold = await a.acquire([full])
      const waiting = a.acquire([full])
      const other = await a.acquire([free])
      await other.release()
      await hold.release()
      ;(await waiting).release()
    })

    it('slots of a holder that stops renewing are free again after the lease', async () => {
      const name = fresh('lease')
      await admin.create(name, 1, 0)
      // A holder that dies: slots taken straight from the store, never renewed nor released.
      const dead = (await openLimitStore(target.url))!
      opened.push(dead)
      const taken = await dead.tryAcquire({ waiterId: 'dead-1', names: [name], occupy: 1, holder: 'dead', owner: 'gone:1', leaseMs: 600, mode: 'concurrency' })
      assert.equal(taken.ok, true)
      const b = await limits()
      const began = Date.now()
      const held = await b.acquire([name])
      const waited = Date.now() - began
      assert.ok(waited >= 450 && waited < 1_500, `got the slot ${waited} ms after the holder stopped (lease 600 ms)`)
      await held.release()
    })

    it('a slot is never counted twice: a late release of an expired lease does not free the new holder\'s slot', async () => {
      const name = fresh('twice')
      await admin.create(name, 1, 0)
      const stalled = (await openLimitStore(target.url))!
      opened.push(stalled)
      const old = await stalled.tryAcquire({ waiterId: 'stalled-1', names: [name], occupy: 1, holder: 'stalled', owner: 'slow:1', leaseMs: 300, mode: 'concurrency' })
      assert.ok(old.ok)
      const b = await limits()
      const held = await b.acquire([name], { holder: 'new holder' })
      // The stalled holder wakes up and gives back what it thinks it holds, and renews it.
      await stalled.release(old.slotIds)
      assert.deepEqual(await stalled.renew(old.slotIds, [], 5_000), [...old.slotIds], 'its lease is gone for good')
      const info = await admin.get(name)
      assert.equal(info?.active, 1)
      assert.deepEqual(info?.holders.map((h) => h.holder), ['new holder'])
      const third = b.acquire([name])
      let got = false
      void third.then(() => (got = true))
      await sleep(150)
      assert.equal(got, false, 'the limit still holds')
      await held.release()
      await (await third).release()
    })

    it('a live holder keeps its slot past the lease (it renews)', async () => {
      const name = fresh('renew')
      await admin.create(name, 1, 0)
      const a = await limits(300)
      const held = await a.acquire([name])
      await sleep(900)
      assert.equal((await admin.get(name))?.active, 1, 'still held after three leases')
      const controller = new AbortController()
      const other = a.acquire([name], { signal: controller.signal })
      await sleep(100)
      controller.abort(new Error('gave up'))
      await assert.rejects(other, /gave up/)
      assert.equal((await admin.get(name))?.waiting, 0, 'a waiter that gives up leaves the line')
      await held.release()
    })

    it('occupy takes several slots at once; more than the limit is an error', async () => {
      const name = fresh('wh')
      await admin.create(name, 3, 0)
      const a = await limits()
      const two = await a.acquire([name], { occupy: 2 })
      assert.equal((await admin.get(name))?.active, 2)
      const blocked = a.acquire([name], { occupy: 2 })
      let got = false
      void blocked.then(() => (got = true))
      await sleep(150)
      assert.equal(got, false, '2 + 2 > 3: waits')
      await two.release()
      ;(await blocked).release()
      await assert.rejects(a.acquire([name], { occupy: 4 }), /asks for 4 slots of '.*', which has 3/)
    })

    it('a waiter behind a dead waiter (slots free) goes on once the dead one\'s place in line expires', async () => {
      const name = fresh('deadline')
      await admin.create(name, 1, 0)
      const a = await limits(600)
      const held = await a.acquire([name])
      // A process that joins the line and dies: never renews its place, never leaves.
      const dead = (await openLimitStore(target.url))!
      opened.push(dead)
      const joined = await dead.tryAcquire({ waiterId: `dead-${name}`, names: [name], occupy: 1, holder: 'dead', owner: 'gone:2', leaseMs: 600, mode: 'concurrency' })
      assert.equal(joined.ok, false)
      const b = await limits(600)
      const waiting = b.acquire([name])
      await sleep(100)
      await held.release()
      const began = Date.now()
      const got = await Promise.race([waiting.then((h) => h), sleep(3_000).then(() => undefined)])
      assert.ok(got, 'the waiter behind the dead one got the slot within 3 s')
      assert.ok(Date.now() - began < 1_500, `got it ${Date.now() - began} ms after the release (dead waiter's lease 600 ms)`)
      await got.release()
    })

    it('a waiter whose other limit is deleted leaves no trace: a later acquisition of a re-created limit of that name goes on', async () => {
      const [x, y] = [fresh('x'), fresh('y')]
      await admin.create(x, 1, 0)
      await admin.create(y, 1, 0)
      const [a, b] = [await limits(), await limits()]
      const hold = await a.acquire([x])
      const waiting = b.acquire([x, y])
      await sleep(100)
      // B's next try finds no limit of that name and waits for the other alone.
      await admin.delete(y)
      await sleep(500)
      await admin.create(y, 1, 0)
      await sleep(500)
      await hold.release()
      await (await waiting).release()
      // Every wake of that release has passed: the next acquisition must ask the store itself.
      await sleep(500)
      const later = b.acquire([y])
      const got = await Promise.race([later, sleep(3_000).then(() => undefined)])
      assert.ok(got, `acquire(['${y}']) got its slot`)
      await got.release()
    })

    it('a waiter narrowed by a deleted limit does not hold up a later acquisition of a re-created limit of that name', async () => {
      const [x, y] = [fresh('x'), fresh('y')]
      await admin.create(x, 1, 0)
      await admin.create(y, 1, 0)
      const [a, b] = [await limits(), await limits()]
      const hold = await a.acquire([x])
      const waiting = b.acquire([x, y])
      await sleep(100)
      await admin.delete(y)
      await sleep(500)
      await admin.create(y, 1, 0)
      await sleep(500)
      // The first waiter still waits for the other limit: the re-created one is free.
      const later = b.acquire([y])
      const got = await Promise.race([later, sleep(2_000).then(() => undefined)])
      assert.ok(got, `acquire(['${y}']) got its free slot while the older waiter still waits for '${x}'`)
      await got.release()
      await hold.release()
      await (await waiting).release()
    })

    it('one-shot commands open no subscriber; the first watch does, and close ends it', { skip: under.name === 'Redis' ? false : 'Redis only' }, async () => {
      const raw = new Redis(target.url)
      const subscribers = async () => ((await raw.pubsub('NUMSUB', 'ptr:limits')) as [string, number])[1]
      try {
        const before = await subscribers()
        const store = (await openLimitStore(target.url))!
        const name = fresh('oneshot')
        await store.create(name, 1, 0)
        await store.list()
        await store.get(name)
        await store.reset(name)
        assert.equal(await subscribers(), before, 'create, ls, inspect, reset: one connection')
        const woken: number[] = []
        const unwatch = store.watch(() => woken.push(1))
        for (let i = 0; i < 100 && (await subscribers()) === before; i++) await sleep(10)
        assert.equal(await subscribers(), before + 1, 'watch subscribes')
        const at = woken.length
        await raw.publish('ptr:limits', 'free')
        for (let i = 0; i < 100 && woken.length === at; i++) await sleep(10)
        assert.ok(woken.length > at, 'and hears a release')
        unwatch()
        await store.close()
        for (let i = 0; i < 100 && (await subscribers()) !== before; i++) await sleep(10)
        assert.equal(await subscribers(), before, 'close ends the subscriber')
      } finally {
        raw.disconnect()
      }
    })

    it('deleting a limit releases its waiters', async () => {
      const name = fresh('gone')
      await admin.create(name, 1, 0)
      const a = await limits()
      const hold = await a.acquire([name], { strict: true })
      const waiter = a.acquire([name], { strict: true })
      await sleep(100)
      assert.equal((await admin.get(name))?.waiting, 1)
      const began = Date.now()
      await admin.delete(name)
      await waiter
      assert.ok(Date.now() - began < 1_000, 'released promptly')
      await hold.release()
    })

    it('concurrency() and rateLimit(): a name without a limit says how to create one', async () => {
      setDefaultQueue(target.url)
      try {
        await assert.rejects(concurrency(fresh('nope'), async () => 1), (error: Error) => error instanceof LimitNotFoundError && /ptr concurrency-limit create nope-\d+ 5/.test(error.message))
        await assert.rejects(rateLimit(fresh('nope')), /no concurrency limit named/)
        const plain = fresh('plain')
        await admin.create(plain, 1, 0)
        await assert.rejects(rateLimit(plain), /has no slot decay.*--slot-decay-per-second/)
      } finally {
        await closeDefaultLimits()
        setDefaultQueue(undefined)
      }
    })

    it('concurrency() holds the slots around the code and gives them back when it throws', async () => {
      setDefaultQueue(target.url)
      try {
        const name = fresh('warehouse')
        await admin.create(name, 2, 0)
        let inside = 0
        let peak = 0
        const body = async () => {
          inside += 2
          peak = Math.max(peak, inside)
          await sleep(50)
          inside -= 2
        }
        await Promise.all([concurrency(name, { occupy: 2 }, body), concurrency(name, { occupy: 2 }, body), concurrency(name, { occupy: 2 }, body)])
        assert.equal(peak, 2)
        await assert.rejects(concurrency(name, async () => { throw new Error('boom') }), /boom/)
        // Both slots held elsewhere: a timeout ends the wait with an error that names the limit.
        const other = await (await limits()).acquire([name], { occupy: 2 })
        const began = Date.now()
        await assert.rejects(concurrency(name, { timeoutSeconds: 0.3 }, async () => 1), new RegExp(`no slot of '${name}' within 0.3 s`))
        assert.ok(Date.now() - began >= 250)
        assert.equal((await admin.get(name))?.waiting, 0, 'it left the line')
        await other.release()
        assert.equal((await admin.get(name))?.active, 0)
      } finally {
        await closeDefaultLimits()
        setDefaultQueue(undefined)
      }
    })

    it('a task run waiting for a tag slot holds no runner slot: an untagged run behind it goes on; cancelling the flow run ends the wait', { timeout: 20_000 }, async () => {
      setDefaultQueue(target.url)
      try {
        const tag = fresh('tag')
        await admin.create(tag, 1, 0)
        const outside = await limits()
        const hold = await outside.acquire([tag])
        const limited = task({ name: `limited_${tag}`, tags: [tag] }, async () => 'limited ran')
        const free = task({ name: `free_${tag}` }, async () => 'free ran')
        const seen: State[] = []
        let freeValue: unknown
        const controller = new AbortController()
        const demo = flow({ name: `limits_${tag}`, taskRunner: new ConcurrentTaskRunner({ maxConcurrency: 1 }) }, async () => {
          const waiting = limited.submit()
          while (waiting.state.name !== 'AwaitingConcurrencySlot') await sleep(5)
          seen.push(waiting.state)
          freeValue = await free.submit().result()
          controller.abort(new Error('stop'))
          return waiting.result({ raiseOnFailure: false })
        })
        const { state } = await demo.run(undefined, { signal: controller.signal })
        assert.equal(freeValue, 'free ran', 'the untagged run ran while the tagged one waited (runner of 1 slot)')
        assert.equal(seen[0]?.name, 'AwaitingConcurrencySlot')
        assert.equal(seen[0]?.type, 'Pending')
        assert.equal(state.type, 'Cancelled')
        await sleep(50)
        const info = await admin.get(tag)
        assert.equal(info?.waiting, 0, 'the cancelled run left the line')
        assert.equal(info?.active, 1, 'and took nothing')
        await hold.release()
      } finally {
        await closeDefaultLimits()
        setDefaultQueue(undefined)
      }
    })

    it('a tagged run cancelled while it waits for a runner slot gives its tag slot back', { timeout: 20_000 }, async () => {
      setDefaultQueue(target.url)
      try {
        const tag = fresh('held')
        await admin.create(tag, 2, 0)
        const blocker = task({ name: `blocker_${tag}` }, () => new Promise<string>((resolve) => getRunContext().signal.addEventListener('abort', () => resolve('stopped'))))
        const tagged = task({ name: `tagged_${tag}`, tags: [tag] }, async () => 'tagged ran')
        const controller = new AbortController()
        let activeWhileWaiting: number | undefined
        const demo = flow({ name: `limits_${tag}`, taskRunner: new ConcurrentTaskRunner({ maxConcurrency: 1 }) }, async () => {
          blocker.submit()
          const waiting = tagged.submit()
          // It took its tag slot, then waits for the runner's only slot, which the blocker holds.
          for (let i = 0; i < 200 && (await admin.get(tag))?.active !== 1; i++) await sleep(10)
          activeWhileWaiting = (await admin.get(tag))?.active
          assert.equal(waiting.state.type, 'Pending')
          controller.abort(new Error('stop'))
          return waiting.result({ raiseOnFailure: false })
        })
        const { state } = await demo.run(undefined, { signal: controller.signal })
        assert.equal(state.type, 'Cancelled')
        assert.equal(activeWhileWaiting, 1, 'the tagged run held its tag slot while it waited for the runner')
        let active: number | undefined
        for (let i = 0; i < 100 && (active = (await admin.get(tag))?.active) !== 0; i++) await sleep(10)
        assert.equal(active, 0, 'the cancelled run gave its tag slot back')
      } finally {
        await closeDefaultLimits()
        setDefaultQueue(undefined)
      }
    })

    it('rateLimit() at 10 a second: 30 acquisitions take 2 to 4 s', async () => {
      setDefaultQueue(target.url)
      try {
        const name = fresh('api')
        await admin.create(name, 10, 10)
        const began = Date.now()
        for (let i = 0; i < 30; i++) await rateLimit(name)
        const took = Date.now() - began
        assert.ok(took >= 2_000 && took <= 4_000, `30 acquisitions took ${took} ms`)
      } finally {
        await closeDefaultLimits()
        setDefaultQueue(undefined)
      }
    })
  })
}

describe('default limits without a queue file', () => {
  it('look for the file once per turn of the event loop, not once per tagged run', async () => {
    const { dir, cleanup } = tempDir('ptr-limits-nofile-')
    const file = `${dir}/none.db`
    let stats = 0
    const real = fs.existsSync
    const spy = mock.method(fs, 'existsSync', (path: fs.PathLike) => {
      if (String(path) === file) stats++
      return real(path)
    })
    syncBuiltinESMExports()
    setDefaultQueue(`sqlite:${file}`)
    try {
      for (let i = 0; i < 1_000; i++) assert.equal(defaultLimits(true), undefined)
      assert.equal(stats, 1, 'one look in one turn')
      await new Promise((r) => setImmediate(r))
      assert.equal(defaultLimits(true), undefined)
      assert.equal(stats, 2, 'looked again in the next turn (the file may have been made meanwhile)')
      assert.equal(real(file), false, 'and it was not created')
    } finally {
      spy.mock.restore()
      syncBuiltinESMExports()
      setDefaultQueue(undefined)
      await closeDefaultLimits()
      cleanup()
    }
  })
})

describe('concurrency() without a queue file', () => {
  it('says which queue has no such limit and how to create it, and creates no file', async () => {
    const { dir, cleanup } = tempDir('ptr-limits-nofile-')
    const file = `${dir}/none.db`
    setDefaultQueue(`sqlite:${file}`)
    try {
      await assert.rejects(concurrency('warehouse', async () => 1), (error: Error) => error instanceof LimitNotFoundError && error.message.includes(file) && /ptr concurrency-limit create warehouse 5/.test(error.message))
      await assert.rejects(rateLimit(['api', 'db']), (error: Error) => error instanceof LimitNotFoundError && /'api', 'db'/.test(error.message))
      assert.equal(fs.existsSync(file), false, 'no queue file made just to say so')
    } finally {
      setDefaultQueue(undefined)
      await closeDefaultLimits()
      cleanup()
    }
  })
})
