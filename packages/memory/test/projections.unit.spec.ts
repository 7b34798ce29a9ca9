import { MemoryBackend, memoryDriver } from '@esk/memory'
import { describeProjectionContract } from '@esk/testing/contract'

describeProjectionContract('embedded memory driver', async () => {
  const backend = new MemoryBackend()
  return {
    driver: () => memoryDriver({ backend, maxBatchSize: 16, replayBatchSize: 8 }),
    truncateEvents: async (stream, partition, before) => backend.truncateEvents(stream.aggregate, partition, before),
    flushProjections: async () => backend.flushProjections(),
  }
})
