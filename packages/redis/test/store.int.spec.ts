import { randomUUID } from 'node:crypto'
import {
  commandKey,
  sleep,
  type Outcome,
  type RecentCommand,
  type SnapshotStore,
  type SnapshotWrite,
  type StoredSnapshot,
  type StreamSpec,
} from '@esk/core/driver'
import { RedisStore, deleteKeysWithPrefix, type RedisStoreOptions } from '@esk/redis'
import { PartitionKeys, RedisSnapshotStore } from '@esk/redis/driver'
import { Redis, type Command } from 'ioredis'
import { eventually } from '@esk/testing/stack'
import { afterEach, describe, expect, it } from 'vitest'
import { REDIS_URL, isolatedStores, keySlots, testPrefix } from './support.js'

const stream: StreamSpec = { aggregate: 'Account', partitions: 4 }

function snapshot(aggregateId: string, offset: number, state = `{"at":${offset}}`, recent: RecentCommand[] = []): StoredSnapshot {
  return { aggregateId, version: offset + 1, schemaVersion: 1, offset, state, recent }
}

function accepted(commandId: string, aggregateId = 'a-1', version = 1, events = 1): Outcome {
  return { status: 'accepted', commandId, aggregateId, version, events }
}

function rejected(commandId: string, aggregateId = 'a-1', reason = 'no'): Outcome {
  return { status: 'rejected', commandId, aggregateId, error: { code: 'ESK_COMMAND_REJECTED', message: reason } }
}

function write(parts: Partial<SnapshotWrite> = {}): SnapshotWrite {
  return { snapshots: [], checkpoint: { offset: 0, commandPosition: -1, schemaVersion: 1 }, unlogged: [], ...parts }
}

/** Takes a partition with a fresh owner token, as a processor does after the log's fence. */
async function take(snapshots: SnapshotStore, partition: number): Promise<string> {
  const token = randomUUID()
  await snapshots.acquire(stream, partition, token)
  return token
}

/** Everything Redis holds for a partition, to show that a refused write changed nothing. */
async function contents(admin: Redis, keys: PartitionKeys): Promise<unknown> {
  return {
    state: await admin.hgetall(keys.state),
    unlogged: await admin.hgetall(keys.unlogged),
    order: await admin.lrange(keys.unloggedOrder, 0, -1),
  }
}

/**
 * Records every command the client sends and how many replies had arrived when it was sent: a
 * call made in one round trip sends everything before the first reply.
 */
function recordCommands(client: Redis): { sent: Array<{ name: string; args: unknown[]; repliesBefore: number }>; restore(): void } {
  const sent: Array<{ name: string; args: unknown[]; repliesBefore: number }> = []
  let replies = 0
  const original = client.sendCommand
  client.sendCommand = function (this: Redis, command: Command, ...rest: unknown[]) {
    sent.push({ name: command.name, args: command.args, repliesBefore: replies })
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
    const token = await take(snapshots, 1)
    await snapshots.save(stream, 1, token, write({ snapshots: [snapshot('a', 5, '{"v":"five"}')], ready: true }))
    await snapshots.save(stream, 1, token, write({ snapshots: [snapshot('a', 3, '{"v":"three"}')] }))
    expect((await snapshots.read(stream, 1, 'a'))?.state).toBe('{"v":"five"}')
    // Equal offsets carry identical content in practice; a replayed save must still go through.
    await snapshots.save(stream, 1, token, write({ snapshots: [snapshot('a', 5, '{"v":"five again"}')] }))
    expect((await snapshots.read(stream, 1, 'a'))?.state).toBe('{"v":"five again"}')
    const window = [{ commandId: 'c-9', version: 10, events: 2 }]
    await snapshots.save(stream, 1, token, write({ snapshots: [snapshot('a', 9, '{"v":"nine"}', window), snapshot('b', 2)] }))
    expect(await snapshots.read(stream, 1, 'a')).toEqual(snapshot('a', 9, '{"v":"nine"}', window))
    expect(await snapshots.read(stream, 1, 'b')).toEqual(snapshot('b', 2))
    expect(await snapshots.read(stream, 1, 'missing')).toBeUndefined()
    const other = await take(snapshots, 2)
    await snapshots.save(stream, 2, other, write({ ready: true }))
    expect(await snapshots.read(stream, 2, 'a')).toBeUndefined()
  })

  it('moves the checkpoint forward only, field by field, and takes the new schema version', async () => {
    const { snapshots } = open()
    expect(await snapshots.checkpoint(stream, 0)).toBeUndefined()
    const token = await take(snapshots, 0)
    // Taking a partition writes no checkpoint: a new owner must still see that there is none.
    expect(await snapshots.checkpoint(stream, 0)).toBeUndefined()
    await snapshots.save(stream, 0, token, write({ checkpoint: { offset: 10, commandPosition: 4, schemaVersion: 1 } }))
    await snapshots.save(stream, 0, token, write({ checkpoint: { offset: 5, commandPosition: 7, schemaVersion: 2 } }))
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 10, commandPosition: 7, schemaVersion: 2 })
    await snapshots.save(stream, 0, token, write({ checkpoint: { offset: 12, commandPosition: 2, schemaVersion: 3 } }))
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 12, commandPosition: 7, schemaVersion: 3 })
    await snapshots.save(stream, 0, token, write({ checkpoint: { offset: 0, commandPosition: -1, schemaVersion: 3 } }))
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 12, commandPosition: 7, schemaVersion: 3 })
  })

  it('keeps offsets up to 2^53 - 1 exact and returns numbers, not strings', async () => {
    const { snapshots } = open()
    const token = await take(snapshots, 3)
    const big = Number.MAX_SAFE_INTEGER
    await snapshots.save(
      stream,
      3,
      token,
      write({
        snapshots: [snapshot('a', big - 1)],
        checkpoint: { offset: 1_000_000_000_000_001, commandPosition: big, schemaVersion: 4 },
        ready: true,
      }),
    )
    const checkpoint = await snapshots.checkpoint(stream, 3)
    expect(checkpoint).toEqual({ offset: 1_000_000_000_000_001, commandPosition: big, schemaVersion: 4 })
    // One below the stored offsets, so only an exact comparison rejects them.
    await snapshots.save(
      stream,
      3,
      token,
      write({
        snapshots: [snapshot('a', big - 2, '{"older":true}')],
        checkpoint: { offset: 1_000_000_000_000_000, commandPosition: big - 1, schemaVersion: 4 },
      }),
    )
    const read = await snapshots.read(stream, 3, 'a')
    expect(read).toEqual(snapshot('a', big - 1))
    expect(await snapshots.checkpoint(stream, 3)).toEqual(checkpoint)
    const loaded = await snapshots.load(stream, 3, token, ['a'], [])
    expect(loaded.snapshots.get('a')).toEqual(read)
    expect(loaded.checkpoint).toEqual(checkpoint)
    for (const value of [read!.offset, read!.version, read!.schemaVersion, ...Object.values(checkpoint!)]) {
      expect(typeof value).toBe('number')
    }
    await expect(
      snapshots.save(stream, 3, token, write({ snapshots: [snapshot('a', big + 1)] })),
    ).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT' })
  })

  it('loads ownership, checkpoint, snapshots and unlogged outcomes in one round trip, and saves with one script call', async () => {
    const store = open()
    const { snapshots } = store
    const token = await take(snapshots, 2)
    await snapshots.save(
      stream,
      2,
      token,
      write({
        snapshots: [snapshot('a', 1), snapshot('b', 2)],
        unlogged: [rejected('c-1', 'a'), accepted('c-2', 'b', 2, 0)],
      }),
    )
    const recorder = recordCommands(store.client)
    try {
      const loaded = await snapshots.load(stream, 2, token, ['a', 'b', 'none'], [
        { aggregateId: 'a', commandId: 'c-1' },
        { aggregateId: 'b', commandId: 'c-2' },
        { aggregateId: 'a', commandId: 'c-none' },
      ])
      expect(loaded.owned).toBe(true)
      expect([...loaded.snapshots.keys()]).toEqual(['a', 'b'])
      expect(loaded.snapshots.get('b')).toEqual(snapshot('b', 2))
      expect([...loaded.unlogged.keys()]).toEqual([
        commandKey({ aggregateId: 'a', commandId: 'c-1' }),
        commandKey({ aggregateId: 'b', commandId: 'c-2' }),
      ])
      expect(loaded.unlogged.get(commandKey({ aggregateId: 'b', commandId: 'c-2' }))).toEqual(accepted('c-2', 'b', 2, 0))
      expect(loaded.checkpoint).toEqual(write().checkpoint)
      expect(recorder.sent.map((c) => c.name)).toEqual(['multi', 'hmget', 'hmget', 'exec'])
      expect(recorder.sent.every((c) => c.repliesBefore === 0)).toBe(true)

      // Even with nothing to load, ownership and the checkpoint come back: processors check both.
      recorder.sent.length = 0
      const empty = await snapshots.load(stream, 2, token, [], [])
      expect(empty.snapshots.size + empty.unlogged.size).toBe(0)
      expect(empty).toMatchObject({ owned: true, checkpoint: write().checkpoint })
      expect(recorder.sent.map((c) => c.name)).toEqual(['multi', 'hmget', 'exec'])
      expect(await snapshots.load(stream, 7, token, [], [])).toMatchObject({ owned: false, checkpoint: undefined })
      expect((await snapshots.load(stream, 2, token, ['a'], [])).snapshots.get('a')).toEqual(snapshot('a', 1))

      recorder.sent.length = 0
      await snapshots.save(stream, 2, token, write({ snapshots: [snapshot('a', 3)], unlogged: [rejected('c-3', 'a')] }))
      expect(recorder.sent.map((c) => c.name)).toEqual(['evalsha'])
      recorder.sent.length = 0
      await snapshots.reset(stream, 2, token)
      expect(recorder.sent.map((c) => c.name)).toEqual(['evalsha'])
    } finally {
      recorder.restore()
    }
  })

  it('publishes the replies of a save in its script, once the write is recorded, and none when it is refused', async () => {
    const store = open()
    const { snapshots } = store
    const token = await take(snapshots, 1)
    const subscriber = admin().duplicate()
    const heard: Array<{ channel: string; outcome: unknown; recorded: unknown }> = []
    subscriber.on('message', (channel: string, text: string) => {
      const outcome = JSON.parse(text) as Outcome
      // What a client that hears the reply finds in the store at that moment.
      void snapshots.readOutcome(stream, 1, outcome).then((recorded) => heard.push({ channel, outcome, recorded }))
    })
    await subscriber.subscribe(`${prefix()}replies:client-1`, `${prefix()}replies:client-2`)
    try {
      const refused = rejected('r-1', 'a')
      const recorder = recordCommands(store.client)
      try {
        await snapshots.save(stream, 1, token, write({ unlogged: [refused], replies: [{ replyTo: 'client-1', outcome: refused }] }))
        // No PUBLISH of its own: the script published.
        expect(recorder.sent[0]?.name).toBe('evalsha')
        expect(recorder.sent.some((c) => c.name === 'publish')).toBe(false)
      } finally {
        recorder.restore()
      }
      await expect(
        snapshots.save(stream, 1, 'forged', write({ unlogged: [rejected('r-2', 'a')], replies: [{ replyTo: 'client-2', outcome: rejected('r-2', 'a') }] })),
      ).rejects.toMatchObject({ code: 'ESK_FENCED' })
      await eventually(() => heard.length > 0, 'the reply')
      await sleep(100)
      expect(heard).toEqual([{ channel: `${prefix()}replies:client-1`, outcome: refused, recorded: refused }])
      expect(snapshots.publishesReplies).toBe(true)
    } finally {
      await subscriber.quit()
    }
  })

  it('resets snapshots, checkpoint and unlogged outcomes of one partition, keeping its owner and other partitions', async () => {
    const { snapshots } = open()
    const full = write({
      snapshots: [snapshot('a', 4)],
      checkpoint: { offset: 5, commandPosition: 9, schemaVersion: 1 },
      unlogged: [rejected('refused', 'a')],
      ready: true,
    })
    const token = await take(snapshots, 0)
    const other = await take(snapshots, 1)
    await snapshots.save(stream, 0, token, full)
    await snapshots.save(stream, 1, other, full)
    await snapshots.reset(stream, 0, token)
    const keys = new PartitionKeys(prefix(), stream, 0)
    expect(await contents(admin(), keys)).toEqual({ state: { '@owner': token }, unlogged: {}, order: [] })
    expect(await snapshots.checkpoint(stream, 0)).toBeUndefined()
    expect(await snapshots.readOutcome(stream, 0, { aggregateId: 'a', commandId: 'refused' })).toBeUndefined()
    expect(await snapshots.read(stream, 1, 'a')).toEqual(snapshot('a', 4))
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'a', commandId: 'refused' })).toEqual(rejected('refused', 'a'))
    // After a reset an older offset is accepted again: the rebuild starts from 0.
    await snapshots.save(stream, 0, token, write({ snapshots: [snapshot('a', 0)], ready: true }))
    expect(await snapshots.read(stream, 0, 'a')).toEqual(snapshot('a', 0))
  })

  it('lays out every key of a partition under one hash tag, so they share a cluster slot', async () => {
    const { snapshots } = open()
    const token = await take(snapshots, 3)
    await snapshots.save(
      stream,
      3,
      token,
      write({
        snapshots: [snapshot('a', 1)],
        checkpoint: { offset: 2, commandPosition: 0, schemaVersion: 1 },
        unlogged: [rejected(randomUUID(), 'a')],
      }),
    )
    const written = (await scanAll(admin(), `${prefix()}*`)).sort()
    const tag = `${prefix()}{Account:3}:`
    expect(written).toEqual([`${tag}state`, `${tag}unlogged`, `${tag}unlogged-order`])
    const slots = await keySlots(admin(), written)
    expect(new Set(slots).size).toBe(1)
    const other = new PartitionKeys(prefix(), stream, 2)
    expect(await keySlots(admin(), [other.state])).not.toEqual([slots[0]])
  })

  it('isolates key prefixes', async () => {
    const mine = open()
    const otherPrefix = testPrefix()
    const theirs = open({ keyPrefix: otherPrefix })
    try {
      const token = await take(mine.snapshots, 0)
      await mine.snapshots.save(
        stream,
        0,
        token,
        write({ snapshots: [snapshot('a', 1)], unlogged: [rejected('c', 'a')], ready: true }),
      )
      await expect(theirs.snapshots.read(stream, 0, 'a')).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE' })
      expect(await theirs.snapshots.readOutcome(stream, 0, { aggregateId: 'a', commandId: 'c' })).toBeUndefined()
      expect(await theirs.snapshots.checkpoint(stream, 0)).toBeUndefined()
      expect((await theirs.snapshots.load(stream, 0, token, ['a'], [])).owned).toBe(false)
      const theirToken = await take(theirs.snapshots, 0)
      await theirs.snapshots.save(stream, 0, theirToken, write({ snapshots: [snapshot('a', 7)] }))
      expect(await deleteKeysWithPrefix(admin(), otherPrefix)).toBe(1)
      expect(await mine.snapshots.read(stream, 0, 'a')).toEqual(snapshot('a', 1))
      expect((await mine.snapshots.load(stream, 0, token, [], [])).owned).toBe(true)
    } finally {
      await deleteKeysWithPrefix(admin(), otherPrefix)
    }
  })

  it('flushes keys of a prefix with glob characters only', async () => {
    const special = `esk-test-[${randomUUID()}]*?:`
    const store = open({ keyPrefix: special })
    const token = await take(store.snapshots, 0)
    await store.snapshots.save(stream, 0, token, write({ snapshots: [snapshot('a', 1)], unlogged: [rejected('c', 'a')] }))
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

  it('reports a value it did not write with ESK_SERIALIZATION and where it is', async () => {
    const { snapshots } = open()
    const keys = new PartitionKeys(prefix(), stream, 0)
    const token = await take(snapshots, 0)
    await snapshots.save(stream, 0, token, write({ ready: true }))
    await admin().hset(keys.state, 's:bad', '{"aggregateId":"bad","version":"1"}')
    const bad = { code: 'ESK_SERIALIZATION', details: { key: keys.state, field: 's:bad' } }
    await expect(snapshots.read(stream, 0, 'bad')).rejects.toMatchObject(bad)
    await expect(snapshots.load(stream, 0, token, ['bad'], [])).rejects.toMatchObject(bad)
    await admin().hset(keys.state, 's:window', JSON.stringify({ ...snapshot('window', 1), recent: [['c', -1, 1]] }))
    await expect(snapshots.read(stream, 0, 'window')).rejects.toMatchObject({
      code: 'ESK_SERIALIZATION',
      message: expect.stringContaining('recent'),
    })
    await expect(snapshots.readOutcome(stream, 0, { aggregateId: 'window', commandId: 'c' })).rejects.toMatchObject({
      code: 'ESK_SERIALIZATION',
    })
    await admin().hset(keys.state, '@position', 'twelve')
    await expect(snapshots.checkpoint(stream, 0)).rejects.toMatchObject({
      code: 'ESK_SERIALIZATION',
      details: { key: keys.state, field: '@position' },
    })
    // A checkpoint with a field missing is not one esk wrote either.
    const partial = new PartitionKeys(prefix(), stream, 1)
    await admin().hset(partial.state, '@offset', '12')
    await expect(snapshots.checkpoint(stream, 1)).rejects.toMatchObject({ code: 'ESK_SERIALIZATION' })
    const command = { aggregateId: 'x', commandId: 'c' }
    await admin().hset(keys.unlogged, commandKey(command), 'not json')
    await expect(snapshots.readOutcome(stream, 0, command)).rejects.toMatchObject({
      code: 'ESK_SERIALIZATION',
      details: { key: keys.unlogged },
    })
    await expect(snapshots.load(stream, 0, token, [], [command])).rejects.toMatchObject({ code: 'ESK_SERIALIZATION' })
  })

  it('never closes a client it was given, and closes what it created, once', async () => {
    const client = new Redis(REDIS_URL)
    try {
      const store = new RedisStore({ client, keyPrefix: prefix() })
      const command = { aggregateId: 'a-1', commandId: 'c' }
      const waiting = store.outcomes.wait(stream, 0, command).outcome
      const token = await take(store.snapshots, 0)
      await store.snapshots.save(stream, 0, token, write({ unlogged: [accepted('c', 'a-1', 1, 0)], ready: true }))
      await store.outcomes.publish(stream, 0, [{ replyTo: store.outcomes.address, outcome: accepted('c', 'a-1', 1, 0) }])
      expect(await waiting).toEqual(accepted('c', 'a-1', 1, 0))
      await store.close()
      await store.close()
      expect(await client.ping()).toBe('PONG')
      expect(await store.snapshots.read(stream, 0, 'none')).toBeUndefined()
      // The subscriber connection was ours: nobody listens on the channel any more.
      const channel = `${prefix()}replies:${store.outcomes.address}`
      const [, listeners] = (await admin().pubsub('NUMSUB', channel)) as [string, number]
      expect(Number(listeners)).toBe(0)
      await expect(
        store.outcomes.wait(stream, 0, { aggregateId: 'a-1', commandId: 'd' }).outcome,
      ).rejects.toMatchObject({ code: 'ESK_CLOSED' })
    } finally {
      await client.quit()
    }

    const owned = open()
    await owned.snapshots.checkpoint(stream, 0)
    await Promise.all([owned.close(), owned.close()])
    await eventuallyEnded(owned.client)
    await expect(owned.snapshots.checkpoint(stream, 0)).rejects.toThrow(/closed/i)
  })

  it('rejects a save at once when Redis cannot be reached, and reports the connection failure', async () => {
    const warnings: string[] = []
    const logger = { debug() {}, info() {}, error() {}, warn: (message: string) => void warnings.push(message) }
    const store = open({ url: 'redis://127.0.0.1:1', logger })
    const started = Date.now()
    await expect(store.snapshots.save(stream, 0, 'token', write({ snapshots: [snapshot('a', 1)] }))).rejects.toThrow(
      /saving 1 snapshots and 0 outcomes of Account\/0 failed/,
    )
    await expect(store.snapshots.reset(stream, 0, 'token')).rejects.toThrow(/resetting Account\/0 failed/)
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
      [{ unloggedWindow: 0 }, 'unloggedWindow'],
      [{ unloggedWindow: 1.5 }, 'unloggedWindow'],
      [{ outcomePollMs: 500, outcomePollMaxMs: 100 }, 'outcomePollMaxMs'],
      [{ url: 'http://localhost:6379' }, 'url'],
      [{ url: REDIS_URL, redisOptions: { host: 'elsewhere' } }, 'url'],
      [{ redisOptions: { keyPrefix: 'x:' } }, 'redisOptions'],
    ]
    for (const [options, option] of cases) {
      expect(configurationError(() => new RedisStore(options)), JSON.stringify({ ...options, client: options.client && 'client' })).toMatchObject({
        code: 'ESK_CONFIGURATION',
        details: { option },
        message: expect.stringContaining(option),
      })
    }
    // The snapshot store used on its own checks its options the same way.
    for (const [options, option] of cases.filter(([, option]) => option === 'keyPrefix' || option === 'unloggedWindow')) {
      expect(configurationError(() => new RedisSnapshotStore(client, options)), JSON.stringify(options)).toMatchObject({
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

describe('RedisSnapshotStore fencing', () => {
  const { open, admin, prefix } = isolatedStores()

  // Issue 6, scenario 2: a processor that lost the partition still has a save or reset in flight
  // (ioredis resends commands after a reconnect) and it lands after the new owner took over. Before
  // 61b73dd nothing in Redis knew the owner: the save and the reset went through. Fails on that code.
  it('refuses a save or reset with an earlier owner token, changing nothing, and accepts the current owner', async () => {
    const old = open()
    const current = open()
    const keys = new PartitionKeys(prefix(), stream, 0)
    const t1 = await take(old.snapshots, 0)
    await old.snapshots.save(
      stream,
      0,
      t1,
      write({
        snapshots: [snapshot('a', 4)],
        checkpoint: { offset: 5, commandPosition: 9, schemaVersion: 1 },
        unlogged: [rejected('first', 'a')],
      }),
    )
    const t2 = await take(current.snapshots, 0)
    const before = await contents(admin(), keys)
    expect(before).toMatchObject({ state: { '@owner': t2, 'o:a': '4' } })

    // Every part of this write would change something if it were applied.
    const late = write({
      snapshots: [snapshot('a', 8, '{"late":true}'), snapshot('b', 7)],
      checkpoint: { offset: 9, commandPosition: 12, schemaVersion: 2 },
      unlogged: [rejected('late', 'a')],
      ready: true,
    })
    const fenced = { code: 'ESK_FENCED', details: { aggregate: 'Account', partition: 0 } }
    await expect(old.snapshots.save(stream, 0, t1, late)).rejects.toMatchObject({
      ...fenced,
      message: expect.stringContaining('saving 2 snapshots and 1 outcomes of Account/0 was refused'),
    })
    await expect(old.snapshots.reset(stream, 0, t1)).rejects.toMatchObject({
      ...fenced,
      message: expect.stringContaining('resetting Account/0 was refused'),
    })
    // A token nobody took is refused the same way.
    await expect(old.snapshots.save(stream, 0, 'forged', late)).rejects.toMatchObject(fenced)
    expect(await contents(admin(), keys)).toEqual(before)

    await current.snapshots.save(stream, 0, t2, late)
    expect(await current.snapshots.read(stream, 0, 'a')).toEqual(snapshot('a', 8, '{"late":true}'))
    expect(await current.snapshots.checkpoint(stream, 0)).toEqual(late.checkpoint)
    await current.snapshots.reset(stream, 0, t2)
    expect(await contents(admin(), keys)).toEqual({ state: { '@owner': t2 }, unlogged: {}, order: [] })
  })

  // Issue 6, scenarios 1 and 2: the store is emptied (FLUSHALL, eviction, a restart without
  // persistence) while a processor still has a write in flight. Before 61b73dd, save was an
  // unconditional script and reset a plain UNLINK, so this late save re-created the checkpoint and
  // a snapshot in the empty store, and the next owner's check saw a partition that looked whole.
  // This test fails on that code. Deleting the test prefix is FLUSHALL for these keys without
  // touching anything else the server holds.
  it('refuses a late write after the store was emptied and does not re-create the partition', async () => {
    const old = open()
    const keys = new PartitionKeys(prefix(), stream, 0)
    const t1 = await take(old.snapshots, 0)
    await old.snapshots.save(
      stream,
      0,
      t1,
      write({ snapshots: [snapshot('a', 1)], checkpoint: { offset: 2, commandPosition: 1, schemaVersion: 1 }, ready: true }),
    )
    expect(await deleteKeysWithPrefix(admin(), prefix())).toBe(1)

    const late = write({
      snapshots: [snapshot('a', 3)],
      checkpoint: { offset: 4, commandPosition: 3, schemaVersion: 1 },
      unlogged: [rejected('late', 'a')],
      ready: true,
    })
    await expect(old.snapshots.save(stream, 0, t1, late)).rejects.toMatchObject({ code: 'ESK_FENCED' })
    await expect(old.snapshots.reset(stream, 0, t1)).rejects.toMatchObject({ code: 'ESK_FENCED' })
    expect(await admin().exists(keys.state)).toBe(0)
    expect(await admin().exists(keys.unlogged, keys.unloggedOrder)).toBe(0)
    expect(await old.snapshots.checkpoint(stream, 0)).toBeUndefined()
  })

  it('tells a loader it no longer owns the partition after another acquire or after the store was emptied', async () => {
    const first = open()
    const second = open()
    const t1 = await take(first.snapshots, 1)
    expect((await first.snapshots.load(stream, 1, t1, [], [])).owned).toBe(true)
    await first.snapshots.save(stream, 1, t1, write({ snapshots: [snapshot('a', 1)], ready: true }))

    const t2 = await take(second.snapshots, 1)
    const taken = await first.snapshots.load(stream, 1, t1, ['a'], [])
    expect(taken.owned).toBe(false)
    expect((await second.snapshots.load(stream, 1, t2, [], [])).owned).toBe(true)

    await deleteKeysWithPrefix(admin(), prefix())
    const emptied = await second.snapshots.load(stream, 1, t2, ['a'], [{ aggregateId: 'a', commandId: 'c' }])
    expect(emptied).toEqual({ owned: false, claimed: false, snapshots: new Map(), unlogged: new Map(), checkpoint: undefined })
    // Taking the partition again is what makes it owned: the processor then replays it.
    const t3 = await take(second.snapshots, 1)
    expect((await second.snapshots.load(stream, 1, t3, [], [])).owned).toBe(true)
    expect((await second.snapshots.load(stream, 1, t2, [], [])).owned).toBe(false)
  })

  it('answers reads with ESK_UNAVAILABLE until the partition is saved ready, and again after a reset', async () => {
    const { snapshots } = open()
    const unavailable = {
      code: 'ESK_UNAVAILABLE',
      retriable: true,
      details: { aggregate: 'Account', partition: 2 },
    }
    // Nothing was ever recovered here: a missing snapshot would prove nothing.
    await expect(snapshots.read(stream, 2, 'a')).rejects.toMatchObject(unavailable)
    const t1 = await take(snapshots, 2)
    await snapshots.save(stream, 2, t1, write({ snapshots: [snapshot('a', 1)] }))
    await expect(snapshots.read(stream, 2, 'a')).rejects.toMatchObject(unavailable)
    await expect(snapshots.read(stream, 2, 'b')).rejects.toMatchObject(unavailable)
    await snapshots.save(stream, 2, t1, write({ checkpoint: { offset: 2, commandPosition: 0, schemaVersion: 1 }, ready: true }))
    expect(await snapshots.read(stream, 2, 'a')).toEqual(snapshot('a', 1))
    expect(await snapshots.read(stream, 2, 'b')).toBeUndefined()

    // A takeover that only catches up keeps the partition readable: its snapshots stay valid.
    const t2 = await take(snapshots, 2)
    expect(await snapshots.read(stream, 2, 'a')).toEqual(snapshot('a', 1))
    // A rebuild does not: until it is done, a missing snapshot would be a lie.
    await snapshots.reset(stream, 2, t2)
    await expect(snapshots.read(stream, 2, 'a')).rejects.toMatchObject(unavailable)
    await snapshots.save(stream, 2, t2, write({ snapshots: [snapshot('b', 0)] }))
    await expect(snapshots.read(stream, 2, 'b')).rejects.toMatchObject(unavailable)
    await snapshots.save(stream, 2, t2, write({ ready: true }))
    expect(await snapshots.read(stream, 2, 'b')).toEqual(snapshot('b', 0))
    expect(await snapshots.read(stream, 2, 'a')).toBeUndefined()

    // An emptied store is not ready either, whatever a reader saw before.
    await deleteKeysWithPrefix(admin(), prefix())
    await expect(snapshots.read(stream, 2, 'b')).rejects.toMatchObject(unavailable)
  })
})

describe('RedisSnapshotStore de-duplication records', () => {
  const { open, admin, prefix } = isolatedStores()

  it('keeps at most unloggedWindow unlogged outcomes, oldest dropped first, none with a time to live', async () => {
    const { snapshots } = open({ unloggedWindow: 3 })
    const keys = new PartitionKeys(prefix(), stream, 0)
    const token = await take(snapshots, 0)
    const outcomes = Array.from({ length: 5 }, (_, i) => rejected(`c-${i}`, `a-${i % 2}`))
    const keyOf = (o: Outcome): string => commandKey(o)
    await snapshots.save(stream, 0, token, write({ unlogged: outcomes.slice(0, 2) }))
    expect(await admin().lrange(keys.unloggedOrder, 0, -1)).toEqual(outcomes.slice(0, 2).map(keyOf))
    await snapshots.save(stream, 0, token, write({ unlogged: outcomes.slice(2) }))
    expect(await admin().lrange(keys.unloggedOrder, 0, -1)).toEqual(outcomes.slice(2).map(keyOf))
    expect(Object.keys(await admin().hgetall(keys.unlogged)).sort()).toEqual(outcomes.slice(2).map(keyOf).sort())
    for (const outcome of outcomes.slice(0, 2)) expect(await snapshots.readOutcome(stream, 0, outcome)).toBeUndefined()
    for (const outcome of outcomes.slice(2)) expect(await snapshots.readOutcome(stream, 0, outcome)).toEqual(outcome)
    const loaded = await snapshots.load(stream, 0, token, [], outcomes)
    expect([...loaded.unlogged.keys()]).toEqual(outcomes.slice(2).map(keyOf))

    // One write larger than the window keeps only its newest outcomes.
    const burst = Array.from({ length: 10 }, (_, i) => rejected(`burst-${i}`))
    await snapshots.save(stream, 0, token, write({ unlogged: burst }))
    expect(await admin().lrange(keys.unloggedOrder, 0, -1)).toEqual(burst.slice(7).map(keyOf))
    expect(await admin().hlen(keys.unlogged)).toBe(3)
    // What a processor reads once it recovered, to know which commands may have a recorded refusal.
    expect(await snapshots.unloggedKeys(stream, 0)).toEqual({ keys: burst.slice(7).map(keyOf), window: 3 })

    // Bounded by count, not by time: no key of the partition expires, so no volatile-* eviction
    // policy picks them, and nothing reopens a window behind the processor's back.
    for (const key of keys.all) expect(await admin().pttl(key)).toBe(-1)
  })

  it('keeps the first outcome of a command while it is in the window', async () => {
    const { snapshots } = open({ unloggedWindow: 2 })
    const keys = new PartitionKeys(prefix(), stream, 0)
    const token = await take(snapshots, 0)
    const first = rejected('c', 'a', 'first')
    await snapshots.save(stream, 0, token, write({ unlogged: [first] }))
    await snapshots.save(stream, 0, token, write({ unlogged: [accepted('c', 'a', 3, 0), rejected('c', 'a', 'third')] }))
    expect(await snapshots.readOutcome(stream, 0, { aggregateId: 'a', commandId: 'c' })).toEqual(first)
    // The repeats took no place in the window.
    expect(await admin().lrange(keys.unloggedOrder, 0, -1)).toEqual([commandKey(first)])
    // Within one write too, the first of two outcomes for a command is kept.
    await snapshots.save(stream, 0, token, write({ unlogged: [rejected('d', 'a', 'one'), rejected('d', 'a', 'two')] }))
    expect(await snapshots.readOutcome(stream, 0, { aggregateId: 'a', commandId: 'd' })).toEqual(rejected('d', 'a', 'one'))
    expect(await admin().llen(keys.unloggedOrder)).toBe(2)

    // The limit: once an outcome has left the window, a later one for the same command is recorded.
    await snapshots.save(stream, 0, token, write({ unlogged: [rejected('e', 'a')] }))
    expect(await snapshots.readOutcome(stream, 0, first)).toBeUndefined()
    await snapshots.save(stream, 0, token, write({ unlogged: [accepted('c', 'a', 3, 0)] }))
    expect(await snapshots.readOutcome(stream, 0, first)).toEqual(accepted('c', 'a', 3, 0))
  })

  // Issue 6, scenario 3: before 61b73dd, outcomes were keyed by (partition, commandId), so the
  // second aggregate's command read the first one's outcome. This test fails on that code.
  it('finds outcomes by aggregate and command id: accepted ones in the snapshot window, refusals in the unlogged hash', async () => {
    const { snapshots } = open()
    const token = await take(snapshots, 1)
    const shared = 'idempotency-key-1'
    const window = [
      { commandId: 'older', version: 1, events: 1 },
      { commandId: shared, version: 3, events: 2 },
    ]
    await snapshots.save(
      stream,
      1,
      token,
      write({ snapshots: [snapshot('a', 2, '{}', window), snapshot('b', 0)], unlogged: [rejected(shared, 'b')] }),
    )
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'a', commandId: shared })).toEqual(accepted(shared, 'a', 3, 2))
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'b', commandId: shared })).toEqual(rejected(shared, 'b'))
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'c', commandId: shared })).toBeUndefined()
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'b', commandId: 'older' })).toBeUndefined()
    const loaded = await snapshots.load(stream, 1, token, ['a', 'b'], [
      { aggregateId: 'a', commandId: shared },
      { aggregateId: 'b', commandId: shared },
    ])
    expect([...loaded.unlogged.entries()]).toEqual([[commandKey({ aggregateId: 'b', commandId: shared }), rejected(shared, 'b')]])
    expect(loaded.snapshots.get('a')?.recent).toEqual(window)

    // The window is what the aggregate's latest snapshot carries: a command that left it is gone.
    const moved = [...window.slice(1), { commandId: 'newest', version: 4, events: 1 }]
    await snapshots.save(stream, 1, token, write({ snapshots: [snapshot('a', 3, '{}', moved)] }))
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'a', commandId: 'older' })).toBeUndefined()
    expect(await snapshots.readOutcome(stream, 1, { aggregateId: 'a', commandId: 'newest' })).toEqual(
      accepted('newest', 'a', 4, 1),
    )
  })
})

function configurationError(create: () => unknown): unknown {
  try {
    create()
  } catch (error) {
    return error
  }
  return undefined
}

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

describe('RedisSnapshotStore de-duplication windows', () => {
  const { open, admin, prefix } = isolatedStores()
  const clients: Redis[] = []
  afterEach(() => {
    for (const client of clients.splice(0)) client.disconnect()
  })

  /** A store on a client of its own, whose commands {@link saves} can see. */
  function ownStore(): { client: Redis; snapshots: RedisSnapshotStore } {
    const client = new Redis(REDIS_URL)
    clients.push(client)
    return { client, snapshots: new RedisSnapshotStore(client, { keyPrefix: prefix() }) }
  }

  /** The save script calls a store made on `client` sends, with their ARGV. */
  function saves(client: Redis): { argv: string[][]; restore(): void } {
    const recorded = recordCommands(client)
    return {
      // EVALSHA sha numkeys key1 key2 key3 ARGV...
      get argv() {
        return recorded.sent.filter((c) => c.name === 'evalsha' || c.name === 'eval').map((c) => c.args.slice(5).map(String))
      },
      restore: recorded.restore,
    }
  }

  /** A window of at most `size` entries after `entry`, as a processor keeps it: the same entry objects. */
  function remember(window: RecentCommand[], entry: RecentCommand, size: number): RecentCommand[] {
    return [...window, entry].slice(-size)
  }

  /** The window of the snapshot of `id` as a store that never saw it reads it. */
  async function stored(id: string): Promise<RecentCommand[] | undefined> {
    return (await open().snapshots.read(stream, 0, id))?.recent
  }

  const entry = (n: number): RecentCommand => ({ commandId: `c-${n}`, version: n, events: 1, offset: n })

  /** A window's text as the save script receives it: one compact entry per line. */
  const text = (window: RecentCommand[]): string => window.map((e) => JSON.stringify([e.commandId, e.version, e.events, e.offset])).join('\n')

  /** The next snapshot of an aggregate as a processor writes it: with the memo its last snapshot carries. */
  const after = (last: StoredSnapshot | undefined, offset: number, recent: RecentCommand[]): StoredSnapshot => ({
    ...snapshot('a', offset, '{}', recent),
    windowMemo: last?.windowMemo,
  })

  /** What a save script call sent of the first snapshot (or the `k`th): [expected offset, window text]. */
  const windowArgs = (argv: string[], k = 0): [string, string] => [argv[11 + 5 * k]!, argv[12 + 5 * k]!]

  it('sends each save the newest entries of its window while they are few, the whole window now and then, and reads it back whole', async () => {
    const { client, snapshots } = ownStore()
    const token = await take(snapshots, 0)
    const sent = saves(client)
    let window: RecentCommand[] = []
    let last: StoredSnapshot | undefined
    // One entry a save, two at once (the oldest two go), and a save that adds none (a refusal).
    const added = [1, 1, 1, 1, 1, 2, 0, 1, 2, 1]
    let n = 0
    for (const count of added) {
      for (let k = 0; k < count; k++) window = remember(window, entry(++n), 4)
      last = after(last, n, window)
      await snapshots.save(stream, 0, token, write({ snapshots: [last], ready: true }))
      expect(last.windowMemo).toBeDefined()
      expect(await stored('a')).toEqual(window)
    }
    sent.restore()
    // A window of 4 sends up to 3 newest entries, each part naming the snapshot it extends; then
    // the whole window (an empty expected offset), built on the texts sent before.
    const e = (...ns: number[]): string => text(ns.map(entry))
    expect(sent.argv.map((argv) => windowArgs(argv))).toEqual([
      ['', e(1)],
      ['1', e(2)],
      ['2', e(2, 3)],
      ['3', e(2, 3, 4)],
      ['', e(2, 3, 4, 5)],
      ['5', e(6, 7)],
      ['7', e(6, 7)],
      ['7', e(6, 7, 8)],
      ['', e(7, 8, 9, 10)],
      ['10', e(11)],
    ])
  })

  it('builds on the window texts it loaded, and sends whole the window of a snapshot written with the window inside', async () => {
    const keys = new PartitionKeys(prefix(), stream, 0)
    const writer = open().snapshots
    const token = await take(writer, 0)
    await writer.save(stream, 0, token, write({ snapshots: [snapshot('a', 1, '{}', [entry(1)])], ready: true }))
    // As the previous version wrote snapshots: the whole window in `w:`, with an entry as versions
    // before offsets were kept wrote it, with spaces no save of this version writes. The text is
    // built on as it is, so the spaces show which saves built on it.
    await admin().hset(keys.state, 's:a', JSON.stringify({ ...snapshot('a', 1), recent: 'separate' }), 'w:a', '["c-0", 1, 1]\n["c-1",1,1,1]')
    // As esk wrote snapshots before windows had a field of their own.
    await admin().hset(keys.state, 's:old', JSON.stringify({ ...snapshot('old', 1), recent: [['c-1', 1, 1, 1]] }), 'o:old', '1')

    const { client, snapshots } = ownStore()
    const loaded = await snapshots.load(stream, 0, token, ['a', 'old'], [])
    const c0 = { commandId: 'c-0', version: 1, events: 1, offset: undefined }
    expect(loaded.snapshots.get('a')?.recent).toEqual([c0, entry(1)])
    expect(loaded.snapshots.get('old')?.recent).toEqual([entry(1)])
    const sent = saves(client)
    const first = after(loaded.snapshots.get('a'), 2, remember(loaded.snapshots.get('a')!.recent, entry(2), 4))
    const old = remember(loaded.snapshots.get('old')!.recent, entry(2), 4)
    await snapshots.save(stream, 0, token, write({ snapshots: [first, { ...snapshot('old', 2, '{}', old), windowMemo: loaded.snapshots.get('old')!.windowMemo }] }))
    // The next save builds on the memo the first one left; one without a memo sends its window whole.
    const second = after(first, 3, remember(first.recent, entry(3), 4))
    await snapshots.save(stream, 0, token, write({ snapshots: [second] }))
    expect(await stored('a')).toEqual([c0, entry(1), entry(2), entry(3)])
    expect(await admin().hget(keys.state, 'w:a')).toBe('["c-0", 1, 1]\n["c-1",1,1,1]')
    await snapshots.save(stream, 0, token, write({ snapshots: [after(undefined, 4, remember(second.recent, entry(4), 4))] }))
    sent.restore()
    expect(windowArgs(sent.argv[0]!)).toEqual(['1', text([entry(2)])])
    expect(windowArgs(sent.argv[0]!, 1)).toEqual(['', text([entry(1), entry(2)])])
    expect(windowArgs(sent.argv[1]!)).toEqual(['2', text([entry(2), entry(3)])])
    expect(windowArgs(sent.argv[2]!)).toEqual(['', text([entry(1), entry(2), entry(3), entry(4)])])
    expect(await stored('a')).toEqual(remember(second.recent, entry(4), 4))
    expect(await stored('old')).toEqual(old)
    expect(JSON.parse((await admin().hget(keys.state, 's:old'))!)).toMatchObject({ recent: { split: 2 } })
  })

  it('sends a window whole when it does not extend the last one saved for its aggregate', async () => {
    const { client, snapshots } = ownStore()
    const token = await take(snapshots, 0)
    const a1 = after(undefined, 2, [entry(1), entry(2)])
    await snapshots.save(stream, 0, token, write({ snapshots: [a1], ready: true }))
    const sent = saves(client)
    // Rebuilt from the log (new entry objects): nothing known to build on.
    const rebuilt = after(a1, 3, [entry(1), entry(2), entry(3)])
    await snapshots.save(stream, 0, token, write({ snapshots: [rebuilt] }))
    // Entries older than the known one that the saved window did not have: not built on it either.
    const longer = after(rebuilt, 4, [entry(0), entry(1), entry(2), rebuilt.recent[2]!, entry(4)])
    await snapshots.save(stream, 0, token, write({ snapshots: [longer] }))
    // Trimmed to fewer entries than before (a smaller dedupWindow): built on the stored texts.
    const trimmed = after(longer, 5, [longer.recent[4]!, entry(5)])
    await snapshots.save(stream, 0, token, write({ snapshots: [trimmed] }))
    expect(await stored('a')).toEqual(trimmed.recent)
    // A memo of another store (or none it knows): ignored.
    const foreign = { ...snapshot('a', 6, '{}', [...trimmed.recent, entry(6)]), windowMemo: { text: 'not a window', length: 1 } }
    await snapshots.save(stream, 0, token, write({ snapshots: [foreign] }))
    sent.restore()
    expect(sent.argv.map((argv) => windowArgs(argv))).toEqual([
      ['', text(rebuilt.recent)],
      ['', text(longer.recent)],
      ['4', text([entry(5)])],
      ['', text(foreign.recent)],
    ])
    expect(await stored('a')).toEqual(foreign.recent)
  })

  it('stores the whole window after a save that was too old to be written', async () => {
    const { client, snapshots } = ownStore()
    const token = await take(snapshots, 0)
    const first = after(undefined, 2, [entry(1), entry(2)])
    await snapshots.save(stream, 0, token, write({ snapshots: [first], ready: true }))
    // Someone wrote a newer snapshot of `a` meanwhile: this store's next save of it writes nothing.
    await open().snapshots.save(stream, 0, token, write({ snapshots: [snapshot('a', 9, '{}', [entry(9)])] }))
    const refused = after(first, 3, remember(first.recent, entry(3), 4))
    const sent = saves(client)
    await snapshots.save(stream, 0, token, write({ snapshots: [refused] }))
    expect(await stored('a')).toEqual([entry(9)])
    // The save after it is whole too: Redis gets this window, not a part cut for another.
    const next = after(refused, 10, remember(refused.recent, entry(10), 4))
    await snapshots.save(stream, 0, token, write({ snapshots: [next] }))
    sent.restore()
    expect(await stored('a')).toEqual([entry(1), entry(2), entry(3), entry(10)])
    // Each save sent the newest entries, which the script refused (the stored snapshot is not the
    // one they extend), then the whole write again.
    expect(sent.argv.map((argv) => windowArgs(argv))).toEqual([
      ['2', text([entry(3)])],
      ['', text(refused.recent)],
      ['3', text([entry(10)])],
      ['', text(next.recent)],
    ])
  })

  it('saves a write of more fields than one Lua call can take (a replay saves thousands of snapshots at once)', async () => {
    // Redis's Lua passes at most a few thousand values to one call: this write has 24,000 to set.
    const { snapshots } = ownStore()
    const token = await take(snapshots, 0)
    const ids = Array.from({ length: 3_000 }, (_, i) => `agg-${i}`)
    const first = ids.map((id) => snapshot(id, 1, '{}', [entry(1)]))
    await snapshots.save(stream, 0, token, write({ snapshots: first, checkpoint: { offset: 2, commandPosition: 1, schemaVersion: 1 }, ready: true }))
    // The second write reads 3,000 stored offsets first, then sets 12,000 fields.
    const second = first.map((s) => snapshot(s.aggregateId, 2, '{"n":2}', remember(s.recent, entry(2), 4)))
    await snapshots.save(stream, 0, token, write({ snapshots: second, checkpoint: { offset: 3, commandPosition: 2, schemaVersion: 1 } }))

    const loaded = await open().snapshots.load(stream, 0, token, ids, [])
    expect(loaded.snapshots.size).toBe(ids.length)
    for (const id of ids) expect(loaded.snapshots.get(id)).toMatchObject({ offset: 2, state: '{"n":2}', recent: [entry(1), entry(2)] })
    expect(await snapshots.checkpoint(stream, 0)).toEqual({ offset: 3, commandPosition: 2, schemaVersion: 1 })
  })

  it('refuses a write with two snapshots of one aggregate, writing nothing', async () => {
    const { snapshots } = open()
    const keys = new PartitionKeys(prefix(), stream, 0)
    const token = await take(snapshots, 0)
    const before = await admin().hgetall(keys.state)
    await expect(
      snapshots.save(stream, 0, token, write({ snapshots: [snapshot('a', 1), snapshot('b', 1), snapshot('a', 2)] })),
    ).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT', details: { aggregateId: 'a' } })
    expect(await admin().hgetall(keys.state)).toEqual(before)
  })

  it('refuses a snapshot whose window field is missing with ESK_SERIALIZATION', async () => {
    const { snapshots } = open()
    const keys = new PartitionKeys(prefix(), stream, 0)
    const token = await take(snapshots, 0)
    await snapshots.save(stream, 0, token, write({ snapshots: [snapshot('a', 1, '{}', [entry(1)])], ready: true }))
    await admin().hdel(keys.state, 'w:a')
    const corrupt = { code: 'ESK_SERIALIZATION', message: expect.stringContaining("'w:a'") }
    await expect(snapshots.read(stream, 0, 'a')).rejects.toMatchObject(corrupt)
    await expect(snapshots.load(stream, 0, token, ['a'], [])).rejects.toMatchObject(corrupt)
  })
})
