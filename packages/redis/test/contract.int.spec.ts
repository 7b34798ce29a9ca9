import { MemoryBackend } from '@esk/memory'
import { MemoryTransport } from '@esk/memory/driver'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { PartitionKeys, StateFields } from '@esk/redis/driver'
import { describeDriverContract } from '@esk/testing/contract'
import { REDIS_URL, adminClient, testPrefix } from './support.js'

// The in-memory transport stands in for Kafka, so this runs exactly the store's part of the
// contract against a real redis-server. Each fixture has its own key prefix; flushing it is the
// fixture's FLUSHALL, without touching other tests' keys.
describeDriverContract('memory transport + Redis store', async () => {
  const backend = new MemoryBackend()
  const keyPrefix = testPrefix()
  const admin = await adminClient()
  return {
    driver: () => ({
      transport: new MemoryTransport(backend, { maxBatchSize: 16 }),
      store: redisStore({ url: REDIS_URL, keyPrefix }),
    }),
    flushSnapshots: async () => {
      await deleteKeysWithPrefix(admin, keyPrefix)
    },
    deadLetters: async (stream, partition) => backend.log(stream.aggregate, partition).deadLetters,
    corruptSnapshot: async (stream, partition, id) => {
      await admin.hset(new PartitionKeys(keyPrefix, stream, partition).state, StateFields.snapshot(id), 'not a snapshot')
    },
    dispose: async () => {
      await deleteKeysWithPrefix(admin, keyPrefix)
      await admin.quit()
    },
  }
})
