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
import { memoryDriver } from '@esk/memory'
import { redisStore } from '@esk/redis'
import { BenchAccount, Deposit, EventSeries, memoryBackendWith } from './domain.js'
import { dropKeys } from './memory.js'
import type { BenchEnv } from './session.js'
import { round, spread } from './stats.js'
import { dropTopics } from './systems.js'

/** The figures of the recovery stage: medians over its repetitions, and each repetition's ratio. */
export interface RecoveryResult {
  events: number
  aggregates: number
  writeSeconds: number
  bareReadSeconds: number
  bareReadEventsPerSecond: number
  rebuildSeconds: number
  rebuildEventsPerSecond: number
  /** Rebuild rate over bare-read rate: the median of the repetitions' ratios. */
  rebuildOverRead: number
  /** Each repetition's rebuild rate over its own bare-read rate (absent in reports of one run). */
  ratios?: number[]
  /** Each repetition's rates, events/s, in the order run. */
  runs?: Array<{ bareRead: number; rebuild: number }>
  /**
   * From `createEsk` of the new owner to its first command answered, with the partition's
   * snapshots current: the median over the repetitions (one takeover in reports before that).
   */
  takeoverSeconds: number
  /** The part of it until `createEsk` returned, its partition ready (absent in older reports). */
  takeoverReadySeconds?: number
  /**
   * The same events rebuilt on the embedded driver, where reading them costs next to nothing: what
   * esk's replay (decoding, folding, saving) costs by itself. Medians over the repetitions (absent
   * in older reports).
   */
  embedded?: {
    rebuildEventsPerSecond: number
    /** CPU (user + system) of the process per event, from the replay's start to its end, µs. */
    cpuMicrosPerEvent: number
  }
}

/**
 * Writes `events` events over `aggregates` aggregates to one partition, then reads and rebuilds
 * them `repetitions` times (after one unrecorded pass of each), alternating which goes first;
 * then takes the partition over `repetitions` times.
 */
export async function recovery(env: BenchEnv, events: number, aggregates: number, repetitions = 1): Promise<RecoveryResult> {
  const prefix = `bench${randomUUID().slice(0, 8)}.`
  const quiet = { brokers: env.brokers, logLevel: logLevel.ERROR, topicPrefix: prefix }
  const stream: StreamSpec = { aggregate: 'bench-account', partitions: 1 }
  const driver = () => ({ transport: kafkaTransport(quiet), store: redisStore({ url: env.redisUrl, keyPrefix: prefix }) })
  const setup = kafkaTransport(quiet)
  try {
    await setup.provision([stream])
    const options = resolveKafkaOptions(quiet)
    const names = streamNames(prefix, stream.aggregate)
    const command = lastCommand(events, aggregates)
    const producer = setup.client.producer()
    await producer.connect()
    await producer.send({ topic: names.commands, acks: -1, messages: [{ partition: 0, key: command.aggregateId, value: command.value }] })
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

    const bareRead = async (): Promise<{ seconds: number; rate: number }> => {
      const from = performance.now()
      let read = 0
      for await (const batch of setup.readEvents(stream, 0, 0)) read += batch.length
      const seconds = (performance.now() - from) / 1000
      return { seconds, rate: read / seconds }
    }
    const rebuild = async (): Promise<{ seconds: number; rate: number }> => {
      let end: { events: number; elapsedMs: number } | undefined
      const rebuilt = await createEsk({
        aggregates: [{ aggregate: BenchAccount, partitions: 1 }],
        driver: driver(),
        rebuild: true,
        listeners: { recovery: (p) => (p.phase === 'end' ? (end = p) : undefined) },
      })
      await rebuilt.close()
      const seconds = (end?.elapsedMs ?? NaN) / 1000
      return { seconds, rate: (end?.events ?? 0) / seconds }
    }
    // One unrecorded pass of each first, so that neither pays for the process's JIT or cold caches.
    await bareRead()
    await rebuild()
    const reads: Array<{ seconds: number; rate: number }> = []
    const rebuilds: Array<{ seconds: number; rate: number }> = []
    for (let i = 0; i < repetitions; i++) {
      // Alternating the order, so neither always runs on a broker just warmed by the other.
      if (i % 2 === 0) {
        reads.push(await bareRead())
        rebuilds.push(await rebuild())
      } else {
        rebuilds.push(await rebuild())
        reads.push(await bareRead())
      }
    }
    const ratios = rebuilds.map((r, i) => round(r.rate / reads[i]!.rate))

    // The takeover: a new owner of the partition, whose snapshots are current, answers a command;
    // once per repetition (each is a new process's worth of clients, groups and connections).
    const takeovers: Array<{ ready: number; answered: number }> = []
    for (let i = 0; i < Math.max(1, repetitions); i++) {
      started = performance.now()
      const owner = await createEsk({ aggregates: [{ aggregate: BenchAccount, partitions: 1 }], driver: driver(), commandTimeoutMs: 60_000 })
      const ready = (performance.now() - started) / 1000
      await owner.repository(BenchAccount).update('a0', new Deposit(1, ''))
      takeovers.push({ ready, answered: (performance.now() - started) / 1000 })
      await owner.close()
    }

    return {
      events,
      aggregates: series.size,
      writeSeconds: round(writeSeconds),
      bareReadSeconds: round(median(reads.map((r) => r.seconds))),
      bareReadEventsPerSecond: Math.round(median(reads.map((r) => r.rate))),
      rebuildSeconds: round(median(rebuilds.map((r) => r.seconds))),
      rebuildEventsPerSecond: Math.round(median(rebuilds.map((r) => r.rate))),
      rebuildOverRead: round(median(ratios)),
      ratios,
      runs: rebuilds.map((r, i) => ({ bareRead: Math.round(reads[i]!.rate), rebuild: Math.round(r.rate) })),
      takeoverSeconds: round(median(takeovers.map((t) => t.answered))),
      takeoverReadySeconds: round(median(takeovers.map((t) => t.ready))),
      embedded: await embeddedRebuild(stream, events, aggregates, repetitions),
    }
  } finally {
    await setup.close()
    await dropKeys(env.redisUrl, prefix)
    await dropTopics(env.brokers, prefix).catch(() => undefined)
  }
}

/**
 * The command record both logs hold at position 0. The events are written directly, not by
 * processing commands; they all name command position 0, where the last event's command is put, so
 * the command log agrees with the event log (a new owner checks that, and refuses a partition
 * whose command log looks recreated).
 */
function lastCommand(events: number, aggregates: number): { aggregateId: string; value: string } {
  const last = { commandId: `c${events - 1}`, aggregateId: `a${(events - 1) % aggregates}` }
  return {
    aggregateId: last.aggregateId,
    value: encodeEnvelope({ ...last, type: 'bench.Deposit', kind: 'update', payload: { amount: 1, note: '' }, sentAt: Date.now() }),
  }
}

/**
 * Rebuilds the same series of events on the embedded driver, `repetitions` times after one
 * unrecorded pass. The events are put in its log directly, as the Kafka part writes them, and the
 * command they name in its command log. Exported for its test.
 */
export async function embeddedRebuild(stream: StreamSpec, events: number, aggregates: number, repetitions: number): Promise<RecoveryResult['embedded']> {
  const series = new EventSeries(aggregates)
  const backend = await memoryBackendWith(stream, [(function* () {
    for (let i = 0; i < events; i++) yield series.event(i, 0)
  })()])
  backend.log(stream.aggregate, 0).commands.push(lastCommand(events, aggregates).value)
  const runs: Array<{ rate: number; cpu: number }> = []
  for (let i = 0; i <= Math.max(1, repetitions); i++) {
    // The CPU between the replay's start and end, as its rate: not the application's own start.
    let before: NodeJS.CpuUsage | undefined
    let end: { events: number; elapsedMs: number; cpu: NodeJS.CpuUsage } | undefined
    const rebuilt = await createEsk({
      aggregates: [{ aggregate: BenchAccount, partitions: 1 }],
      driver: memoryDriver({ backend }),
      rebuild: true,
      listeners: {
        recovery: (p) => {
          if (p.phase === 'start') before = process.cpuUsage()
          if (p.phase === 'end') end = { ...p, cpu: process.cpuUsage(before) }
        },
      },
    })
    await rebuilt.close()
    if (i === 0 || !end) continue
    runs.push({ rate: end.events / (end.elapsedMs / 1000), cpu: (end.cpu.user + end.cpu.system) / end.events })
  }
  return {
    rebuildEventsPerSecond: Math.round(median(runs.map((r) => r.rate))),
    cpuMicrosPerEvent: round(median(runs.map((r) => r.cpu))),
  }
}

function median(values: number[]): number {
  return spread(values).median
}

