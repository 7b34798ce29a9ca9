import { createEsk } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing/contract'
import { describe, expect, it, vi } from 'vitest'

const { ContractAccount, Open, Deposit } = contractModel

// As in an application that does not install the optional peer dependency.
vi.mock('@opentelemetry/api', () => {
  throw new Error("Cannot find package '@opentelemetry/api'")
})

describe('telemetry without @opentelemetry/api', () => {
  it('is off by default, and commands work as before', async () => {
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }) })
    try {
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('fay', 1))
      await expect(accounts.update(id, new Deposit(2))).resolves.toMatchObject({ version: 2 })
      expect(backend.logs.get('contract-account')!.every((log) => log.commandHeaders.size === 0)).toBe(true)
    } finally {
      await app.close()
    }
  })

  it('refuses telemetry: true with a configuration error that names the package', async () => {
    const backend = new MemoryBackend()
    await expect(createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }), telemetry: true })).rejects.toMatchObject({
      code: 'ESK_CONFIGURATION',
      message: expect.stringMatching(/telemetry: true needs the package @opentelemetry\/api/),
    })
  })
})
