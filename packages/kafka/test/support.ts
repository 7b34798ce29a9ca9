import { randomUUID } from 'node:crypto'
import type { DeadLetter, Driver } from '@esk/core'
import { DeadLetterHeaders, kafkaTransport, type KafkaTransportOptions } from '@esk/kafka'
import { PartitionKeys, StateFields, deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { localStack, type ContractFixture } from '@esk/testing'
import { Redis } from 'ioredis'
import { Kafka, logLevel } from 'kafkajs'

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
 * Every committed dead letter of a partition: read with a plain read_committed consumer of its own
 * group, up to the partition's end as it is now.
 */
async function readDeadLetters(brokers: string[], topic: string, partition: number): Promise<DeadLetter[]> {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const end = Number((await admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition)?.offset ?? 0)
  await admin.disconnect()
  if (end === 0) return []
  const consumer = kafka.consumer({ groupId: `esk-it-dlq-${randomUUID()}`, readUncommitted: false, maxWaitTimeInMs: 100 })
  const letters: DeadLetter[] = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${letters.length} dead letters of ${topic}[${partition}] in 20 s`)), 20_000)
      void consumer.run({
        eachMessage: async ({ partition: p, message }) => {
          if (p !== partition) return
          const header = (name: string): string | undefined => message.headers?.[name]?.toString()
          letters.push({
            position: Number(header(DeadLetterHeaders.commandOffset)),
            value: message.value?.toString() ?? '',
            reason: { code: header(DeadLetterHeaders.code) ?? '', message: header(DeadLetterHeaders.reason) ?? '' },
            ...(header(DeadLetterHeaders.aggregateId) !== undefined && { aggregateId: header(DeadLetterHeaders.aggregateId) }),
            ...(header(DeadLetterHeaders.commandId) !== undefined && { commandId: header(DeadLetterHeaders.commandId) }),
          })
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
  return letters
}
