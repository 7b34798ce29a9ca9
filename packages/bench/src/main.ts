import { randomUUID } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { createEsk, defineProjection, on, type BatchProcessed, type Driver } from '@esk/core'
import { partitionFor, type EventToAppend, type StreamSpec } from '@esk/core/driver'
import { kafkaTransport, logLevel, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { ContractAccount, Deposit, Deposited, Open, Opened } from '@esk/testing/model'
import { localStack } from '@esk/testing/stack'
import { Redis } from 'ioredis'



// Every figure comes with a baseline measured in the same run, on the same machine.
const { values: args } = parseArgs({
  options: {
    commands: { type: 'string', default: '4000' },
    concurrency: { type: 'string', default: '128' },
    aggregates: { type: 'string', default: '256' },
    'recovery-events': { type: 'string', default: '20000' },
    transactions: { type: 'string', default: '150' },
    'projection-events': { type: 'string', default: '20000' },
    only: { type: 'string', default: 'throughput,transactions,recovery,projections' },
    'time-limit-s': { type: 'string', default: '90' },
    out: { type: 'string', default: 'reports' },
  },
})
const COMMANDS = Number(args.commands)
const CONCURRENCY = Number(args.concurrency)
const AGGREGATES = Number(args.aggregates)
const RECOVERY_EVENTS = Number(args['recovery-events'])
const TRANSACTIONS = Number(args.transactions)
const PROJECTION_EVENTS = Number(args['projection-events'])
const TIME_LIMIT_MS = Number(args['time-limit-s']) * 1000
const only = new Set(args.only!.split(','))
const stack = localStack()
const quiet = { brokers: stack.brokers, logLevel: logLevel.ERROR }

interface ThroughputResult {
  driver: string
  partitions: number
  commands: number
  seconds: number
  commandsPerSecond: number
  p50Ms: number
  p99Ms: number
  batches: number
  meanBatchSize: number
  maxBatchSize: number
  meanCommitMs: number
}

function kafkaRedis(prefix: string): Driver {
  return {
    transport: kafkaTransport({ ...quiet, topicPrefix: `${prefix}.` }),
    store: redisStore({ url: stack.redisUrl, keyPrefix: `${prefix}:` }),
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

/** Commands per second end to end: callers in this process, processors in this process. */
async function throughput(name: string, driver: Driver, partitions: number): Promise<ThroughputResult> {
  const batches: BatchProcessed[] = []
  const app = await createEsk({
    aggregates: [{ aggregate: ContractAccount, partitions }],
    driver,
    commandTimeoutMs: 60_000,
    listeners: { batch: (b) => batches.push(b) },
  })
  try {
    const accounts = app.repository(ContractAccount)
    const ids = await runLimited(AGGREGATES, CONCURRENCY, async () => (await accounts.save(new Open('bench', 0))).id)
    batches.length = 0
    const latencies: number[] = []
    const started = performance.now()
    const deadline = Date.now() + TIME_LIMIT_MS
    let sent = 0
    await runLimited(COMMANDS, CONCURRENCY, async (i) => {
      if (Date.now() > deadline) return
      const t = performance.now()
      await accounts.update(ids[i % ids.length]!, new Deposit(1))
      latencies.push(performance.now() - t)
      sent += 1
    })
    const seconds = (performance.now() - started) / 1000
    latencies.sort((a, b) => a - b)
    const sizes = batches.map((b) => b.commands)
    return {
      driver: name,
      partitions,
      commands: sent,
      seconds: round(seconds),
      commandsPerSecond: Math.round(sent / seconds),
      p50Ms: round(percentile(latencies, 0.5)),
      p99Ms: round(percentile(latencies, 0.99)),
      batches: batches.length,
      meanBatchSize: round(sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length)),
      maxBatchSize: Math.max(0, ...sizes),
      meanCommitMs: round(batches.reduce((a, b) => a + b.commitMs, 0) / Math.max(1, batches.length)),
    }
  } finally {
    await app.close()
  }
}

/** Back-to-back transactions of one writer: our retry setting against kafkajs's default 300 ms. */
async function transactions(retryMs: number): Promise<{ transactionRetryMs: number; transactions: number; msPerTransaction: number }> {
  const prefix = `bench-${randomUUID().slice(0, 8)}`
  const transport = kafkaTransport({ ...quiet, topicPrefix: `${prefix}.` })
  const stream: StreamSpec = { aggregate: 'txn', partitions: 1 }
  await transport.provision([stream])
  const options = resolveKafkaOptions({ ...quiet, topicPrefix: `${prefix}.`, transactionRetryMs: retryMs })
  const writer = await TransactionalWriter.open(transport.client, options, streamNames(options.topicPrefix, 'txn'), 0)
  try {
    const started = performance.now()
    for (let i = 0; i < TRANSACTIONS; i++) {
      await writer.commit([event(`a${i}`, 1, i)], i)
    }
    return {
      transactionRetryMs: retryMs,
      transactions: TRANSACTIONS,
      msPerTransaction: round((performance.now() - started) / TRANSACTIONS),
    }
  } finally {
    await writer.close()
    await transport.close()
  }
}

/** Time to rebuild a partition's snapshots from N events, against a bare read of the same events. */
async function recovery(): Promise<Record<string, number>> {
  const prefix = `bench-${randomUUID().slice(0, 8)}`
  const driver = kafkaRedis(prefix)
  const stream: StreamSpec = { aggregate: 'contract-account', partitions: 1 }
  const transport = driver.transport as ReturnType<typeof kafkaTransport>
  await transport.provision([stream])
  const options = resolveKafkaOptions({ ...quiet, topicPrefix: `${prefix}.` })
  const writer = await TransactionalWriter.open(transport.client, options, streamNames(options.topicPrefix, stream.aggregate), 0)
  const versions = new Map<string, number>()
  const perTransaction = 500
  for (let written = 0; written < RECOVERY_EVENTS; written += perTransaction) {
    const events: EventToAppend[] = []
    for (let i = written; i < Math.min(written + perTransaction, RECOVERY_EVENTS); i++) {
      const id = `agg-${i % AGGREGATES}`
      const version = (versions.get(id) ?? 0) + 1
      versions.set(id, version)
      events.push(version === 1 ? opened(id, i) : event(id, version, i))
    }
    await writer.commit(events, written)
  }
  await writer.close()

  let started = performance.now()
  let read = 0
  for await (const batch of transport.readEvents(stream, 0, 0)) read += batch.length
  const readSeconds = (performance.now() - started) / 1000

  let end: { events: number; elapsedMs: number } | undefined
  started = performance.now()
  const app = await createEsk({
    aggregates: [{ aggregate: ContractAccount, partitions: 1 }],
    driver,
    rebuild: true,
    listeners: { recovery: (p) => (p.phase === 'end' ? (end = p) : undefined) },
  })
  const startupSeconds = (performance.now() - started) / 1000
  await app.close()
  const redis = new Redis(stack.redisUrl)
  await deleteKeysWithPrefix(redis, `${prefix}:`)
  redis.disconnect()
  const recoverySeconds = (end?.elapsedMs ?? NaN) / 1000
  return {
    events: end?.events ?? 0,
    aggregates: versions.size,
    recoverySeconds: round(recoverySeconds),
    eventsPerSecond: Math.round((end?.events ?? 0) / recoverySeconds),
    startupSeconds: round(startupSeconds),
    baselineReadSeconds: round(readSeconds),
    baselineReadEventsPerSecond: Math.round(read / readSeconds),
  }
}

/** A view of the usual shape: a balance per aggregate (a hash field each) and a running total (shared by every partition). */
const BenchBalances = defineProjection({
  name: 'bench-balances',
  handlers: [
    on(Opened, (e, meta, store) => store.hash('balance').set(meta.aggregateId, e.initial)),
    on(Deposited, (e, meta, store) => {
      store.hash('balance').incr(meta.aggregateId, e.amount)
      store.incr('total', e.amount)
    }),
  ],
})

/**
 * A projection built from N events spread over 4 partitions: the first build (lanes from offset 0,
 * until ready()) and rebuild() beside the live view, on the embedded driver (baseline) and on
 * Kafka+Redis, against a bare read of the same events.
 */
async function projections(): Promise<Array<Record<string, unknown>>> {
  const partitions = 4
  const stream: StreamSpec = { aggregate: 'contract-account', partitions }
  const byPartition: EventToAppend[][] = Array.from({ length: partitions }, () => [])
  const versions = new Map<string, number>()
  for (let i = 0; i < PROJECTION_EVENTS; i++) {
    const id = `agg-${i % AGGREGATES}`
    const version = (versions.get(id) ?? 0) + 1
    versions.set(id, version)
    byPartition[partitionFor(id, partitions)]!.push(version === 1 ? opened(id, i) : event(id, version, i))
  }
  const rows: Array<Record<string, unknown>> = []

  const backend = new MemoryBackend()
  const memory = memoryDriver({ backend })
  await memory.transport.provision([stream])
  byPartition.forEach((events, p) => {
    const log = backend.log(stream.aggregate, p)
    for (const e of events) log.events.push({ ...e, offset: log.events.length, timestamp: Date.now() })
  })
  rows.push(await buildAndRebuild('memory (baseline)', memory, partitions, undefined))

  const prefix = `bench-${randomUUID().slice(0, 8)}`
  const driver = kafkaRedis(prefix)
  const transport = driver.transport as ReturnType<typeof kafkaTransport>
  await transport.provision([stream])
  const options = resolveKafkaOptions({ ...quiet, topicPrefix: `${prefix}.` })
  for (let p = 0; p < partitions; p++) {
    const writer = await TransactionalWriter.open(transport.client, options, streamNames(options.topicPrefix, stream.aggregate), p)
    const events = byPartition[p]!
    for (let start = 0; start < events.length; start += 500) await writer.commit(events.slice(start, start + 500), start)
    await writer.close()
  }
  let started = performance.now()
  let read = 0
  for (let p = 0; p < partitions; p++) for await (const batch of transport.readEvents(stream, p, 0)) read += batch.length
  const readSeconds = (performance.now() - started) / 1000
  rows.push(await buildAndRebuild('kafka+redis', driver, partitions, { seconds: readSeconds, events: read }))
  const redis = new Redis(stack.redisUrl)
  await deleteKeysWithPrefix(redis, `${prefix}:`)
  redis.disconnect()
  return rows
}

async function buildAndRebuild(name: string, driver: Driver, partitions: number, baseline: { seconds: number; events: number } | undefined) {
  const started = performance.now()
  const app = await createEsk({
    aggregates: [{ aggregate: ContractAccount, partitions }],
    driver,
    processing: false,
    projections: [BenchBalances],
  })
  const view = app.projection(BenchBalances)
  await view.ready({ timeoutMs: TIME_LIMIT_MS })
  const buildSeconds = (performance.now() - started) / 1000
  const rebuild = await view.rebuild({ timeoutMs: TIME_LIMIT_MS })
  const total = await view.get<number>('total')
  await app.close()
  return {
    driver: name,
    events: PROJECTION_EVENTS,
    partitions,
    buildSeconds: round(buildSeconds),
    buildEventsPerSecond: Math.round(PROJECTION_EVENTS / buildSeconds),
    rebuildSeconds: round(rebuild.elapsedMs / 1000),
    rebuildEventsPerSecond: rebuild.eventsPerSecond,
    ...(baseline && { baselineReadSeconds: round(baseline.seconds), baselineReadEventsPerSecond: Math.round(baseline.events / baseline.seconds) }),
    total,
  }
}

function opened(id: string, i: number): EventToAppend {
  return { aggregateId: id, type: 'contract.Opened', version: 1, commandId: `c${i}`, commandPosition: i, payload: JSON.stringify({ owner: 'b', initial: 0 }) }
}

function event(id: string, version: number, i: number): EventToAppend {
  return { aggregateId: id, type: 'contract.Deposited', version, commandId: `c${i}`, commandPosition: i, payload: JSON.stringify({ amount: 1 }) }
}

async function runLimited<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++
        results[i] = await task(i)
      }
    }),
  )
  return results
}

function round(value: number): number {
  return Math.round(value * 100) / 100
}

async function main(): Promise<void> {
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    settings: {
      commands: COMMANDS,
      concurrency: CONCURRENCY,
      aggregates: AGGREGATES,
      recoveryEvents: RECOVERY_EVENTS,
      transactions: TRANSACTIONS,
      projectionEvents: PROJECTION_EVENTS,
    },
  }
  if (only.has('throughput')) {
    const rows: ThroughputResult[] = []
    for (const partitions of [1, 8]) {
      rows.push(await throughput('memory (baseline)', memoryDriver(), partitions))
      rows.push(await throughput('kafka+redis', kafkaRedis(`bench-${randomUUID().slice(0, 8)}`), partitions))
      console.table(rows.slice(-2))
    }
    report.throughput = rows
  }
  if (only.has('transactions')) {
    const rows = [await transactions(300), await transactions(resolveKafkaOptions({}).transactionRetryMs)]
    console.table(rows)
    report.transactions = rows
  }
  if (only.has('recovery')) {
    const result = await recovery()
    console.table([result])
    report.recovery = result
  }
  if (only.has('projections')) {
    const rows = await projections()
    console.table(rows)
    report.projections = rows
  }
  mkdirSync(args.out!, { recursive: true })
  const file = `${args.out}/bench-${(report.date as string).replace(/[:.]/g, '-')}.json`
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  console.log(`report written to ${file}`)
}

await main()
