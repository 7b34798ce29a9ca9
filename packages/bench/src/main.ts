import { randomUUID } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { createEsk, type BatchProcessed, type Driver, type EventToAppend, type StreamSpec } from '@esk/core'
import { TransactionalWriter, kafkaTransport, logLevel, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { memoryDriver } from '@esk/memory'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { ContractAccount, Deposit, Open } from '@esk/testing/model'
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
    only: { type: 'string', default: 'throughput,transactions,recovery' },
    'time-limit-s': { type: 'string', default: '90' },
    out: { type: 'string', default: 'reports' },
  },
})
const COMMANDS = Number(args.commands)
const CONCURRENCY = Number(args.concurrency)
const AGGREGATES = Number(args.aggregates)
const RECOVERY_EVENTS = Number(args['recovery-events'])
const TRANSACTIONS = Number(args.transactions)
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
    settings: { commands: COMMANDS, concurrency: CONCURRENCY, aggregates: AGGREGATES, recoveryEvents: RECOVERY_EVENTS, transactions: TRANSACTIONS },
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
  mkdirSync(args.out!, { recursive: true })
  const file = `${args.out}/bench-${(report.date as string).replace(/[:.]/g, '-')}.json`
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  console.log(`report written to ${file}`)
}

await main()
