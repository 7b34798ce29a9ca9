import { createEsk, externalProjection } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing/contract'
import { describe, expect, it } from 'vitest'

const { ContractAccount, ContractAccountV2, Open, Deposit, Deposited } = contractModel

describe('status with lag, and readiness', () => {
  it('reports each read model with its lag and failed lanes, and is not ready while one it runs is stuck', async () => {
    const positions = new Map<string, number>()
    let failing = true
    const sql = externalProjection({
      name: 'sql',
      events: [Deposited],
      maxAttempts: 1,
      loadPositions: async (lanes) => lanes.map((l) => positions.get(`${l.aggregate}/${l.partition}`)),
      handleBatch: async (batch) => {
        if (failing && batch.events.length > 0) throw new Error('database is down')
        positions.set(`${batch.aggregate}/${batch.partition}`, batch.to)
      },
    })
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver(), projections: [sql] })
    try {
      expect(await app.readiness()).toEqual({ ready: true, reasons: [] })
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('ann', 0))
      const deposit = await accounts.update(id, new Deposit(6))
      for (let i = 0; i < 200 && !(await app.projection(sql).status()).lanes.some((l) => l.state === 'failed'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const status = await app.status({ lag: true })
      expect(status.projections).toEqual([
        {
          name: 'sql',
          runs: true,
          lag: 1,
          caughtUp: false,
          failed: [{ aggregate: 'contract-account', partition: 0, error: expect.objectContaining({ code: 'ESK_PROJECTION_FAILED' }) }],
        },
      ])
      // The synchronous status asks nothing of the logs.
      expect(app.status().projections).toBeUndefined()
      const readiness = await app.readiness()
      expect(readiness.ready).toBe(false)
      expect(readiness.reasons).toEqual([expect.stringMatching(/^read model sql: partition contract-account\/0 failed: .*database is down/)])
      expect((await app.readiness({ maxProjectionLag: 0 })).reasons).toContainEqual('read model sql has 1 event to apply (more than 0)')

      failing = false
      await app.projection(sql).waitFor(deposit)
      expect((await app.status({ lag: true })).projections).toMatchObject([{ name: 'sql', lag: 0, caughtUp: true, failed: [] }])
      expect(await app.readiness({ maxProjectionLag: 0, maxCommandLag: 0 })).toEqual({ ready: true, reasons: [] })
    } finally {
      await app.close()
    }
  })

  it('is not ready while a partition it holds cannot be recovered, and says which and why', async () => {
    const backend = new MemoryBackend()
    const v2 = await createEsk({ aggregates: [{ aggregate: ContractAccountV2, partitions: 1 }], driver: memoryDriver({ backend }) })
    await v2.repository(ContractAccountV2).save(new Open('new', 1))
    await v2.close()
    const v1 = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    try {
      const readiness = await v1.readiness()
      expect(readiness.ready).toBe(false)
      expect(readiness.reasons).toEqual([expect.stringMatching(/^partition contract-account\/0 is failed: .*schema version 2/)])
      const [partition] = v1.status().partitions
      // It failed before taking the store: it holds no owner token there.
      expect(partition).toMatchObject({ state: 'failed' })
      expect(partition).not.toHaveProperty('owner')
    } finally {
      await v1.close()
    }
    const again = await createEsk({ aggregates: [{ aggregate: ContractAccountV2, partitions: 1 }], driver: memoryDriver({ backend }) })
    try {
      expect(again.status().partitions).toEqual([expect.objectContaining({ state: 'ready', owner: expect.any(String), commandPosition: 0 })])
    } finally {
      await again.close()
    }
  })
})
