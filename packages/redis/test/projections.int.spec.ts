import { randomUUID } from 'node:crypto'
import { ProjectionKeys, RedisProjectionStore, RedisSnapshotStore } from '@esk/redis/driver'
import { describe, expect, it } from 'vitest'
import { isolatedStores, keySlots } from './support.js'

describe('redis projection store', () => {
  const stores = isolatedStores()

  it('keeps every key of a projection in one cluster slot, apart from other projections', async () => {
    const admin = stores.admin()
    const store = new RedisProjectionStore(admin, { keyPrefix: stores.prefix() })
    const gen = (await store.create('by-owner', 1, 'initial')).id
    await store.acquire('by-owner', gen, 'account:0', 't')
    await store.apply('by-owner', gen, 'account:0', 't', {
      from: undefined,
      to: 3,
      changes: [
        { op: 'set', key: 'a', value: '1' },
        { op: 'hset', key: 'owner:{x}', field: 'f', value: '1' },
        { op: 'zadd', key: 'z', member: 'm', score: 1 },
      ],
      guards: [],
      deadLetters: [
        {
          aggregate: 'account',
          partition: 0,
          offset: 1,
          type: 't',
          aggregateId: 'a',
          version: 1,
          payload: '{}',
          error: { code: 'E', message: 'm' },
          attempts: 1,
          parkedAt: 0,
        },
      ],
    })
    const keys = await admin.keys(`${stores.prefix()}*`)
    // meta, positions, owners, dead letters, and the three values.
    expect(keys).toHaveLength(7)
    const keysOf = new ProjectionKeys(stores.prefix(), 'by-owner')
    expect(keys).toContain(keysOf.hash(gen, 'owner:{x}'))
    const slots = await keySlots(admin, [...keys, new ProjectionKeys(stores.prefix(), 'other').meta])
    expect(new Set(slots.slice(0, -1)).size).toBe(1)
    expect(slots.at(-1)).not.toBe(slots[0])
  })

  it('deletes the keys of a generation replaced by a reset or a rebuild', async () => {
    const admin = stores.admin()
    const store = new RedisProjectionStore(admin, { keyPrefix: stores.prefix() })
    const first = (await store.create('p', 1, 'initial')).id
    const fill = async (gen: number, token: string) => {
      await store.acquire('p', gen, 'a:0', token)
      await store.apply('p', gen, 'a:0', token, { from: undefined, to: 1, changes: [{ op: 'set', key: 'k', value: '1' }], guards: [], deadLetters: [] })
    }
    await fill(first, 'x')
    const rebuilt = await store.create('p', 1, 'rebuild')
    await fill(rebuilt.id, 'y')
    expect(await store.swap('p', first, rebuilt.id)).toBe(true)
    const generationKeys = async (gen: number) => admin.keys(`${new ProjectionKeys(stores.prefix(), 'p').generation(gen)}*`)
    expect(await generationKeys(first)).toEqual([])
    expect(await generationKeys(rebuilt.id)).toHaveLength(3)
    const reset = await store.create('p', 1, 'reset', rebuilt.id)
    expect(await generationKeys(rebuilt.id)).toEqual([])
    expect(await generationKeys(reset.id)).toEqual([])
  })

  it('serves reads from the new live generation after another process reset the projection', async () => {
    const one = new RedisProjectionStore(stores.admin(), { keyPrefix: stores.prefix() })
    const two = new RedisProjectionStore(stores.admin(), { keyPrefix: stores.prefix() })
    const first = (await one.create('p', 1, 'initial')).id
    await one.acquire('p', first, 'a:0', 'x')
    await one.apply('p', first, 'a:0', 'x', { from: undefined, to: 1, changes: [{ op: 'set', key: 'k', value: '"old"' }], guards: [], deadLetters: [] })
    expect(await one.read('p', 'live', [{ read: 'get', key: 'k' }])).toEqual(['"old"'])
    const reset = await two.create('p', 1, 'reset', first)
    await two.acquire('p', reset.id, 'a:0', 'y')
    await two.apply('p', reset.id, 'a:0', 'y', { from: undefined, to: 1, changes: [{ op: 'set', key: 'k', value: '"new"' }], guards: [], deadLetters: [] })
    expect(await one.read('p', 'live', [{ read: 'get', key: 'k' }])).toEqual(['"new"'])
  })

  it("keeps where each recent command's events are, so a retry is answered with their position", async () => {
    // Fails before the fix: the snapshot kept [commandId, version, events] only, and a retried
    // command came back without the position of its events.
    const snapshots = new RedisSnapshotStore(stores.admin(), { keyPrefix: stores.prefix() })
    const stream = { aggregate: 'account', partitions: 1 }
    const token = randomUUID()
    await snapshots.acquire(stream, 0, token)
    const recent = [
      { commandId: 'old', version: 1, events: 1 },
      { commandId: 'new', version: 3, events: 2, offset: 7 },
    ]
    await snapshots.save(stream, 0, token, {
      snapshots: [{ aggregateId: 'a', version: 3, schemaVersion: 1, offset: 7, state: '{}', recent }],
      checkpoint: { offset: 8, commandPosition: 2, schemaVersion: 1 },
      unlogged: [],
      ready: true,
    })
    expect((await snapshots.read(stream, 0, 'a'))?.recent).toEqual(recent)
    expect(await snapshots.readOutcome(stream, 0, { aggregateId: 'a', commandId: 'new' })).toEqual({
      status: 'accepted',
      aggregateId: 'a',
      commandId: 'new',
      version: 3,
      events: 2,
      offset: 7,
    })
  })
})
