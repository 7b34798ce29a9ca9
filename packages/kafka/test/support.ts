import { randomUUID } from 'node:crypto'
import { createEsk, type Driver, type Esk, type EskOptions } from '@esk/core'
import {
  partitionFor,
  type DeadLetter,
  type SnapshotStore,
  type Store,
  type StoredEvent,
  type StreamSpec,
} from '@esk/core/driver'
import { DeadLetterHeaders, kafkaTransport, type KafkaTransport, type KafkaTransportOptions } from '@esk/kafka'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { PartitionKeys, StateFields } from '@esk/redis/driver'
import { contractModel, type ContractFixture } from '@esk/testing/contract'
import { eventually, localStack } from '@esk/testing/stack'
import { Redis } from 'ioredis'
import { Kafka, logLevel, type KafkaMessage } from 'kafkajs'
import { afterEach } from 'vitest'

/** A Kafka+Redis environment of its own: unique topic prefix and key prefix on the local stack. */
export interface IsolatedStack extends ContractFixture {
  topicPrefix: string
  keyPrefix: string
  /** Transport options for this environment (brokers, prefix, quiet logs, fast group timings). */
  transportOptions(extra?: KafkaTransportOptions): KafkaTransportOptions
  driver(extra?: KafkaTransportOptions): Driver
  /** A Redis client for inspecting keys; closed by dispose. */
  redis: Redis
}

/** Creates an isolated environment; `dispose` deletes its Redis keys (topics stay, under a unique prefix). */
export function isolatedStack(): IsolatedStack {
  const stack = localStack()
  const id = randomUUID().slice(0, 8)
  const topicPrefix = `esk-it-${id}.`
  const keyPrefix = `esk-it-${id}:`
  const redis = new Redis(stack.redisUrl, { lazyConnect: false })
  const transportOptions = (extra: KafkaTransportOptions = {}): KafkaTransportOptions => ({
    brokers: stack.brokers,
    topicPrefix,
    logLevel: logLevel.ERROR,
    ...extra,
  })
  return {
    topicPrefix,
    keyPrefix,
    redis,
    transportOptions,
    driver: (extra) => ({
      transport: kafkaTransport(transportOptions(extra)),
      store: redisStore({ url: stack.redisUrl, keyPrefix }),
    }),
    flushSnapshots: async () => {
      await deleteKeysWithPrefix(redis, keyPrefix)
    },
    deadLetters: (stream, partition) => readDeadLetters(stack.brokers, `${topicPrefix}${stream.aggregate}.dead-letters`, partition),
    corruptSnapshot: async (stream, partition, id) => {
      await redis.hset(new PartitionKeys(keyPrefix, stream, partition).state, StateFields.snapshot(id), 'not a snapshot')
    },
    dispose: async () => {
      await deleteKeysWithPrefix(redis, keyPrefix)
      redis.disconnect()
    },
  }
}

/**
 * Every committed record of a partition, as stored (headers and key undecoded): read with a plain
 * read_committed consumer of its own group, up to the partition's end as it is now.
 */
export async function readRecords(brokers: string[], topic: string, partition: number): Promise<KafkaMessage[]> {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const end = Number((await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition)?.offset ?? 0)
  await admin.disconnect()
  if (end === 0) return []
  const consumer = kafka.consumer({ groupId: `esk-it-raw-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 })
  const records: KafkaMessage[] = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${records.length} records of ${topic}[${partition}] in 20 s`)), 20_000)
      void consumer.run({
        eachMessage: async ({ partition: p, message }) => {
          if (p !== partition) return
          records.push(message)
          // Transaction markers take offsets too: stop at the last record before the end.
          if (Number(message.offset) >= end - 2) {
            clearTimeout(timer)
            resolve()
          }
        },
      })
    })
  } finally {
    await consumer.disconnect()
  }
  return records
}

/** Every committed dead letter of a partition, decoded from its headers. */
async function readDeadLetters(brokers: string[], topic: string, partition: number): Promise<DeadLetter[]> {
  return (await readRecords(brokers, topic, partition)).map((message) => {
    const header = (name: string): string | undefined => message.headers?.[name]?.toString()
    return {
      position: Number(header(DeadLetterHeaders.commandOffset)),
      value: message.value?.toString() ?? '',
      reason: { code: header(DeadLetterHeaders.code) ?? '', message: header(DeadLetterHeaders.reason) ?? '' },
      ...(header(DeadLetterHeaders.aggregateId) !== undefined && { aggregateId: header(DeadLetterHeaders.aggregateId) }),
      ...(header(DeadLetterHeaders.commandId) !== undefined && { commandId: header(DeadLetterHeaders.commandId) }),
    }
  })
}

/** Ids whose partitions cover every partition, one per partition, in partition order. */
export function idsPerPartition(partitions: number): string[] {
  const ids: string[] = []
  for (let i = 0; ids.length < partitions; i++) {
    const id = `acc-${i}`
    if (partitionFor(id, partitions) === ids.length) ids.push(id)
  }
  return ids
}

/**
 * Every event of a partition, read through a transport of its own. A commit returns before the
 * last stable offset passes it, so the read is repeated until it shows at least `atLeast` events.
 */
export async function readAll(stack: IsolatedStack, stream: StreamSpec, partition: number, atLeast = 0): Promise<StoredEvent[]> {
  const transport = kafkaTransport(stack.transportOptions())
  try {
    return await eventually(async () => {
      const events: StoredEvent[] = []
      for await (const batch of transport.readEvents(stream, partition, 0)) events.push(...batch)
      return events.length >= atLeast && events
    }, `${atLeast} events in ${stream.aggregate}[${partition}]`, 10_000)
  } finally {
    await transport.close()
  }
}

/** A store that holds chosen calls of one partition until released; see {@link holdingStore}. */
export interface HoldingStore extends Store {
  /** From now on, calls of `method` for `partition` wait until {@link release}. */
  hold(method: 'load' | 'save' | 'checkpoint', partition: number): void
  /** Resolves once a call is being held. */
  held(): Promise<void>
  /** Lets every held call (and every later one) through. */
  release(): void
}

/**
 * Wraps a real store so that some of its calls hang, as a Redis that stops answering would, until
 * the test releases them. Everything else goes to the real store.
 */
export function holdingStore(store: Store): HoldingStore {
  let rule: { method: string; partition: number } | undefined
  let released: () => void = () => undefined
  let gate = new Promise<void>((resolve) => (released = resolve))
  let reportHeld: () => void = () => undefined
  const heldOnce = new Promise<void>((resolve) => (reportHeld = resolve))
  const snapshots: SnapshotStore = Object.create(store.snapshots) as SnapshotStore
  const wait = async (method: string, partition: number): Promise<void> => {
    if (rule?.method !== method || rule.partition !== partition) return
    reportHeld()
    await gate
  }
  snapshots.load = async (stream, partition, token, ids, commands) => {
    await wait('load', partition)
    return store.snapshots.load(stream, partition, token, ids, commands)
  }
  snapshots.save = async (stream, partition, token, write) => {
    await wait('save', partition)
    return store.snapshots.save(stream, partition, token, write)
  }
  snapshots.checkpoint = async (stream, partition) => {
    await wait('checkpoint', partition)
    return store.snapshots.checkpoint(stream, partition)
  }
  return {
    snapshots,
    outcomes: store.outcomes,
    close: () => store.close(),
    hold(method, partition) {
      rule = { method, partition }
      gate = new Promise<void>((resolve) => (released = resolve))
    },
    held: () => heldOnce,
    release() {
      rule = undefined
      released()
    },
  }
}

/** What a spec's tests share: isolated environments and applications, released after each test. */
export interface TestScope {
  /** Runs `cleanup` after the current test; the last one registered runs first. */
  defer(cleanup: () => Promise<void>): void
  /** A new isolated environment (see {@link isolatedStack}). */
  env(): IsolatedStack
  /** An application of the contract aggregate on `stack`, closed after the test. */
  app(stack: IsolatedStack, options?: Partial<EskOptions>, partitions?: number): Promise<Esk>
  /** A transport of its own on `stack` (a tool, or another process), closed after the test. */
  connect(stack: IsolatedStack, extra?: KafkaTransportOptions): KafkaTransport
}

/** Registers the `afterEach` that releases what the tests of the calling `describe` create. */
export function testScope(defaults: { partitions: number; commandTimeoutMs: number }): TestScope {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })
  const defer = (cleanup: () => Promise<void>): void => {
    cleanups.push(cleanup)
  }
  return {
    defer,
    env() {
      const stack = isolatedStack()
      defer(() => stack.dispose!())
      return stack
    },
    async app(stack, options = {}, partitions = defaults.partitions) {
      const esk = await createEsk({
        aggregates: [{ aggregate: contractModel.ContractAccount, partitions }],
        driver: stack.driver(),
        commandTimeoutMs: defaults.commandTimeoutMs,
        ...options,
      })
      defer(() => esk.close())
      return esk
    },
    connect(stack, extra = {}) {
      const transport = kafkaTransport(stack.transportOptions(extra))
      defer(() => transport.close())
      return transport
    },
  }
}
