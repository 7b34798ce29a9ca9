import { deleteKeysWithPrefix } from '@esk/redis'
import { describeProjectionContract } from '@esk/testing/contract'
import { Kafka, logLevel } from 'kafkajs'
import { localStack } from '@esk/testing/stack'
import { isolatedStack } from './support.js'

// The same read-side suite the embedded driver passes, unchanged, over the real broker and redis-server.
describeProjectionContract(
  'kafka transport + redis store',
  async () => {
    const stack = isolatedStack()
    return {
      driver: () => stack.driver(),
      truncateEvents: async (stream, partition, before) => {
        // What retention or an operator's kafka-delete-records does to the log under a read model.
        const admin = new Kafka({ brokers: localStack().brokers, logLevel: logLevel.NOTHING }).admin()
        await admin.connect()
        const topic = `${stack.topicPrefix}${stream.aggregate}.events`
        try {
          // kafkajs finds the partition's leader in metadata it must have loaded first.
          await admin.fetchTopicMetadata({ topics: [topic] })
          await admin.deleteTopicRecords({
            topic,
            partitions: [{ partition, offset: String(before) }],
          })
        } finally {
          await admin.disconnect()
        }
      },
      flushProjections: async () => {
        await deleteKeysWithPrefix(stack.redis, `${stack.keyPrefix}projection`)
      },
      dispose: () => stack.dispose!(),
    }
  },
  { timeoutMs: 60_000 },
)
