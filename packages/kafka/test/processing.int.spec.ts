import { randomUUID } from 'node:crypto'
import { createEsk, type EskOptions } from '@esk/core'
import { partitionFor, type StoredEvent, type StreamSpec } from '@esk/core/driver'
import { EVENT_HEADER, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import type { RedisStore } from '@esk/redis'
import { PartitionKeys } from '@esk/redis/driver'
import { failingSaves } from '@esk/testing'
import { contractModel } from '@esk/testing/contract'
import { eventually } from '@esk/testing/stack'
import { describe, expect, it } from 'vitest'
import { idsPerPartition, readAll, readRecords, testScope } from './support.js'

const { ContractAccount, Open, Deposit, Note } = contractModel

describe('kafka processing', () => {
  const { defer, env, app, connect } = testScope({ partitions: 4, commandTimeoutMs: 20_000 })

  /** Partitions an application currently owns, tracked from its partition events. */
  function owned(listeners: Set<number>): NonNullable<EskOptions['listeners']> {
    return {
      partition: (e) => (e.change === 'assigned' ? listeners.add(e.partition) : listeners.delete(e.partition)),
    }
  }

  it('splits partitions between two processors of one group, and one takes over when the other stops', async () => {
    const stack = env()
    const ownedByA = new Set<number>()
    const ownedByB = new Set<number>()
    await app(stack, { listeners: owned(ownedByA) })
    expect([...ownedByA].sort()).toEqual([0, 1, 2, 3])
    const b = await app(stack, { listeners: owned(ownedByB) })
    await eventually(() => ownedByA.size + ownedByB.size === 4 && ownedByA.size > 0 && ownedByB.size > 0, 'a split')
    expect([...ownedByA].filter((p) => ownedByB.has(p))).toEqual([])

    const client = await app(stack, { processing: false })
    const accounts = client.repository(ContractAccount)
    const ids = idsPerPartition(4)
    await Promise.all(ids.map((id) => accounts.save(new Open(id, 1), { id })))

    await b.close()
    await eventually(() => ownedByA.size === 4, 'A to own every partition again')
    await Promise.all(ids.map((id) => accounts.update(id, new Deposit(10))))
    for (const id of ids) {
      const found = await accounts.get(id, { atLeastVersion: 2 })
      expect(found.state).toMatchObject({ balance: 11, history: [1, 10] })
    }
  })

  it('recovers a snapshot from the log when the processor stopped after the commit but before the Redis save', async () => {
    const stack = env()
    const first = stack.driver()
    const crashing = failingSaves(first.store, Number.POSITIVE_INFINITY)
    const a = await createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions: 2 }],
      driver: { transport: first.transport, store: crashing },
      commandTimeoutMs: 20_000,
    })
    defer(() => a.close())
    // Committed, never saved in Redis: its events in the log record the outcome, so the caller
    // is answered at the commit; a retry with the same commandId gets the same answer.
    const commandId = `open-kit-${randomUUID()}`
    const answered = await a.repository(ContractAccount).save(new Open('kit', 5), { commandId, timeoutMs: 3_000 })
    expect(answered.version).toBe(1)
    await a.close()

    const b = await app(stack, {}, 2)
    const retried = await b.repository(ContractAccount).save(new Open('kit', 5), { commandId })
    expect(retried).toMatchObject({ id: answered.id, version: 1 })
    const found = await b.repository(ContractAccount).get(retried.id)
    expect(found).toMatchObject({ version: 1, state: { owner: 'kit', balance: 5 } })
    expect(crashing.failed()).toBeGreaterThan(0)
  })

  it('never re-applies commands when the group offsets are lost, from snapshots or from a full replay', async () => {
    const stack = env()
    const first = await app(stack, {}, 2)
    const accounts = first.repository(ContractAccount)
    const { id } = await accounts.save(new Open('max', 0))
    for (let i = 1; i <= 3; i++) await accounts.update(id, new Deposit(i))
    const stream = first.streams[0]!
    await first.close()

    const transport = connect(stack)
    const admin = transport.client.admin()
    await admin.connect()
    defer(() => admin.disconnect())
    const names = streamNames(stack.topicPrefix, stream.aggregate)
    const forgetOutcomes = async (): Promise<void> => {
      // De-duplication by command id must not be what protects here: the refusals are dropped,
      // and the processors below remember one accepted command per aggregate (dedupWindow: 1),
      // so only the position guard stands between the re-read deposits and a second application.
      const keys = await stack.redis.keys(`${stack.keyPrefix}*:unlogged*`)
      if (keys.length > 0) await stack.redis.del(...keys)
    }
    const check = async (expectedHistory: number[]): Promise<void> => {
      // Without committed offsets the group starts from the first command again.
      await admin.deleteGroups([names.group])
      await forgetOutcomes()
      const again = await app(stack, { dedupWindow: 1 }, 2)
      const repo = again.repository(ContractAccount)
      const next = await repo.update(id, new Deposit(100))
      const found = await repo.get(id, { atLeastVersion: next.version })
      const events = await readAll(stack, stream, partitionFor(id, 2), expectedHistory.length)
      expect(found.state.history).toEqual(expectedHistory)
      expect(next.version).toBe(expectedHistory.length)
      expect(events.map((e) => e.version)).toEqual(expectedHistory.map((_, i) => i + 1))
      await again.close()
    }
    await check([0, 1, 2, 3, 100])
    await stack.flushSnapshots()
    await check([0, 1, 2, 3, 100, 100])
  })

  it('commits a batch whose events exceed one produce request, atomically, in several requests', async () => {
    const stack = env()
    const a = await app(stack, {}, 1)
    const accounts = a.repository(ContractAccount)
    const { id } = await accounts.save(new Open('ray', 0))
    // 24 notes of 100 KB: batches far over the broker's 1 MiB per request.
    const results = await Promise.all(Array.from({ length: 24 }, () => accounts.update(id, new Note('n'.repeat(100_000)))))
    expect(Math.max(...results.map((r) => r.version))).toBe(25)
    const found = await accounts.get(id, { atLeastVersion: 25 })
    expect(found.state.notes).toBe(24 * 100_000)
    const events = await readAll(stack, a.streams[0]!, 0, 25)
    expect(events.map((e) => e.version)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
  })

  it('refuses a command over maxCommandBytes with a typed error, without disturbing others', async () => {
    const stack = env()
    const a = await app(stack, {}, 1)
    const accounts = a.repository(ContractAccount)
    const { id } = await accounts.save(new Open('sam', 0))
    const [huge, small] = await Promise.allSettled([
      accounts.update(id, new Note('h'.repeat(600 * 1024))),
      accounts.update(id, new Note('s')),
    ])
    expect(huge).toMatchObject({ status: 'rejected', reason: { code: 'ESK_INVALID_ARGUMENT', message: expect.stringContaining('maxCommandBytes') } })
    expect(small).toMatchObject({ status: 'fulfilled', value: { version: 2 } })
  })

  it('replays up to offsets its caller knows are committed, waiting for the log to show them', async () => {
    const stack = env()
    const transport = connect(stack)
    const stream: StreamSpec = { aggregate: 'replay-wait', partitions: 1 }
    await transport.provision([stream])
    const names = streamNames(stack.topicPrefix, stream.aggregate)
    const writer = await TransactionalWriter.open(transport.client, resolveKafkaOptions(stack.transportOptions()), names, 0)
    defer(() => writer.close())
    const event = { aggregateId: 'a', type: 't', version: 1, commandId: 'c', commandPosition: 0, payload: '{}' }
    // The log is empty; the reader is told offset 0 exists, and it is committed 300 ms later.
    const reading = (async () => {
      const seen: StoredEvent[] = []
      for await (const batch of transport.readEvents(stream, 0, 0, 1)) seen.push(...batch)
      return seen
    })()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await writer.commit([event], 0)).toEqual([0])
    expect(await reading).toEqual([{ ...event, offset: 0 }])
  })

  // Fails before: the rebuild wrote all 2,500 snapshots in one Redis script, during which every
  // other partition on that Redis waited (half a second for 10,000 aggregates).
  it('rebuilds a partition of 2,500 aggregates in Redis scripts of at most 1,000 snapshots, the checkpoint moving last', async () => {
    const stack = env()
    const first = await app(stack, {}, 1)
    const accounts = first.repository(ContractAccount)
    const ids: string[] = []
    for (let from = 0; from < 2_500; from += 250) {
      const opened = await Promise.all(Array.from({ length: 250 }, (_, i) => accounts.save(new Open(`k${from + i}`, from + i), { commandId: `open-${from + i}` })))
      ids.push(...opened.map((o) => o.id))
    }
    await first.close()
    const stream: StreamSpec = { aggregate: 'contract-account', partitions: 1 }
    const offsets = (await readAll(stack, stream, 0, 2_500)).map((e) => e.offset)
    expect(offsets).toHaveLength(2_500)

    const driver = stack.driver()
    const snapshots = (driver.store as RedisStore).snapshots
    const keys = new PartitionKeys(stack.keyPrefix, stream, 0)
    const sizes: number[] = []
    const uncovered: string[] = []
    const save = snapshots.save.bind(snapshots)
    snapshots.save = async (s, p, token, write) => {
      sizes.push(write.snapshots.length)
      await save(s, p, token, write)
      // Every event below the stored checkpoint must have its snapshot stored (one event each here).
      const checkpoint = (await snapshots.checkpoint(s, p))?.offset ?? 0
      const stored = (await stack.redis.hkeys(keys.state)).filter((field) => field.startsWith('s:')).length
      const below = offsets.filter((o) => o < checkpoint).length
      if (stored < below) uncovered.push(`${below} events below checkpoint ${checkpoint}, ${stored} snapshots`)
    }
    const rebuilt = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver, rebuild: true, commandTimeoutMs: 20_000 })
    defer(() => rebuilt.close())
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1_000)
    expect(sizes.reduce((sum, n) => sum + n, 0)).toBe(2_500)
    expect(uncovered).toEqual([])
    expect((await snapshots.checkpoint(stream, 0))?.offset).toBe(offsets[offsets.length - 1]! + 1)
    const again = rebuilt.repository(ContractAccount)
    for (const i of [0, 999, 1_000, 2_499]) expect((await again.get(ids[i]!)).state).toMatchObject({ owner: `k${i}`, balance: i })
    // The windows are back too: a retry of an open is answered from the rebuilt window, not applied.
    expect(await again.save(new Open('k2499', 5), { commandId: 'open-2499' })).toMatchObject({ id: ids[2_499], version: 1 })
    expect((await again.get(ids[2_499]!)).state).toMatchObject({ balance: 2_499 })
  })

  it('writes events with their headers to the partition of their aggregate', async () => {
    const stack = env()
    const a = await app(stack, {}, 3)
    const accounts = a.repository(ContractAccount)
    const commandId = randomUUID()
    const { id } = await accounts.save(new Open('ned', 2), { commandId })
    const events = await readAll(stack, a.streams[0]!, partitionFor(id, 3), 1)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({
      aggregateId: id,
      type: 'contract.Opened',
      version: 1,
      commandId,
      payload: JSON.stringify({ owner: 'ned', initial: 2 }),
    })
    expect(events[0]!.commandPosition).toBeGreaterThanOrEqual(0)
    // As stored: the aggregate id is the key, and one header carries the rest (the format
    // docs/operations.md gives to consumers outside esk).
    const [record] = await readRecords(stack.transportOptions().brokers as string[], streamNames(stack.topicPrefix, 'contract-account').events, partitionFor(id, 3))
    expect(record!.key?.toString()).toBe(id)
    expect(Object.keys(record!.headers ?? {})).toEqual([EVENT_HEADER])
    expect(JSON.parse(record!.headers![EVENT_HEADER]!.toString())).toEqual(['contract.Opened', 1, commandId, events[0]!.commandPosition])
  })

  // Fails before the fix: on the three-broker stack (scripts/stack.sh start --cluster), start
  // failed with UNKNOWN_TOPIC_OR_PARTITION (kafkajs's wait for leaders, or the processor's
  // subscribe asking a broker that had not applied the new topics yet) or with "has no partitions".
  it('starts on topics it just created and returns once every broker of a cluster knows them', async (ctx) => {
    const stack = env()
    const admin = connect(stack).client.admin()
    await admin.connect()
    defer(() => admin.disconnect())
    const { brokers } = await admin.describeCluster()
    // A single broker knows what it created; the race needs several.
    if (brokers.length < 2) ctx.skip()
    const esk = await app(stack, {}, 2)
    const names = streamNames(stack.topicPrefix, 'contract-account')
    for (const { host, port } of brokers) {
      // Bootstrapped from this broker alone, a client's first metadata request goes to it.
      const one = connect(stack, { brokers: [`${host}:${port}`] }).client.admin()
      await one.connect()
      try {
        const metadata = await one.fetchTopicMetadata({ topics: [names.commands, names.events] })
        expect(metadata.topics.map((t) => [t.name, t.partitions.length]).sort()).toEqual([
          [names.commands, 2],
          [names.events, 2],
        ])
      } finally {
        await one.disconnect()
      }
    }
    const accounts = esk.repository(ContractAccount)
    const { id } = await accounts.save(new Open('cluster', 1))
    expect((await accounts.get(id, { atLeastVersion: 1 })).version).toBe(1)
  })

  it('refuses to start when existing topics disagree with the configured partition count', async () => {
    const stack = env()
    await (await app(stack, {}, 2)).close()
    await expect(
      createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 3 }], driver: stack.driver() }),
    ).rejects.toMatchObject({
      code: 'ESK_CONFIGURATION',
      message: expect.stringContaining('has 2 partitions but aggregate'),
    })
  })

  it('refuses an event topic that could delete or compact events', async () => {
    const stack = env()
    const transport = connect(stack)
    const admin = transport.client.admin()
    await admin.connect()
    defer(() => admin.disconnect())
    const names = streamNames(stack.topicPrefix, 'contract-account')
    // kafkajs's wait for leaders asks the broker that created the topics, which on a cluster may
    // not have applied them yet and then fails; esk's start copes with topics still propagating.
    await admin.createTopics({
      waitForLeaders: false,
      topics: [
        { topic: names.commands, numPartitions: 2 },
        { topic: names.events, numPartitions: 2, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
      ],
    })
    await expect(
      createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 2 }], driver: stack.driver() }),
    ).rejects.toMatchObject({ code: 'ESK_CONFIGURATION', message: expect.stringContaining('would lose events') })
  })
})
