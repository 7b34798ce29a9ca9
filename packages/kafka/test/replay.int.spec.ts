import { randomUUID } from 'node:crypto'
import type { StoredEvent, StreamSpec } from '@esk/core/driver'
import { EventHeaders, resolveKafkaOptions, streamNames, type KafkaTransport } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { eventually } from '@esk/testing/stack'
import { describe, expect, it } from 'vitest'
import { testScope, type IsolatedStack } from './support.js'

function event(i: number): Omit<StoredEvent, 'offset'> {
  return { aggregateId: `a${i}`, type: 't', version: 1, commandId: `c${i}`, commandPosition: i, payload: JSON.stringify({ i }) }
}

describe('kafka replay', () => {
  const { defer, env, connect } = testScope({ partitions: 1, commandTimeoutMs: 20_000 })

  async function setup(partitions: number): Promise<{ stack: IsolatedStack; transport: KafkaTransport; stream: StreamSpec }> {
    const stack = env()
    const transport = connect(stack)
    const stream: StreamSpec = { aggregate: `replay-${randomUUID().slice(0, 6)}`, partitions }
    await transport.provision([stream])
    return { stack, transport, stream }
  }

  async function commit(stack: IsolatedStack, transport: KafkaTransport, stream: StreamSpec, partition: number, events: Array<Omit<StoredEvent, 'offset'>>): Promise<number[]> {
    const names = streamNames(stack.topicPrefix, stream.aggregate)
    const writer = await TransactionalWriter.open(transport.client, resolveKafkaOptions(stack.transportOptions()), names, partition)
    try {
      return await writer.commit(events, events[events.length - 1]!.commandPosition)
    } finally {
      await writer.close()
    }
  }

  async function readAll(transport: KafkaTransport, stream: StreamSpec, partition: number, from = 0, until = 0): Promise<StoredEvent[]> {
    const events: StoredEvent[] = []
    for await (const batch of transport.readEvents(stream, partition, from, until)) events.push(...batch)
    return events
  }

  it('replays partitions through one long-lived reader, not through a consumer group per replay', async () => {
    // Fails before the fix: each replay joined a consumer group of its own (paying the broker's
    // group.initial.rebalance.delay.ms, 3 s by default) and deleted it afterwards.
    const { stack, transport, stream } = await setup(3)
    for (let p = 0; p < 3; p++) await commit(stack, transport, stream, p, [event(0), event(1), event(2)])
    const admin = transport.client.admin()
    await admin.connect()
    defer(() => admin.disconnect())
    const replayGroups = async (): Promise<string[]> =>
      (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${stack.topicPrefix}replay.`))

    // Three replays at once, each holding its first batch.
    let release: () => void = () => undefined
    const held = new Promise<void>((resolve) => (release = resolve))
    let started = 0
    const reading = [0, 1, 2].map(async (p) => {
      const events: StoredEvent[] = []
      for await (const batch of transport.readEvents(stream, p, 0, 3)) {
        if (events.length === 0) {
          started += 1
          await held
        }
        events.push(...batch)
      }
      return events
    })
    await eventually(() => started === 3, 'three replays under way')
    expect(await replayGroups()).toHaveLength(1)
    release()
    for (const events of await Promise.all(reading)) expect(events.map((e) => e.offset)).toEqual([0, 1, 2])
    for (let round = 0; round < 3; round++) expect(await readAll(transport, stream, round)).toHaveLength(3)
    expect(await replayGroups()).toHaveLength(1)
  })

  it('reads only committed events, from any offset, and again after a replay that was abandoned', async () => {
    const { stack, transport, stream } = await setup(1)
    const names = streamNames(stack.topicPrefix, stream.aggregate)
    const first = await commit(stack, transport, stream, 0, [event(0), event(1), event(2)])
    // An aborted transaction in the middle: its records and markers occupy offsets, nobody sees them.
    const producer = transport.client.producer({ transactionalId: `aborting-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    defer(() => producer.disconnect())
    const aborted = await producer.transaction()
    await aborted.send({
      topic: names.events,
      messages: [3, 4].map((i) => ({
        partition: 0,
        key: `a${i}`,
        value: '{}',
        headers: {
          [EventHeaders.type]: 'aborted',
          [EventHeaders.aggregateId]: `a${i}`,
          [EventHeaders.version]: '1',
          [EventHeaders.commandId]: `c${i}`,
          [EventHeaders.commandOffset]: String(i),
        },
      })),
    })
    await aborted.abort()
    const last = await commit(stack, transport, stream, 0, [event(5), event(6)])
    const offsets = [...first, ...last]

    const all = await readAll(transport, stream, 0, 0, last[1]! + 1)
    expect(all.map((e) => e.offset)).toEqual(offsets)
    expect(all.map((e) => e.commandId)).toEqual(['c0', 'c1', 'c2', 'c5', 'c6'])
    expect(all[4]).toEqual({ ...event(6), offset: last[1] })

    // From the middle of the log, and from past the aborted records.
    expect((await readAll(transport, stream, 0, first[1]!)).map((e) => e.commandId)).toEqual(['c1', 'c2', 'c5', 'c6'])
    expect((await readAll(transport, stream, 0, last[0]!)).map((e) => e.commandId)).toEqual(['c5', 'c6'])

    // A reader that stops early leaves nothing behind for the next one.
    for await (const batch of transport.readEvents(stream, 0, 0)) {
      expect(batch.length).toBeGreaterThan(0)
      break
    }
    const [again, twice] = await Promise.all([readAll(transport, stream, 0), readAll(transport, stream, 0, first[2]!)])
    expect(again.map((e) => e.offset)).toEqual(offsets)
    expect(twice.map((e) => e.commandId)).toEqual(['c2', 'c5', 'c6'])
    // Nothing to read past the end.
    expect(await readAll(transport, stream, 0, last[1]! + 1)).toEqual([])
  })
})
