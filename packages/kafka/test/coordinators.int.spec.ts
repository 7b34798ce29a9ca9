import { randomUUID } from 'node:crypto'
import { coordinatorCacheActive, producerWithCoordinatorCache } from '@esk/kafka/driver'
import { localStack } from '@esk/testing/stack'
import { Kafka, logLevel, type Producer, type ProducerConfig } from 'kafkajs'
import { afterAll, describe, expect, it } from 'vitest'

const stack = localStack()
const kafka = new Kafka({ brokers: stack.brokers, clientId: 'esk-coordinators-test', logLevel: logLevel.NOTHING })
const topic = `esk-it-coordinators-${randomUUID().slice(0, 8)}`
const producers: Producer[] = []

afterAll(async () => {
  for (const producer of producers) await producer.disconnect()
})

/** Runs `count` transactions like a processor's batch and returns how many FindCoordinator requests they sent. */
async function lookups(make: (config: ProducerConfig) => Producer, count: number): Promise<number> {
  const producer = make({ transactionalId: `${topic}-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 })
  producers.push(producer)
  let requests = 0
  producer.on(producer.events.REQUEST, ({ payload }) => {
    if (payload.apiName === 'GroupCoordinator') requests += 1
  })
  await producer.connect()
  // The first transaction finds the coordinators; only the ones after it are counted.
  const run = async (): Promise<void> => {
    const transaction = await producer.transaction()
    await transaction.send({ topic, messages: [{ value: 'x' }] })
    await transaction.sendOffsets({ consumerGroupId: `${topic}-group`, topics: [{ topic, partitions: [{ partition: 0, offset: '1' }] }] })
    await transaction.commit()
  }
  await run()
  requests = 0
  for (let i = 0; i < count; i++) await run()
  return requests
}

describe('coordinator cache of transactional producers', () => {
  it('is active with the installed kafkajs release', () => {
    // If a kafkajs upgrade renames its private cluster factory, producers lose the cache silently: this says so.
    expect(coordinatorCacheActive(kafka)).toBe(true)
  })

  it('asks for the coordinators once instead of before every step of every transaction', async () => {
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
    await admin.disconnect()

    const plain = await lookups((config) => kafka.producer(config), 5)
    const cached = await lookups((config) => producerWithCoordinatorCache(kafka, config), 5)
    // kafkajs alone: the transaction coordinator before add-partitions, add-offsets and end, and
    // the group coordinator before the offset commit.
    expect(plain).toBeGreaterThanOrEqual(5 * 4)
    expect(cached).toBe(0)
  })
})
