import { cacheCoordinators } from '@esk/kafka/driver'
import { describe, expect, it } from 'vitest'

/** A stand-in for the two kafkajs calls the cache touches: a lookup, and a broker with a request. */
function fakeCluster() {
  let connected = true
  let nodeId = 1
  let lookups = 0
  const cluster = {
    async findGroupCoordinator(_: { groupId: string; coordinatorType?: number }) {
      lookups += 1
      const id = nodeId
      return {
        id,
        isConnected: () => connected,
        async endTxn(failure?: string): Promise<number> {
          if (failure === 'connection') throw new Error('Connection closed')
          if (failure) throw Object.assign(new Error(failure), { type: failure })
          return id
        },
      }
    },
  }
  return {
    cluster,
    lookups: () => lookups,
    moveTo: (id: number) => (nodeId = id),
    disconnect: () => (connected = false),
  }
}

describe('cacheCoordinators', () => {
  it('remembers a coordinator per group id and coordinator type', async () => {
    const fake = fakeCluster()
    const cluster = cacheCoordinators(fake.cluster, 10_000)
    await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })
    await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })
    await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 0 })
    await cluster.findGroupCoordinator({ groupId: 'g' })
    expect(fake.lookups()).toBe(3)
  })

  it('asks again once a request to the remembered coordinator failed, and finds the new one', async () => {
    const fake = fakeCluster()
    const cluster = cacheCoordinators(fake.cluster, 10_000)
    const first = await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })
    fake.moveTo(2)
    await expect(first.endTxn('NOT_COORDINATOR')).rejects.toThrow('NOT_COORDINATOR')
    const second = await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })
    expect(await second.endTxn()).toBe(2)
    expect(fake.lookups()).toBe(2)
    fake.moveTo(3)
    await expect(second.endTxn('connection')).rejects.toThrow('Connection closed')
    expect(await (await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })).endTxn()).toBe(3)
  })

  it('keeps the coordinator after an error code that only the right coordinator gives', async () => {
    // Fails before the fix: CONCURRENT_TRANSACTIONS, met after nearly every commit of a busy
    // partition, made the cache forget and look the coordinator up again.
    const fake = fakeCluster()
    const cluster = cacheCoordinators(fake.cluster, 10_000)
    const coordinator = await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })
    await expect(coordinator.endTxn('CONCURRENT_TRANSACTIONS')).rejects.toThrow()
    await expect(coordinator.endTxn('INVALID_PRODUCER_EPOCH')).rejects.toThrow()
    await cluster.findGroupCoordinator({ groupId: 't', coordinatorType: 1 })
    expect(fake.lookups()).toBe(1)
  })

  it('asks again after the time to live, or when the connection to the coordinator is down', async () => {
    const fake = fakeCluster()
    let now = 0
    const cluster = cacheCoordinators(fake.cluster, 1_000, () => now)
    await cluster.findGroupCoordinator({ groupId: 't' })
    now = 999
    await cluster.findGroupCoordinator({ groupId: 't' })
    expect(fake.lookups()).toBe(1)
    now = 1_000
    await cluster.findGroupCoordinator({ groupId: 't' })
    expect(fake.lookups()).toBe(2)
    fake.disconnect()
    await cluster.findGroupCoordinator({ groupId: 't' })
    expect(fake.lookups()).toBe(3)
  })
})
