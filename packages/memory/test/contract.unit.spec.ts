import { MemoryBackend, memoryDriver } from '@esk/memory'
import { describeDriverContract } from '@esk/testing/contract'

describeDriverContract('embedded memory driver', async () => {
  const backend = new MemoryBackend()
  return {
    driver: () => memoryDriver({ backend, maxBatchSize: 16 }),
    flushSnapshots: async () => backend.flushSnapshots(),
    deadLetters: async (stream, partition) => backend.log(stream.aggregate, partition).deadLetters,
    corruptSnapshot: async (stream, partition, id) => {
      backend.partitionState(stream.aggregate, partition).snapshots.get(id)!.state = '{"balance": not json'
    },
  }
})
