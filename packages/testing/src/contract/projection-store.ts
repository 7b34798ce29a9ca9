import { randomUUID } from 'node:crypto'
import type { ProjectionStore, ProjectionWrite, ViewChange, ViewRead } from '@esk/core/driver'
import { afterEach, describe, expect, it } from 'vitest'

/** Options of {@link describeProjectionStoreContract}. */
export interface ProjectionStoreContractOptions {
  /** Releases a store opened by the factory. Default: `store.close()`. */
  release?(store: ProjectionStore): Promise<void>
}

/**
 * What every {@link ProjectionStore} must do, exactly as the others: atomic writes of changes with
 * positions, fencing, guards, refused increments, generations, and the reads views are built on.
 * The in-memory store and the Redis store run exactly this suite.
 */
export function describeProjectionStoreContract(
  name: string,
  open: () => ProjectionStore | Promise<ProjectionStore>,
  options: ProjectionStoreContractOptions = {},
): void {
  describe(`projection store contract: ${name}`, () => {
    const opened: ProjectionStore[] = []
    afterEach(async () => {
      for (const store of opened.splice(0)) await (options.release ? options.release(store) : store.close())
    })

    async function fresh(): Promise<{ store: ProjectionStore; p: string; gen: number }> {
      const store = await open()
      opened.push(store)
      const p = `p-${randomUUID().slice(0, 8)}`
      const gen = (await store.create(p, 1, 'initial')).id
      return { store, p, gen }
    }

    const write = (from: number | undefined, to: number, changes: ViewChange[] = [], extra: Partial<ProjectionWrite> = {}): ProjectionWrite => ({
      from,
      to,
      changes,
      guards: [],
      deadLetters: [],
      ...extra,
    })

    it('creates one live generation, and finds it again', async () => {
      const { store, p, gen } = await fresh()
      const again = await store.create(p, 2, 'initial')
      expect(again).toMatchObject({ id: gen, version: 1, live: true, purpose: 'initial' })
      const meta = await store.describe(p)
      expect(meta.live).toMatchObject({ id: gen, version: 1, live: true })
      expect(meta.generations).toHaveLength(1)
      expect(await store.describe(`none-${randomUUID()}`)).toEqual({ live: undefined, generations: [] })
      await expect(store.read(`none-${randomUUID()}`, 'live', [{ read: 'get', key: 'a' }])).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE' })
    })

    it('applies changes with the new position atomically, only from the stored position and by the owner', async () => {
      const { store, p, gen } = await fresh()
      expect(await store.acquire(p, gen, 'acc:0', 't1')).toBeUndefined()
      expect(await store.apply(p, gen, 'acc:0', 't1', write(undefined, 5, [{ op: 'set', key: 'a', value: '1' }]))).toEqual({ status: 'applied' })
      expect(await store.positions(p, gen)).toEqual(new Map([['acc:0', 5]]))
      // A stale position (a duplicate delivery) and a stale owner are both refused, changing nothing.
      await expect(store.apply(p, gen, 'acc:0', 't1', write(undefined, 5, [{ op: 'set', key: 'a', value: '2' }]))).rejects.toMatchObject({ code: 'ESK_FENCED' })
      await expect(store.apply(p, gen, 'acc:0', 't1', write(3, 9, [{ op: 'set', key: 'a', value: '2' }]))).rejects.toMatchObject({ code: 'ESK_FENCED' })
      expect(await store.acquire(p, gen, 'acc:0', 't2')).toBe(5)
      await expect(store.apply(p, gen, 'acc:0', 't1', write(5, 9, [{ op: 'set', key: 'a', value: '2' }]))).rejects.toMatchObject({ code: 'ESK_FENCED' })
      expect(await store.read(p, gen, [{ read: 'get', key: 'a' }])).toEqual(['1'])
      expect(await store.apply(p, gen, 'acc:0', 't2', write(5, 9, [{ op: 'set', key: 'a', value: '3' }]))).toEqual({ status: 'applied' })
      expect(await store.read(p, 'live', [{ read: 'get', key: 'a' }])).toEqual(['3'])
      // Lanes are independent.
      await store.acquire(p, gen, 'acc:1', 't3')
      await store.apply(p, gen, 'acc:1', 't3', write(undefined, 2))
      expect(await store.positions(p, gen)).toEqual(new Map([['acc:0', 9], ['acc:1', 2]]))
    })

    it('refuses a write whose guarded reads changed, writing nothing', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'a:0', 'x')
      await store.acquire(p, gen, 'a:1', 'y')
      await store.apply(p, gen, 'a:0', 'x', write(undefined, 1, [
        { op: 'set', key: 'n', value: '1' },
        { op: 'hset', key: 'h', field: 'f', value: '"v"' },
        { op: 'zadd', key: 'z', member: 'm', score: 1.5 },
      ]))
      const [n, f, m] = (await store.read(p, gen, [
        { read: 'get', key: 'n' },
        { read: 'hget', key: 'h', field: 'f' },
        { read: 'zscore', key: 'z', member: 'm' },
      ])) as string[]
      const guards = [
        { read: 'get' as const, key: 'n', value: n! },
        { read: 'hget' as const, key: 'h', field: 'f', value: f! },
        { read: 'zscore' as const, key: 'z', member: 'm', value: m! },
        { read: 'get' as const, key: 'absent', value: null },
      ]
      expect(await store.apply(p, gen, 'a:1', 'y', write(undefined, 3, [{ op: 'set', key: 'n', value: '2' }], { guards }))).toEqual({ status: 'applied' })
      // Another partition changed `n` since it was read: the next write guarded on it is refused.
      const stale = await store.apply(p, gen, 'a:0', 'x', write(1, 4, [{ op: 'set', key: 'n', value: '9' }, { op: 'set', key: 'other', value: '1' }], { guards }))
      expect(stale).toEqual({ status: 'conflict', guard: 0 })
      expect(await store.read(p, gen, [{ read: 'get', key: 'n' }, { read: 'get', key: 'other' }])).toEqual(['2', null])
      expect((await store.positions(p, gen)).get('a:0')).toBe(1)
      const absent = await store.apply(p, gen, 'a:0', 'x', write(1, 4, [], { guards: [{ read: 'get', key: 'n', value: null }] }))
      expect(absent).toEqual({ status: 'conflict', guard: 0 })
    })

    it('refuses an increment of a stored value that is not a number, writing nothing', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'l', 't')
      await store.apply(p, gen, 'l', 't', write(undefined, 1, [
        { op: 'set', key: 's', value: '"text"' },
        { op: 'hset', key: 'h', field: 'f', value: '{"a":1}' },
      ]))
      expect(await store.apply(p, gen, 'l', 't', write(1, 2, [{ op: 'set', key: 'x', value: '1' }, { op: 'incr', key: 's', by: 1 }]))).toMatchObject({
        status: 'invalid',
        change: 1,
      })
      expect(await store.apply(p, gen, 'l', 't', write(1, 2, [{ op: 'hincr', key: 'h', field: 'f', by: 1 }]))).toMatchObject({ status: 'invalid', change: 0 })
      expect(await store.read(p, gen, [{ read: 'get', key: 'x' }])).toEqual([null])
      // A value replaced earlier in the same write is what the increment adds to.
      const replaced = await store.apply(p, gen, 'l', 't', write(1, 2, [
        { op: 'set', key: 's', value: '4' },
        { op: 'incr', key: 's', by: 1 },
        { op: 'hdel', key: 'h', field: 'f' },
        { op: 'hincr', key: 'h', field: 'f', by: 2 },
      ]))
      expect(replaced).toEqual({ status: 'applied' })
      expect(await store.read(p, gen, [{ read: 'get', key: 's' }, { read: 'hget', key: 'h', field: 'f' }])).toEqual(['5', '2'])
    })

    it('applies every kind of change and answers every kind of read', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'l', 't')
      const changes: ViewChange[] = [
        { op: 'set', key: 'a', value: '{"x":[1,"two"]}' },
        { op: 'set', key: 'gone', value: '1' },
        { op: 'del', key: 'gone' },
        { op: 'incr', key: 'count', by: 2 },
        { op: 'incr', key: 'count', by: 0.5 },
        { op: 'incr', key: 'count', by: -1 },
        { op: 'hset', key: 'h', field: 'f1', value: '"one"' },
        { op: 'hset', key: 'h', field: '__proto__', value: '"proto"' },
        { op: 'hincr', key: 'h', field: 'n', by: 3 },
        { op: 'hset', key: 'h2', field: 'only', value: '1' },
        { op: 'hdel', key: 'h2', field: 'only' },
        { op: 'hset', key: 'h3', field: 'x', value: '1' },
        { op: 'hclear', key: 'h3' },
        { op: 'zadd', key: 'z', member: 'b', score: 2 },
        { op: 'zadd', key: 'z', member: 'a', score: 2 },
        { op: 'zadd', key: 'z', member: 'c', score: -1 },
        { op: 'zadd', key: 'z', member: 'd', score: 10 },
        { op: 'zincr', key: 'z', member: 'd', by: 0.25 },
        { op: 'zincr', key: 'z', member: 'e', by: 5 },
        { op: 'zadd', key: 'z', member: 'gone', score: 1 },
        { op: 'zrem', key: 'z', member: 'gone' },
        { op: 'zadd', key: 'z2', member: 'x', score: 1 },
        { op: 'zclear', key: 'z2' },
      ]
      expect(await store.apply(p, gen, 'l', 't', write(undefined, 1, changes))).toEqual({ status: 'applied' })
      const reads: ViewRead[] = [
        { read: 'get', key: 'a' },
        { read: 'get', key: 'gone' },
        { read: 'get', key: 'count' },
        { read: 'hget', key: 'h', field: 'f1' },
        { read: 'hlen', key: 'h' },
        { read: 'hlen', key: 'h2' },
        { read: 'hgetall', key: 'h3' },
        { read: 'zcard', key: 'z' },
        { read: 'zcard', key: 'z2' },
        { read: 'zrange', key: 'z', start: 0, stop: -1, reverse: false },
        { read: 'zrange', key: 'z', start: 1, stop: 2, reverse: false },
        { read: 'zrange', key: 'z', start: -2, stop: -1, reverse: false },
        { read: 'zrange', key: 'z', start: 0, stop: 1, reverse: true },
        { read: 'zrange', key: 'z', start: 3, stop: 1, reverse: false },
        { read: 'zrangebyscore', key: 'z', min: 2, max: 10.25, reverse: false, offset: 0, count: -1 },
        { read: 'zrangebyscore', key: 'z', min: -Infinity, max: Infinity, reverse: true, offset: 1, count: 2 },
        { read: 'zrangebyscore', key: 'z', min: 3, max: 4, reverse: false, offset: 0, count: -1 },
        { read: 'zrange', key: 'missing', start: 0, stop: -1, reverse: false },
      ]
      const results = await store.read(p, gen, reads)
      expect(JSON.parse(results[0] as string)).toEqual({ x: [1, 'two'] })
      expect(results[1]).toBeNull()
      expect(Number(results[2])).toBe(1.5)
      expect(results[3]).toBe('"one"')
      expect(results[4]).toBe(3)
      expect(results[5]).toBe(0)
      expect(results[6]).toEqual([])
      expect(results[7]).toBe(5)
      expect(results[8]).toBe(0)
      expect(results[9]).toEqual([['c', -1], ['a', 2], ['b', 2], ['e', 5], ['d', 10.25]])
      expect(results[10]).toEqual([['a', 2], ['b', 2]])
      expect(results[11]).toEqual([['e', 5], ['d', 10.25]])
      expect(results[12]).toEqual([['d', 10.25], ['e', 5]])
      expect(results[13]).toEqual([])
      expect(results[14]).toEqual([['a', 2], ['b', 2], ['e', 5], ['d', 10.25]])
      expect(results[15]).toEqual([['e', 5], ['b', 2]])
      expect(results[16]).toEqual([])
      expect(results[17]).toEqual([])
      const all = new Map((await store.read(p, gen, [{ read: 'hgetall', key: 'h' }]))[0] as Array<[string, string]>)
      expect(all).toEqual(new Map([['f1', '"one"'], ['__proto__', '"proto"'], ['n', '3']]))
    })

    it('keeps keys with any characters apart, and generations apart', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'l', 't')
      const keys = ['a:b', '{tag}', 'with space', 'ünïcödé ✓', 'a', 'a:', ':a']
      await store.apply(p, gen, 'l', 't', write(undefined, 1, keys.map((key, i) => ({ op: 'set' as const, key, value: String(i) }))))
      expect(await store.read(p, gen, keys.map((key) => ({ read: 'get' as const, key })))).toEqual(keys.map((_, i) => String(i)))
      // The same key in a hash and a sorted set is another value.
      expect(await store.read(p, gen, [{ read: 'hlen', key: 'a' }, { read: 'zcard', key: 'a' }])).toEqual([0, 0])
      const other = await store.create(p, 1, 'rebuild')
      expect(await store.read(p, other.id, [{ read: 'get', key: 'a' }])).toEqual([null])
      expect(await store.positions(p, other.id)).toEqual(new Map())
    })

    it('builds generations beside the live one and swaps them in, dropping the old one', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'l', 'old')
      await store.apply(p, gen, 'l', 'old', write(undefined, 1, [{ op: 'set', key: 'k', value: '"old"' }]))
      const upgrade = await store.create(p, 2, 'upgrade')
      expect(upgrade).toMatchObject({ version: 2, live: false, purpose: 'upgrade' })
      expect((await store.create(p, 2, 'upgrade')).id).toBe(upgrade.id)
      await store.acquire(p, upgrade.id, 'l', 'new')
      await store.apply(p, upgrade.id, 'l', 'new', write(undefined, 1, [{ op: 'set', key: 'k', value: '"new"' }]))
      expect(await store.read(p, 'live', [{ read: 'get', key: 'k' }])).toEqual(['"old"'])
      expect(await store.swap(p, upgrade.id, upgrade.id)).toBe(false)
      expect(await store.swap(p, gen, upgrade.id)).toBe(true)
      expect(await store.read(p, 'live', [{ read: 'get', key: 'k' }])).toEqual(['"new"'])
      const meta = await store.describe(p)
      expect(meta.live).toMatchObject({ id: upgrade.id, live: true, version: 2 })
      expect(meta.generations.map((g) => g.id)).toEqual([upgrade.id])
      // The old generation is gone: its writers are fenced, its reads refused.
      await expect(store.apply(p, gen, 'l', 'old', write(1, 2))).rejects.toMatchObject({ code: 'ESK_FENCED' })
      await expect(store.read(p, gen, [{ read: 'get', key: 'k' }])).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE' })
      await expect(store.drop(p, upgrade.id)).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT' })
      const spare = await store.create(p, 2, 'rebuild')
      await store.drop(p, spare.id)
      expect((await store.describe(p)).generations).toHaveLength(1)
    })

    it('resets to an empty live generation, only while the named one is live', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'l', 't')
      await store.apply(p, gen, 'l', 't', write(undefined, 1, [{ op: 'set', key: 'k', value: '1' }]))
      const reset = await store.create(p, 1, 'reset', gen)
      expect(reset).toMatchObject({ live: true, purpose: 'reset' })
      expect(reset.id).not.toBe(gen)
      expect(await store.read(p, 'live', [{ read: 'get', key: 'k' }])).toEqual([null])
      // A second reset decided on the old generation finds the new one already live.
      expect((await store.create(p, 1, 'reset', gen)).id).toBe(reset.id)
      await expect(store.acquire(p, gen, 'l', 't')).rejects.toMatchObject({ code: 'ESK_FENCED' })
    })

    it('keeps parked events in order', async () => {
      const { store, p, gen } = await fresh()
      await store.acquire(p, gen, 'l', 't')
      const letter = (offset: number) => ({
        aggregate: 'acc',
        partition: 0,
        offset,
        type: 'x.Happened',
        aggregateId: 'a-1',
        version: offset + 1,
        payload: '{"n":1}',
        error: { code: 'ESK_PROJECTION_FAILED', message: 'boom' },
        attempts: 3,
        parkedAt: 1_700_000_000_000,
      })
      await store.apply(p, gen, 'l', 't', write(undefined, 2, [], { deadLetters: [letter(0), letter(1)] }))
      await store.apply(p, gen, 'l', 't', write(2, 4, [], { deadLetters: [letter(3)] }))
      expect(await store.deadLetters(p, gen)).toEqual([letter(0), letter(1), letter(3)])
    })
  })
}
