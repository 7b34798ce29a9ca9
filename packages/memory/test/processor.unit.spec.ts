import { createEsk, partitionFor, type PartitionState } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing'
import { describe, expect, it } from 'vitest'

const { ContractAccount, ContractAccountV2, Open, Deposit } = contractModel

describe('partition processor on the embedded driver', () => {
  it('rebuilds a partition when a batch meets a snapshot of another schema version', async () => {
    const backend = new MemoryBackend()
    const v1 = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const { id } = await v1.repository(ContractAccount).save(new Open('ann', 0))
    await v1.repository(ContractAccount).update(id, new Deposit(40))
    await v1.close()
    // As a rolling deploy can leave it: the checkpoint already says version 2, a snapshot still 1.
    const state = backend.partitionState('contract-account', partitionFor(id, 1))
    state.checkpoint = { ...state.checkpoint!, schemaVersion: 2 }

    const states: PartitionState[] = []
    const v2 = await createEsk({
      aggregates: [{ aggregate: ContractAccountV2, partitions: 1 }],
      driver: memoryDriver({ backend }),
      listeners: { state: (e) => states.push(e.state) },
    })
    const accounts = v2.repository(ContractAccountV2)
    const next = await accounts.update(id, new Deposit(5))
    expect(next.version).toBe(3)
    const found = await accounts.get(id, { atLeastVersion: 3 })
    expect(found.state).toMatchObject({ balance: 45, largestDeposit: 40, history: [0, 40, 5] })
    expect(states).toEqual(['opening', 'recovering', 'ready', 'repairing', 'ready'])
    await v2.close()
  })
})
