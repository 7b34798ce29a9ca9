import { randomUUID } from 'node:crypto'
import { sleep, type Outcome, type SnapshotWrite, type StoredSnapshot, type StreamSpec } from '@esk/core'
import { PartitionKeys, RedisStore, deleteKeysWithPrefix, redisStore, type RedisStoreOptions } from '@esk/redis'
import { Redis, type Command } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { REDIS_URL, isolatedStores, keySlots, testPrefix } from './support.js'

const stream: StreamSpec = { aggregate: 'Account', partitions: 4 }

function snapshot(aggregateId: string, offset: number, state = `{"at":${offset}}`): StoredSnapshot {
  return { aggregateId, version: offset + 1, schemaVersion: 1, offset, state }
}

function accepted(commandId: string, aggregateId = 'a-1', version = 1): Outcome {
  return { status: 'accepted', commandId, aggregateId, version, events: 1 }
}

function write(parts: Partial<SnapshotWrite> = {}): SnapshotWrite {
  return { snapshots: [], checkpoint: { offset: 0, commandPosition: -1, schemaVersion: 1 }, outcomes: [], ...parts }
}

/**
 * Records every command the client sends and how many replies had arrived when it was sent: a
 * call made in one round trip sends everything before the first reply.
 */
function recordCommands(client: Redis): { sent: Array<{ name: string; repliesBefore: number }>; restore(): void } {
  const sent: Array<{ name: string; repliesBefore: number }> = []
  let replies = 0
  const original = client.sendCommand
  client.sendCommand = function (this: Redis, command: Command, ...rest: unknown[]) {
    sent.push({ name: command.name, repliesBefore: replies })
    const count = (): void => {
      replies += 1
    }
    command.promise.then(count, count)
    return (original as (...args: unknown[]) => unknown).call(this, command, ...rest)
  } as Redis['sendCommand']
  return { sent, restore: () => (client.sendCommand = original) }
}

describe('RedisSnapshotStore', () => {
  const { open, admin, prefix } = isolatedStores()

  it('ignores an older snapshot, accepts an equal and a newer offset', async () => {
    const { snapshots } = open()
    await snapshots.save(stream, 1, write({ snapshots: [snapshot('a', 5, '{"v":"five"}')] }))
    await snapshots.save(stream, 1, write({ snapshots: [snapshot('a', 3, '{"v":"three"}')] }))
    expect((await snapshots.read(stream, 1, 'a'))?.state).toBe('{"v":"five"}')
    // Equal offsets carry identical content in practice; a replayed save must still go through.
    await snapshots.save(stream, 1, write({ snapshots: [snapshot('a', 5, '{"v":"five again"}')] }))
    expect((await snapshots.read(stream, 1, 'a'))?.state).toBe('{"v":"five again"}')
    await snapshots.save(stream, 1, write({ snapshots: [snapshot('a', 9, '{"v":"nine"}'), snapshot('b', 2)] }))
    expect(await snapshots.read(stream, 1, 'a')).toEqual(snapshot('a', 9, '{"v":"nine"}'))
    expect(await snapshots.read(stream, 1, 'b')).toEqual(snapshot('b', 2))
    expect(await snapshots.read(stream, 1, 'missing')).toBeUndefined()
    expect(await snapshots.read(stream, 2, 'a')).toBeUndefined()
  })

  it('moves the checkpoint forward only, field by field, and takes the new schema version', async () => {
    const { snapshots } = open()
    expect(await snapshots.checkpoint(stream, 0)).toBeUndefined()
    await snapshots.save(stream, 0, write({ checkpoint: { offset: 10, commandPosition: 4, schemaVersion: 1 } }))
    await snapshots.save(stream, 0, write({ checkpoint: { offset: 5, commandPosition: 7, schemaVersion: 2 } }))
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 10, commandPosition: 7, schemaVersion: 2 })
    await snapshots.save(stream, 0, write({ checkpoint: { offset: 12, commandPosition: 2, schemaVersion: 3 } }))
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 12, commandPosition: 7, schemaVersion: 3 })
    await snapshots.save(stream, 0, write({ checkpoint: { offset: 0, commandPosition: -1, schemaVersion: 3 } }))
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 12, commandPosition: 7, schemaVersion: 3 })
  })

  it('keeps offsets up to 2^53 - 1 exact and returns numbers, not strings', async () => {
    const { snapshots } = open()
    const big = Number.MAX_SAFE_INTEGER
    await snapshots.save(
      stream,
      3,
      write({
        snapshots: [snapshot('a', big - 1)],
        checkpoint: { offset: 1_000_000_000_000_001, commandPosition: big, schemaVersion: 4 },
      }),
    )
    const checkpoint = await snapshots.checkpoint(stream, 3)
    expect(checkpoint).toEqual({ offset: 1_000_000_000_000_001, commandPosition: big, schemaVersion: 4 })
    // One below the stored offsets, so only an exact comparison rejects them.
    await snapshots.save(
      stream,
      3,
      write({
        snapshots: [snapshot('a', big - 2, '{"older":true}')],
        checkpoint: { offset: 1_000_000_000_000_000, commandPosition: big - 1, schemaVersion: 4 },
      }),
    )
    const read = await snapshots.read(stream, 3, 'a')
    expect(read).toEqual(snapshot('a', big - 1))
    expect(await snapshots.checkpoint(stream, 3)).toEqual(checkpoint)
    for (const value of [read!.offset, read!.version, read!.schemaVersion, ...Object.values(checkpoint!)]) {
      expect(typeof value).toBe('number')
    }
    await expect(
      snapshots.save(stream, 3, write({ snapshots: [snapshot('a', big + 1)] })),
    ).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT' })
  })

  it('loads the checkpoint, snapshots and outcomes in one round trip', async () => {
    const store = open()
    const { snapshots } = store
    await snapshots.save(
      stream,
      2,
      write({ snapshots: [snapshot('a', 1), snapshot('b', 2)], outcomes: [accepted('c-1'), accepted('c-2', 'b', 2)] }),
    )
    const recorder = recordCommands(store.client)
    try {
      const loaded = await snapshots.load(stream, 2, ['a', 'b', 'none'], ['c-1', 'c-2', 'c-none'])
      expect([...loaded.snapshots.keys()]).toEqual(['a', 'b'])
      expect(loaded.snapshots.get('b')).toEqual(snapshot('b', 2))
      expect([...loaded.outcomes.keys()]).toEqual(['c-1', 'c-2'])
      expect(loaded.outcomes.get('c-2')).toEqual(accepted('c-2', 'b', 2))
      expect(loaded.checkpoint).toEqual(write({}).checkpoint)
      expect(recorder.sent.map((c) => c.name)).toEqual(['multi', 'hmget', 'hmget', 'mget', 'exec'])
      expect(recorder.sent.every((c) => c.repliesBefore === 0)).toBe(true)

      // Even with nothing to load, the checkpoint comes back: processors compare it with their own.
      recorder.sent.length = 0
      const empty = await snapshots.load(stream, 2, [], [])
      expect(empty.snapshots.size + empty.outcomes.size).toBe(0)
      expect(empty.checkpoint).toEqual(write({}).checkpoint)
      expect(recorder.sent.map((c) => c.name)).toEqual(['multi', 'hmget', 'exec'])
      expect((await snapshots.load(stream, 7, [], [])).checkpoint).toBeUndefined()
      expect((await snapshots.load(stream, 2, ['a'], [])).snapshots.get('a')).toEqual(snapshot('a', 1))
      expect((await snapshots.load(stream, 2, [], ['c-1'])).outcomes.get('c-1')).toEqual(accepted('c-1'))

      recorder.sent.length = 0
      await snapshots.save(stream, 2, write({ snapshots: [snapshot('a', 3)], outcomes: [accepted('c-3')] }))
      expect(recorder.sent).toHaveLength(1)
      expect(recorder.sent[0]!.name).toMatch(/^eval(sha)?$/)
    } finally {
      recorder.restore()
    }
  })

  it('keeps outcomes for outcomeRetentionMs', async () => {
    const { snapshots } = open({ outcomeRetentionMs: 300 })
    const keys = new PartitionKeys(prefix(), stream, 0)
    await snapshots.save(stream, 0, write({ outcomes: [accepted('short')] }))
    const ttl = await admin().pttl(keys.outcome('short'))
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(300)
    expect(await snapshots.readOutcome(stream, 0, 'short')).toEqual(accepted('short'))
    await sleep(450)
    expect(await snapshots.readOutcome(stream, 0, 'short')).toBeUndefined()

    const { snapshots: daily } = open()
    await daily.save(stream, 0, write({ outcomes: [accepted('long')] }))
    const dayTtl = await admin().pttl(keys.outcome('long'))
    expect(dayTtl).toBeGreaterThan(24 * 60 * 60 * 1000 - 60_000)
    expect(dayTtl).toBeLessThanOrEqual(24 * 60 * 60 * 1000)
  })

  it('resets snapshots and checkpoint of one partition, keeping outcomes and other partitions', async () => {
    const { snapshots } = open()
    const full = write({
      snapshots: [snapshot('a', 4)],
      checkpoint: { offset: 5, commandPosition: 9, schemaVersion: 1 },
      outcomes: [accepted('kept')],
    })
    await snapshots.save(stream, 0, full)
    await snapshots.save(stream, 1, full)
    await snapshots.reset(stream, 0)
    expect(await snapshots.read(stream, 0, 'a')).toBeUndefined()
    expect(await snapshots.checkpoint(stream, 0)).toBeUndefined()
    expect(await snapshots.readOutcome(stream, 0, 'kept')).toEqual(accepted('kept'))
    const keys = new PartitionKeys(prefix(), stream, 0)
    expect(await admin().exists(keys.snapshots, keys.offsets, keys.checkpoint)).toBe(0)
    expect(await snapshots.read(stream, 1, 'a')).toEqual(snapshot('a', 4))
    // After a reset an older offset is accepted again: the rebuild starts from 0.
    await snapshots.save(stream, 0, write({ snapshots: [snapshot('a', 0)] }))
    expect(await snapshots.read(stream, 0, 'a')).toEqual(snapshot('a', 0))
  })

  it('lays out every key of a partition under one hash tag, so they share a cluster slot', async () => {
    const { snapshots } = open()
    const commandId = randomUUID()
    await snapshots.save(
      stream,
      3,
      write({
        snapshots: [snapshot('a', 1)],
        checkpoint: { offset: 2, commandPosition: 0, schemaVersion: 1 },
        outcomes: [accepted(commandId)],
      }),
    )
    const written = (await scanAll(admin(), `${prefix()}*`)).sort()
    const tag = `${prefix()}{Account:3}:`
    expect(written).toEqual([`${tag}checkpoint`, `${tag}offsets`, `${tag}outcome:${commandId}`, `${tag}snapshots`])
    const slots = await keySlots(admin(), written)
    expect(new Set(slots).size).toBe(1)
    const other = new PartitionKeys(prefix(), stream, 2)
    expect(await keySlots(admin(), [other.snapshots])).not.toEqual([slots[0]])
  })

  it('isolates key prefixes', async () => {
    const mine = open()
    const otherPrefix = testPrefix()
    const theirs = open({ keyPrefix: otherPrefix })
    try {
      await mine.snapshots.save(stream, 0, write({ snapshots: [snapshot('a', 1)], outcomes: [accepted('c')] }))
      expect(await theirs.snapshots.read(stream, 0, 'a')).toBeUndefined()
      expect(await theirs.snapshots.readOutcome(stream, 0, 'c')).toBeUndefined()
      expect(await theirs.snapshots.checkpoint(stream, 0)).toBeUndefined()
      await theirs.snapshots.save(stream, 0, write({ snapshots: [snapshot('a', 7)] }))
      expect(await deleteKeysWithPrefix(admin(), otherPrefix)).toBe(3)
      expect(await mine.snapshots.read(stream, 0, 'a')).toEqual(snapshot('a', 1))
    } finally {
      await deleteKeysWithPrefix(admin(), otherPrefix)
    }
  })

  it('flushes keys of a prefix with glob characters only', async () => {
    const special = `esk-test-[${randomUUID()}]*?:`
    const store = open({ keyPrefix: special })
    await store.snapshots.save(stream, 0, write({ snapshots: [snapshot('a', 1)] }))
    const lookalike = `esk-test-x${special.slice('esk-test-['.length)}`
    await admin().set(`${lookalike}keep`, '1')
    try {
      expect(await deleteKeysWithPrefix(admin(), special, { batchSize: 1 })).toBe(3)
      expect(await admin().get(`${lookalike}keep`)).toBe('1')
      await expect(deleteKeysWithPrefix(admin(), '')).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT' })
    } finally {
      await admin().del(`${lookalike}keep`)
    }
  })

  it('reports a value it did not write with ESK_SERIALIZATION and the key', async () => {
    const { snapshots } = open()
    const keys = new PartitionKeys(prefix(), stream, 0)
    await admin().hset(keys.snapshots, 'bad', '{"aggregateId":"bad","version":"1"}')
    await expect(snapshots.read(stream, 0, 'bad')).rejects.toMatchObject({
      code: 'ESK_SERIALIZATION',
      details: { key: keys.snapshots, field: 'bad' },
    })
    await admin().hset(keys.checkpoint, 'offset', '12')
    await expect(snapshots.checkpoint(stream, 0)).rejects.toMatchObject({ code: 'ESK_SERIALIZATION' })
    await admin().set(keys.outcome('x'), 'not json')
    await expect(snapshots.readOutcome(stream, 0, 'x')).rejects.toMatchObject({ code: 'ESK_SERIALIZATION' })
  })

  it('never closes a client it was given, and closes what it created, once', async () => {
    const client = new Redis(REDIS_URL)
    try {
      const store = new RedisStore({ client, keyPrefix: prefix() })
      const waiting = store.outcomes.wait(stream, 0, 'c', AbortSignal.timeout(60_000))
      await store.snapshots.save(stream, 0, write({ outcomes: [accepted('c')] }))
      await store.outcomes.publish(stream, 0, [{ replyTo: store.outcomes.address, outcome: accepted('c') }])
      expect(await waiting).toEqual(accepted('c'))
      await store.close()
      await store.close()
      expect(await client.ping()).toBe('PONG')
      expect(await store.snapshots.read(stream, 0, 'none')).toBeUndefined()
      // The subscriber connection was ours: nobody listens on the channel any more.
      const channel = `${prefix()}replies:${store.outcomes.address}`
      const [, listeners] = (await admin().pubsub('NUMSUB', channel)) as [string, number]
      expect(Number(listeners)).toBe(0)
      await expect(store.outcomes.wait(stream, 0, 'd', new AbortController().signal)).rejects.toMatchObject({
        code: 'ESK_CLOSED',
      })
    } finally {
      await client.quit()
    }

    const owned = open()
    await owned.snapshots.checkpoint(stream, 0)
    await Promise.all([owned.close(), owned.close()])
    await eventuallyEnded(owned.client)
    await expect(owned.snapshots.read(stream, 0, 'a')).rejects.toThrow(/closed/i)
  })

  it('rejects a save at once when Redis cannot be reached, and reports the connection failure', async () => {
    const warnings: string[] = []
    const logger = { debug() {}, info() {}, error() {}, warn: (message: string) => void warnings.push(message) }
    const store = open({ url: 'redis://127.0.0.1:1', logger })
    const started = Date.now()
    await expect(store.snapshots.save(stream, 0, write({ snapshots: [snapshot('a', 1)] }))).rejects.toThrow(
      /saving 1 snapshots and 0 outcomes of Account\/0 failed/,
    )
    await expect(store.snapshots.read(stream, 0, 'a')).rejects.toThrow()
    expect(Date.now() - started).toBeLessThan(3_000)
    expect(warnings).toContain('redis connection failed; retrying')
  })

  it('rejects invalid options naming the option', () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true })
    const cases: Array<[RedisStoreOptions, string]> = [
      [{ url: REDIS_URL, client }, 'url'],
      [{ client, redisOptions: { password: 'x' } }, 'redisOptions'],
      [{ keyPrefix: '' }, 'keyPrefix'],
      [{ keyPrefix: 'a{b}:' }, 'keyPrefix'],
      [{ outcomeRetentionMs: 0 }, 'outcomeRetentionMs'],
      [{ outcomeRetentionMs: 1.5 }, 'outcomeRetentionMs'],
      [{ outcomePollMs: 500, outcomePollMaxMs: 100 }, 'outcomePollMaxMs'],
      [{ url: 'http://localhost:6379' }, 'url'],
      [{ url: REDIS_URL, redisOptions: { host: 'elsewhere' } }, 'url'],
      [{ redisOptions: { keyPrefix: 'x:' } }, 'redisOptions'],
    ]
    for (const [options, option] of cases) {
      let error: unknown
      try {
        new RedisStore(options)
      } catch (e) {
        error = e
      }
      expect(error, JSON.stringify({ ...options, client: options.client && 'client' })).toMatchObject({
        code: 'ESK_CONFIGURATION',
        details: { option },
        message: expect.stringContaining(option),
      })
    }
    const prefixed = new Redis(REDIS_URL, { lazyConnect: true, keyPrefix: 'x:' })
    expect(() => new RedisStore({ client: prefixed })).toThrow(/keyPrefix/)
    client.disconnect()
    prefixed.disconnect()
  })
})

async function scanAll(client: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys
}

async function eventuallyEnded(client: Redis): Promise<void> {
  for (let i = 0; i < 100 && client.status !== 'end'; i++) await sleep(10)
  expect(client.status).toBe('end')
}
