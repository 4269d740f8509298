import type { Redis } from 'ioredis'
import { connectRedis } from '../queue/redis.ts'
import { redactUrl } from '../queue/url.ts'
import type { AcquireRequest, AcquireResult, LimitInfo, LimitStore, SlotHolder } from './store.ts'

/*
 * Keys, under `ptr:` in the queue's database:
 *   limit:NAME        hash: slots, decay, decayed, decayedAt, used, createdAt
 *   limit-names       set of the names that have a limit
 *   limit-slots:NAME  sorted set: slot id → lease end
 *   limit-slot:ID     hash: name, occupy, holder, owner, at
 *   limit-line:NAME   sorted set: waiter id → place in line (from limit-seq)
 *   limit-waiters     sorted set: waiter id → lease end;  limit-waiter:ID  list of its names
 * Channel `ptr:limits`: "defs" (limits created or deleted) or "free" (slots may be free).
 * Times are the Redis server's (TIME), so leases mean the same on every machine.
 */
const PREFIX = 'ptr:'

const COMMON = `
local p = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function dropSlot(id)
  local f = redis.call('HMGET', p .. 'limit-slot:' .. id, 'name', 'occupy')
  if f[1] then
    redis.call('ZREM', p .. 'limit-slots:' .. f[1], id)
    if redis.call('EXISTS', p .. 'limit:' .. f[1]) == 1 then redis.call('HINCRBY', p .. 'limit:' .. f[1], 'used', -tonumber(f[2])) end
  end
  redis.call('DEL', p .. 'limit-slot:' .. id)
  return f[1] ~= false
end
local function leave(wid)
  local names = redis.call('LRANGE', p .. 'limit-waiter:' .. wid, 0, -1)
  for _, n in ipairs(names) do redis.call('ZREM', p .. 'limit-line:' .. n, wid) end
  redis.call('DEL', p .. 'limit-waiter:' .. wid)
  return redis.call('ZREM', p .. 'limit-waiters', wid)
end
local function expire(name)
  local dead = redis.call('ZRANGEBYSCORE', p .. 'limit-slots:' .. name, '-inf', now - 1)
  for _, id in ipairs(dead) do dropSlot(id) end
end
local function expireWaiters()
  local dead = redis.call('ZRANGEBYSCORE', p .. 'limit-waiters', '-inf', now - 1)
  for _, w in ipairs(dead) do leave(w) end
end
local function decayed(h, at)
  local decay = tonumber(h[2]) or 0
  if decay <= 0 then return 0 end
  return math.max(0, (tonumber(h[3]) or 0) - decay * (at - (tonumber(h[4]) or at)) / 1000)
end
`

/** ARGV: prefix, waiterId, occupy, holder, owner, leaseMs, mode, names... */
const ACQUIRE = `${COMMON}
local wid, occupy, holder, owner, leaseMs, mode = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
expireWaiters()
local names, missing = {}, {}
for i = 8, #ARGV do
  if redis.call('EXISTS', p .. 'limit:' .. ARGV[i]) == 1 then table.insert(names, ARGV[i]) else table.insert(missing, ARGV[i]) end
end
if #missing > 0 then
  if leave(wid) > 0 then redis.call('PUBLISH', p .. 'limits', 'free') end
  return { 'missing', unpack(missing) }
end
local inLine = redis.call('ZSCORE', p .. 'limit-waiters', wid)
local seq = tonumber(redis.call('ZSCORE', p .. 'limit-line:' .. names[1], wid) or '-1')
local blocked, retry = false, -1
local soonest = function(ms) if retry < 0 or ms < retry then retry = ms end end
local ds = {}
local full = {}
for k, name in ipairs(names) do
  local key = p .. 'limit:' .. name
  expire(name)
  local h = redis.call('HMGET', key, 'slots', 'decay', 'decayed', 'decayedAt', 'used')
  local slots, used = tonumber(h[1]), tonumber(h[5]) or 0
  if occupy > slots then return { 'impossible', 'it asks for ' .. occupy .. " slots of '" .. name .. "', which has " .. slots } end
  if mode == 'rate' and not ((tonumber(h[2]) or 0) > 0) then
    return { 'impossible', "'" .. name .. "' has no slot decay, so rateLimit() would wait forever; create it with --slot-decay-per-second" }
  end
  local d = decayed(h, now)
  ds[k] = d
  local first = redis.call('ZRANGE', p .. 'limit-line:' .. name, 0, 0, 'WITHSCORES')
  if first[1] and first[1] ~= wid and (seq < 0 or tonumber(first[2]) < seq) then
    blocked = true
    -- An older waiter whose process died leaves the line when its lease ends, and nobody says so: try again then.
    local untilAt = redis.call('ZSCORE', p .. 'limit-waiters', first[1])
    if untilAt then soonest(math.max(1, tonumber(untilAt) - now + 1)) end
  end
  local over = used + d + occupy - slots
  if over > -1 + 1e-9 then table.insert(full, name) end
  if over > 1e-9 then
    blocked = true
    local next = redis.call('ZRANGE', p .. 'limit-slots:' .. name, 0, 0, 'WITHSCORES')
    if next[1] then soonest(math.max(1, tonumber(next[2]) - now + 1)) end
    local decay = tonumber(h[2]) or 0
    if decay > 0 and d > 0 then soonest(math.max(1, math.ceil(math.min(over, d) * 1000 / decay))) end
  end
end
if blocked then
  local untilAt = now + leaseMs
  if not inLine then
    local mine = redis.call('INCR', p .. 'limit-seq')
    for _, name in ipairs(names) do
      redis.call('ZADD', p .. 'limit-line:' .. name, mine, wid)
      redis.call('RPUSH', p .. 'limit-waiter:' .. wid, name)
    end
  end
  redis.call('ZADD', p .. 'limit-waiters', untilAt, wid)
  return { 'wait', tostring(retry) }
end
local out = { 'ok', table.concat(full, '\\n') }
for k, name in ipairs(names) do
  local key = p .. 'limit:' .. name
  if mode == 'rate' then
    redis.call('HSET', key, 'decayed', tostring(ds[k] + occupy), 'decayedAt', now)
  else
    local id = wid .. ':' .. k
    redis.call('HSET', p .. 'limit-slot:' .. id, 'name', name, 'occupy', occupy, 'holder', holder, 'owner', owner, 'at', now)
    redis.call('ZADD', p .. 'limit-slots:' .. name, now + leaseMs, id)
    redis.call('HINCRBY', key, 'used', occupy)
    table.insert(out, id)
  end
end
if inLine then
  leave(wid)
  redis.call('PUBLISH', p .. 'limits', 'free')
end
return out
`

/** ARGV: prefix, slot ids... */
const RELEASE = `${COMMON}
for i = 2, #ARGV do dropSlot(ARGV[i]) end
redis.call('PUBLISH', p .. 'limits', 'free')
return 1
`

/** ARGV: prefix, leaseMs, count of slot ids, slot ids..., waiter ids... Returns the slot ids that were gone. */
const RENEW = `${COMMON}
local leaseMs, n = tonumber(ARGV[2]), tonumber(ARGV[3])
local gone = {}
for i = 4, 3 + n do
  local id = ARGV[i]
  local name = redis.call('HGET', p .. 'limit-slot:' .. id, 'name')
  if name and redis.call('ZSCORE', p .. 'limit-slots:' .. name, id) then
    redis.call('ZADD', p .. 'limit-slots:' .. name, now + leaseMs, id)
  else
    table.insert(gone, id)
  end
end
for i = 4 + n, #ARGV do
  if redis.call('ZSCORE', p .. 'limit-waiters', ARGV[i]) then redis.call('ZADD', p .. 'limit-waiters', now + leaseMs, ARGV[i]) end
end
return gone
`

/** ARGV: prefix, then per waiter: id, leaseMs, count of names, names... */
const JOIN = `${COMMON}
local i = 2
while i <= #ARGV do
  local wid, leaseMs, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if not redis.call('ZSCORE', p .. 'limit-waiters', wid) then
    local mine = redis.call('INCR', p .. 'limit-seq')
    for k = 1, n do
      local name = ARGV[i + 2 + k]
      redis.call('ZADD', p .. 'limit-line:' .. name, mine, wid)
      redis.call('RPUSH', p .. 'limit-waiter:' .. wid, name)
    end
    redis.call('ZADD', p .. 'limit-waiters', now + leaseMs, wid)
  end
  i = i + 3 + n
end
return 1
`

/** ARGV: prefix, waiterId */
const LEAVE = `${COMMON}
if leave(ARGV[2]) > 0 then redis.call('PUBLISH', p .. 'limits', 'free') end
return 1
`

/** ARGV: prefix, name, slots, decay. Returns 1 if created. */
const CREATE = `${COMMON}
local key = p .. 'limit:' .. ARGV[2]
local created = redis.call('EXISTS', key) == 0
redis.call('HSET', key, 'slots', ARGV[3], 'decay', ARGV[4])
if created then redis.call('HSET', key, 'createdAt', now, 'used', 0, 'decayed', 0, 'decayedAt', now) end
redis.call('SADD', p .. 'limit-names', ARGV[2])
redis.call('PUBLISH', p .. 'limits', 'defs')
if created then return 1 end
return 0
`

/** ARGV: prefix, name, 'reset' | 'delete'. Returns 0 if there is no such limit. */
const CLEAR = `${COMMON}
local name = ARGV[2]
local key = p .. 'limit:' .. name
if redis.call('EXISTS', key) == 0 then return 0 end
for _, id in ipairs(redis.call('ZRANGE', p .. 'limit-slots:' .. name, 0, -1)) do redis.call('DEL', p .. 'limit-slot:' .. id) end
redis.call('DEL', p .. 'limit-slots:' .. name)
if ARGV[3] == 'delete' then
  redis.call('DEL', key, p .. 'limit-line:' .. name)
  redis.call('SREM', p .. 'limit-names', name)
  redis.call('PUBLISH', p .. 'limits', 'defs')
else
  redis.call('HSET', key, 'used', 0, 'decayed', 0, 'decayedAt', now)
  redis.call('PUBLISH', p .. 'limits', 'free')
end
return 1
`

/** ARGV: prefix, name. Returns [slots, decay, decayed, decayedAt, createdAt, now, waiting, slot id, lease, name, occupy, holder, owner, at, ...] or nil. */
const INSPECT = `${COMMON}
local name = ARGV[2]
local key = p .. 'limit:' .. name
if redis.call('EXISTS', key) == 0 then return false end
expire(name)
local h = redis.call('HMGET', key, 'slots', 'decay', 'decayed', 'decayedAt', 'createdAt')
local waiting = 0
for _, w in ipairs(redis.call('ZRANGE', p .. 'limit-line:' .. name, 0, -1)) do
  local l = redis.call('ZSCORE', p .. 'limit-waiters', w)
  if l and tonumber(l) >= now then waiting = waiting + 1 end
end
local out = { h[1], h[2], h[3] or '0', h[4] or tostring(now), h[5] or tostring(now), tostring(now), tostring(waiting) }
local slots = redis.call('ZRANGE', p .. 'limit-slots:' .. name, 0, -1, 'WITHSCORES')
for i = 1, #slots, 2 do
  local f = redis.call('HMGET', p .. 'limit-slot:' .. slots[i], 'occupy', 'holder', 'owner', 'at')
  table.insert(out, slots[i]); table.insert(out, slots[i + 1])
  for _, v in ipairs(f) do table.insert(out, v or '') end
end
return out
`

const SCRIPTS = { ptrLimitAcquire: ACQUIRE, ptrLimitRelease: RELEASE, ptrLimitRenew: RENEW, ptrLimitLeave: LEAVE, ptrLimitJoin: JOIN, ptrLimitCreate: CREATE, ptrLimitClear: CLEAR, ptrLimitInspect: INSPECT }

type Script = (...args: (string | number)[]) => Promise<unknown>
type ScriptedRedis = Redis & { [K in keyof typeof SCRIPTS]: Script }

/**
 * Limits in Redis, for processes on many machines: each transition is one Lua script (atomic), with
 * the same rules as the SQLite store. Releases and changes are published on `ptr:limits`; the set
 * of limited names is cached and dropped when a "defs" message comes (or the subscriber reconnects).
 */
export class RedisLimitStore implements LimitStore {
  readonly url: string
  readonly #redis: ScriptedRedis
  #sub: Redis | undefined
  #subReady: Promise<unknown> | undefined
  #names: ReadonlySet<string> | undefined
  #namesRead: Promise<ReadonlySet<string>> | undefined
  #listeners = new Set<() => void>()
  /** The subscription was confirmed: from then on a change of the names is heard. */
  #subscribed = false
  #closed = false

  private constructor(redis: ScriptedRedis, url: string) {
    this.#redis = redis
    this.url = redactUrl(url)
  }

  static async connect(url: string, options: { db?: number; source?: string } = {}): Promise<RedisLimitStore> {
    const redis = (await connectRedis(url, options, SCRIPTS)) as ScriptedRedis
    // The subscriber (a second connection) opens when first needed: watch(), limitedNames();
    // one-shot commands (create, ls, inspect) never open it.
    return new RedisLimitStore(redis, url)
  }

  #subscribe(): Promise<unknown> {
    if (this.#subReady) return this.#subReady
    if (this.#closed) return Promise.resolve()
    const sub = this.#redis.duplicate({ lazyConnect: false })
    sub.on('error', () => undefined)
    this.#sub = sub
    sub.on('message', (_channel: string, message: string) => {
      if (message === 'defs') this.#names = undefined
      for (const listener of this.#listeners) listener()
    })
    let first = true
    sub.on('ready', () => {
      if (first) {
        first = false
        return
      }
      // Messages sent while the subscriber was away are lost: forget what they would have changed.
      this.#names = undefined
      for (const listener of this.#listeners) listener()
    })
    sub.on('close', () => (this.#names = undefined))
    const ready = sub.subscribe(`${PREFIX}limits`).then(
      () => {
        if (this.#sub !== sub) return
        this.#subscribed = true
        // A release published before now went unheard: those already waiting look again.
        for (const listener of this.#listeners) listener()
      },
      () => {
        // Not subscribed: close that connection; the next watch or look-up tries again.
        sub.disconnect()
        if (this.#sub === sub) {
          this.#sub = undefined
          this.#subReady = undefined
        }
      },
    )
    this.#subReady = ready
    return ready
  }

  async create(name: string, limit: number, slotDecayPerSecond: number): Promise<'created' | 'updated'> {
    const created = await this.#redis.ptrLimitCreate(PREFIX, name, limit, slotDecayPerSecond)
    this.#names = undefined
    return created === 1 ? 'created' : 'updated'
  }

  async list(): Promise<LimitInfo[]> {
    const names = (await this.#redis.smembers(`${PREFIX}limit-names`)).sort()
    const infos = await Promise.all(names.map((name) => this.get(name)))
    return infos.filter((info): info is LimitInfo => info !== undefined)
  }

  async get(name: string): Promise<LimitInfo | undefined> {
    const reply = (await this.#redis.ptrLimitInspect(PREFIX, name)) as string[] | null
    if (!reply) return undefined
    const [slots, decay, decayed, decayedAt, createdAt, now, waiting] = reply.slice(0, 7).map(Number) as [number, number, number, number, number, number, number]
    const holders: SlotHolder[] = []
    for (let i = 7; i + 5 < reply.length; i += 6) {
      holders.push({ slotId: reply[i]!, leaseUntil: Number(reply[i + 1]), occupy: Number(reply[i + 2]), holder: reply[i + 3]!, owner: reply[i + 4]!, acquiredAt: Number(reply[i + 5]) })
    }
    holders.sort((a, b) => a.acquiredAt - b.acquiredAt)
    const decayNow = decay > 0 ? Math.max(0, decayed - (decay * (now - decayedAt)) / 1000) : 0
    return {
      name,
      limit: slots,
      slotDecayPerSecond: decay,
      active: holders.reduce((sum, h) => sum + h.occupy, 0) + Math.ceil(decayNow - 1e-9),
      holders,
      waiting,
      createdAt,
    }
  }

  async reset(name: string): Promise<boolean> {
    return (await this.#redis.ptrLimitClear(PREFIX, name, 'reset')) === 1
  }

  async delete(name: string): Promise<boolean> {
    const deleted = (await this.#redis.ptrLimitClear(PREFIX, name, 'delete')) === 1
    this.#names = undefined
    return deleted
  }

  limitedNames(): ReadonlySet<string> | Promise<ReadonlySet<string>> {
    // Cached only while the subscriber is up: it is what tells us the set changed.
    const listening = this.#subscribed && this.#sub?.status === 'ready'
    if (this.#names && listening) return this.#names
    if (!listening) void this.#subscribe()
    return (this.#namesRead ??= this.#redis.smembers(`${PREFIX}limit-names`).then(
      (names) => {
        this.#namesRead = undefined
        const set: ReadonlySet<string> = new Set(names)
        // A change made before the subscription was confirmed would go unheard: not kept then.
        if (listening) this.#names = set
        return set
      },
      (error: unknown) => {
        this.#namesRead = undefined
        throw error
      },
    ))
  }

  async tryAcquire(request: AcquireRequest): Promise<AcquireResult> {
    const reply = (await this.#redis.ptrLimitAcquire(PREFIX, request.waiterId, request.occupy, request.holder, request.owner, request.leaseMs, request.mode, ...request.names)) as string[]
    const [kind, ...rest] = reply
    if (kind === 'ok') return { ok: true, slotIds: rest.slice(1), full: rest[0] ? rest[0].split('\n') : [] }
    if (kind === 'missing') return { ok: false, missing: rest }
    if (kind === 'impossible') return { ok: false, impossible: rest[0]! }
    const retry = Number(rest[0])
    return { ok: false, retryInMs: retry >= 0 ? retry : undefined }
  }

  async join(requests: readonly AcquireRequest[]): Promise<void> {
    if (requests.length === 0) return
    await this.#redis.ptrLimitJoin(PREFIX, ...requests.flatMap((r) => [r.waiterId, r.leaseMs, r.names.length, ...r.names]))
  }

  async leave(waiterId: string): Promise<void> {
    await this.#redis.ptrLimitLeave(PREFIX, waiterId)
  }

  async renew(slotIds: readonly string[], waiterIds: readonly string[], leaseMs: number): Promise<string[]> {
    if (slotIds.length === 0 && waiterIds.length === 0) return []
    return (await this.#redis.ptrLimitRenew(PREFIX, leaseMs, slotIds.length, ...slotIds, ...waiterIds)) as string[]
  }

  async release(slotIds: readonly string[]): Promise<void> {
    if (slotIds.length === 0) return
    await this.#redis.ptrLimitRelease(PREFIX, ...slotIds)
  }

  watch(listener: () => void): () => void {
    this.#listeners.add(listener)
    void this.#subscribe()
    return () => this.#listeners.delete(listener)
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#listeners.clear()
    this.#sub?.disconnect()
    await this.#redis.quit().catch(() => this.#redis.disconnect())
  }
}
