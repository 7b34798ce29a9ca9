import { MemoryBackend } from '@esk/memory'
import { MemoryTransport } from '@esk/memory/driver'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { describeProjectionContract } from '@esk/testing/contract'
import { REDIS_URL, adminClient, testPrefix } from './support.js'

// The read side's contract with views in the real redis-server, fed by the embedded transport: the
// Lua scripts under concurrent lanes, generations and faults. Kafka+Redis runs the same suite in
// packages/kafka/test/projections.int.spec.ts.
describeProjectionContract('embedded transport + redis store', async () => {
  const backend = new MemoryBackend()
  const keyPrefix = testPrefix()
  return {
    driver: () => ({ transport: new MemoryTransport(backend, { replayBatchSize: 8 }), store: redisStore({ url: REDIS_URL, keyPrefix }) }),
    truncateEvents: async (stream, partition, before) => backend.truncateEvents(stream.aggregate, partition, before),
    flushProjections: async () => {
      const admin = await adminClient()
      await deleteKeysWithPrefix(admin, `${keyPrefix}projection`)
      await admin.quit()
    },
    dispose: async () => {
      const admin = await adminClient()
      await deleteKeysWithPrefix(admin, keyPrefix)
      await admin.quit()
    },
  }
})
