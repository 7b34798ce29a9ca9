/**
 * Recovery: a partition of N events is rebuilt into Redis snapshots (`rebuild: true`), against a
 * bare read of the same events; then a new processor takes the partition over and the time until
 * it answers its first command is measured.
 */
import { randomUUID } from 'node:crypto'
import { createEsk } from '@esk/core'
import { encodeEnvelope, type EventToAppend, type StreamSpec } from '@esk/core/driver'
import { kafkaTransport, logLevel, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { redisStore } from '@esk/redis'
import { BenchAccount, Deposit, EventSeries } from './domain.js'
import { dropKeys } from './memory.js'
import type { BenchEnv } from './session.js'
import { dropTopics } from './systems.js'

/** The figures of one recovery run. */
export interface RecoveryResult {
  events: number
  aggregates: number
  writeSeconds: number
  bareReadSeconds: number
  bareReadEventsPerSecond: number
  rebuildSeconds: number
  rebuildEventsPerSecond: number
  /** Rebuild rate over bare-read rate. */
  rebuildOverRead: number
  /** From `createEsk` of the new owner to its first command answered, with the partition's snapshots current. */
  takeoverSeconds: number
}

/** Writes `events` events over `aggregates` aggregates to one partition and measures. */
export async function recovery(env: BenchEnv, events: number, aggregates: number): Promise<RecoveryResult> {
  const prefix = `bench${randomUUID().slice(0, 8)}.`
  const quiet = { brokers: env.brokers, logLevel: logLevel.ERROR, topicPrefix: prefix }
  const stream: StreamSpec = { aggregate: 'bench-account', partitions: 1 }
  const driver = () => ({ transport: kafkaTransport(quiet), store: redisStore({ url: env.redisUrl, keyPrefix: prefix }) })
  const setup = kafkaTransport(quiet)
  try {
    await setup.provision([stream])
    const options = resolveKafkaOptions(quiet)
    const names = streamNames(prefix, stream.aggregate)
    // The events are written directly, not by processing commands; they all name command offset 0,
    // where the last event's command is put, so the command log agrees with the event log (a new
    // owner checks that, and refuses a partition whose command topic looks recreated).
    const last = { commandId: `c${events - 1}`, aggregateId: `a${(events - 1) % aggregates}` }
    const producer = setup.client.producer()
    await producer.connect()
    const command = encodeEnvelope({ ...last, type: 'bench.Deposit', kind: 'update', payload: { amount: 1, note: '' }, sentAt: Date.now() })
    await producer.send({ topic: names.commands, acks: -1, messages: [{ partition: 0, key: last.aggregateId, value: command }] })
    await producer.disconnect()
    const writer = await TransactionalWriter.open(setup.client, options, names, 0)
    const series = new EventSeries(aggregates)
    let started = performance.now()
    for (let written = 0; written < events; written += 500) {
      const batch: EventToAppend[] = []
      for (let i = written; i < Math.min(written + 500, events); i++) batch.push(series.event(i, 0))
      await writer.commit(batch, 0)
    }
    await writer.close()
    const writeSeconds = (performance.now() - started) / 1000

    started = performance.now()
    let read = 0
    for await (const batch of setup.readEvents(stream, 0, 0)) read += batch.length
    const bareReadSeconds = (performance.now() - started) / 1000

    let end: { events: number; elapsedMs: number } | undefined
    const rebuilt = await createEsk({
      aggregates: [{ aggregate: BenchAccount, partitions: 1 }],
      driver: driver(),
      rebuild: true,
      listeners: { recovery: (p) => (p.phase === 'end' ? (end = p) : undefined) },
    })
    await rebuilt.close()
    const rebuildSeconds = (end?.elapsedMs ?? NaN) / 1000

    // The takeover: a new owner of the partition, whose snapshots are current, answers a command.
    started = performance.now()
    const owner = await createEsk({ aggregates: [{ aggregate: BenchAccount, partitions: 1 }], driver: driver(), commandTimeoutMs: 60_000 })
    await owner.repository(BenchAccount).update('a0', new Deposit(1, ''))
    const takeoverSeconds = (performance.now() - started) / 1000
    await owner.close()

    const readRate = read / bareReadSeconds
    const rebuildRate = (end?.events ?? 0) / rebuildSeconds
    return {
      events,
      aggregates: series.size,
      writeSeconds: round(writeSeconds),
      bareReadSeconds: round(bareReadSeconds),
      bareReadEventsPerSecond: Math.round(readRate),
      rebuildSeconds: round(rebuildSeconds),
      rebuildEventsPerSecond: Math.round(rebuildRate),
      rebuildOverRead: round(rebuildRate / readRate),
      takeoverSeconds: round(takeoverSeconds),
    }
  } finally {
    await setup.close()
    await dropKeys(env.redisUrl, prefix)
    await dropTopics(env.brokers, prefix).catch(() => undefined)
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100
}
