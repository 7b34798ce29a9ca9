/**
 * Projections catching up: a view built from N events over 4 partitions, first by its live lanes
 * from offset 0 (until `ready()`), then again by `rebuild()`, on the embedded driver and on
 * Kafka+Redis, against a bare read of the same events.
 */
import { randomUUID } from 'node:crypto'
import { createEsk, defineProjection, on, type Driver } from '@esk/core'
import { partitionFor, type EventToAppend, type StreamSpec } from '@esk/core/driver'
import { kafkaTransport, logLevel, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { memoryDriver } from '@esk/memory'
import { redisStore } from '@esk/redis'
import { BenchAccount, Deposited, EventSeries, Opened, memoryBackendWith } from './domain.js'
import { dropKeys } from './memory.js'
import type { BenchEnv } from './session.js'
import { dropTopics } from './systems.js'

/** A view of the usual shape: a balance per aggregate (a hash field each) and a running total shared by every partition. */
const Balances = defineProjection({
  name: 'bench-balances',
  handlers: [
    on(Opened, (_e, meta, store) => store.hash('balance').set(meta.aggregateId, 0)),
    on(Deposited, (e, meta, store) => {
      store.hash('balance').incr(meta.aggregateId, e.amount)
      store.incr('total', e.amount)
    }),
  ],
})

/** One driver's figures. */
export interface ProjectionResult {
  driver: string
  events: number
  buildSeconds: number
  buildEventsPerSecond: number
  rebuildSeconds: number
  rebuildEventsPerSecond: number
  bareReadEventsPerSecond?: number
}

/** Builds and rebuilds the view over `events` events on both drivers. */
export async function projections(env: BenchEnv, events: number, aggregates: number, timeoutMs: number): Promise<ProjectionResult[]> {
  const partitions = 4
  const stream: StreamSpec = { aggregate: 'bench-account', partitions }
  const byPartition: EventToAppend[][] = Array.from({ length: partitions }, () => [])
  const series = new EventSeries(aggregates)
  for (let i = 0; i < events; i++) {
    const event = series.event(i, i)
    byPartition[partitionFor(event.aggregateId, partitions)]!.push(event)
  }
  const results: ProjectionResult[] = []

  const memory = memoryDriver({ backend: await memoryBackendWith(stream, byPartition) })
  results.push(await buildAndRebuild('memory', memory, partitions, events, timeoutMs))

  const prefix = `bench${randomUUID().slice(0, 8)}.`
  const quiet = { brokers: env.brokers, logLevel: logLevel.ERROR, topicPrefix: prefix }
  const transport = kafkaTransport(quiet)
  try {
    await transport.provision([stream])
    const options = resolveKafkaOptions(quiet)
    for (let p = 0; p < partitions; p++) {
      const writer = await TransactionalWriter.open(transport.client, options, streamNames(prefix, stream.aggregate), p)
      const list = byPartition[p]!
      for (let start = 0; start < list.length; start += 500) await writer.commit(list.slice(start, start + 500), start)
      await writer.close()
    }
    const started = performance.now()
    let read = 0
    for (let p = 0; p < partitions; p++) for await (const batch of transport.readEvents(stream, p, 0)) read += batch.length
    const readSeconds = (performance.now() - started) / 1000
    const driver = { transport, store: redisStore({ url: env.redisUrl, keyPrefix: prefix }) }
    results.push({
      ...(await buildAndRebuild('kafka+redis', driver, partitions, events, timeoutMs)),
      bareReadEventsPerSecond: Math.round(read / readSeconds),
    })
  } finally {
    await transport.close().catch(() => undefined)
    await dropKeys(env.redisUrl, prefix)
    await dropTopics(env.brokers, prefix).catch(() => undefined)
  }
  return results
}

async function buildAndRebuild(name: string, driver: Driver, partitions: number, events: number, timeoutMs: number): Promise<ProjectionResult> {
  const started = performance.now()
  const app = await createEsk({ aggregates: [{ aggregate: BenchAccount, partitions }], driver, processing: false, projections: [Balances] })
  try {
    const view = app.projection(Balances)
    await view.ready({ timeoutMs })
    const buildSeconds = (performance.now() - started) / 1000
    const rebuild = await view.rebuild({ timeoutMs })
    return {
      driver: name,
      events,
      buildSeconds: Math.round(buildSeconds * 100) / 100,
      buildEventsPerSecond: Math.round(events / buildSeconds),
      rebuildSeconds: Math.round(rebuild.elapsedMs / 10) / 100,
      rebuildEventsPerSecond: rebuild.eventsPerSecond,
    }
  } finally {
    await app.close()
  }
}
