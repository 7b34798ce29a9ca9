import { randomUUID } from 'node:crypto'
import type { Driver } from '@esk/core'
import { kafkaTransport, type KafkaTransportOptions } from '@esk/kafka'
import { PartitionKeys, StateFields, deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { localStack, type ContractFixture } from '@esk/testing'
import { Redis } from 'ioredis'
import { logLevel } from 'kafkajs'

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
    corruptSnapshot: async (stream, partition, id) => {
      await redis.hset(new PartitionKeys(keyPrefix, stream, partition).state, StateFields.snapshot(id), 'not a snapshot')
    },
    dispose: async () => {
      await deleteKeysWithPrefix(redis, keyPrefix)
      redis.disconnect()
    },
  }
}
