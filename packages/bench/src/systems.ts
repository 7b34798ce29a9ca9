/**
 * The three systems every run compares, behind one small interface: esk itself, and the two
 * hand-written baselines (`tx`: transactional, `plain`: idempotent producer and plain commit).
 */
import { ErrorCode, createEsk, hasCode, type Esk } from '@esk/core'
import { kafkaTransport, logLevel } from '@esk/kafka'
import { redisStore } from '@esk/redis'
import { BaselineClient } from './baseline/client.js'
import { BaselineProcessor, provisionBaseline } from './baseline/processor.js'
import { BenchAccount, Deposit, Open } from './domain.js'

/** A system under test. */
export type SystemName = 'esk' | 'tx' | 'plain'

/** What a worker needs to reach one system's topics and keys. */
export interface SystemConfig {
  system: SystemName
  brokers: string[]
  redisUrl: string
  /** Topic and key prefix of this fixture. */
  prefix: string
  partitions: number
  /** esk's `snapshotCacheSize`, when not its default. */
  eskHeld?: number
}

/** A running processor. */
export interface SystemProcessor {
  /** Commands processed so far. */
  commands(): number
  close(): Promise<void>
}

/** A client: each call resolves true when accepted, false when refused; rejects on failure. */
export interface SystemClient {
  create(id: string): Promise<boolean>
  deposit(id: string, amount: number, note: string): Promise<boolean>
  /** True when the aggregate was found. */
  find(id: string): Promise<boolean>
  close(): Promise<void>
}

const COMMAND_TIMEOUT_MS = 60_000

function eskApp(config: SystemConfig, processing: boolean, onBatch?: (commands: number) => void): Promise<Esk> {
  return createEsk({
    aggregates: [{ aggregate: BenchAccount, partitions: config.partitions }],
    driver: {
      transport: kafkaTransport({ brokers: config.brokers, topicPrefix: config.prefix, logLevel: logLevel.ERROR }),
      store: redisStore({ url: config.redisUrl, keyPrefix: config.prefix }),
    },
    processing,
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    ...(config.eskHeld !== undefined && { snapshotCacheSize: config.eskHeld }),
    ...(onBatch && { listeners: { batch: (b) => onBatch(b.commands) } }),
  })
}

/** Creates a system's topics, so no timed run pays for it. */
export async function provision(config: SystemConfig): Promise<void> {
  if (config.system === 'esk') {
    const transport = kafkaTransport({ brokers: config.brokers, topicPrefix: config.prefix, logLevel: logLevel.ERROR })
    await transport.provision([{ aggregate: 'bench-account', partitions: config.partitions }])
    await transport.close()
  } else {
    await provisionBaseline(config.brokers, config.prefix, config.partitions)
  }
}

/** Starts a processor of `config.system`; resolves once it has joined its group. */
export async function startProcessor(config: SystemConfig): Promise<SystemProcessor> {
  let commands = 0
  const count = (n: number): void => {
    commands += n
  }
  if (config.system === 'esk') {
    const app = await eskApp(config, true, count)
    return { commands: () => commands, close: () => app.close() }
  }
  const processor = await BaselineProcessor.start({ ...config, transactional: config.system === 'tx', onBatch: count })
  return { commands: () => commands, close: () => processor.close() }
}

/** Opens a client of `config.system`. */
export async function openClient(config: SystemConfig): Promise<SystemClient> {
  if (config.system === 'esk') {
    const app = await eskApp(config, false)
    const accounts = app.repository(BenchAccount)
    const refused = (error: unknown): false => {
      if (hasCode(error, ErrorCode.CommandRejected)) return false
      throw error
    }
    return {
      create: (id) => accounts.save(new Open('bench'), { id }).then(() => true, refused),
      deposit: (id, amount, note) => accounts.update(id, new Deposit(amount, note)).then(() => true, refused),
      find: async (id) => (await accounts.find(id)) !== undefined,
      close: () => app.close(),
    }
  }
  const client = await BaselineClient.open({ ...config, timeoutMs: COMMAND_TIMEOUT_MS })
  return {
    create: async (id) => (await client.call(id, 'create')).ok,
    deposit: async (id, amount, note) => (await client.call(id, 'deposit', amount, note)).ok,
    find: async (id) => (await client.find(id)) !== undefined,
    close: () => client.close(),
  }
}

/** Deletes every topic of a fixture. */
export async function dropTopics(brokers: string[], prefix: string): Promise<void> {
  const { Kafka, logLevel: level } = await import('kafkajs')
  const admin = new Kafka({ brokers, logLevel: level.NOTHING }).admin()
  await admin.connect()
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix))
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 })
  } finally {
    await admin.disconnect()
  }
}
