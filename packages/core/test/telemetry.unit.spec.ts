import { createEsk } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing/contract'
import { eventually } from '@esk/testing/stack'
import { afterEach, describe, expect, it } from 'vitest'
import { registerSdk, runTelemetryScenario, type TestSdk } from './support/telemetry.js'

const { ContractAccount, Open, Deposit } = contractModel

let sdk: TestSdk | undefined
afterEach(async () => {
  await sdk?.stop()
  sdk = undefined
})

/** Commands and their headers as the embedded log holds them. */
function commandHeaders(backend: MemoryBackend): unknown[] {
  return (backend.logs.get('contract-account') ?? []).flatMap((log) => [...log.commandHeaders.values()])
}

describe('telemetry on the embedded driver', () => {
  it('traces a command from save/update through processing and its commit to a read model, and counts outcomes', async () => {
    await runTelemetryScenario({ driver: () => memoryDriver(), system: 'esk.memory', topicPrefix: '' })
  })

  it('without a registered SDK sends no trace context and works as before', async () => {
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }) })
    try {
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('bob', 1))
      await expect(accounts.update(id, new Deposit(2))).resolves.toMatchObject({ version: 2 })
      expect(commandHeaders(backend)).toEqual([])
      expect(backend.logs.get('contract-account')!.flatMap((log) => log.events).every((e) => e.headers === undefined)).toBe(true)
    } finally {
      await app.close()
    }
  })

  it('with telemetry: false records nothing even with an SDK registered', async () => {
    sdk = registerSdk()
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }), telemetry: false })
    try {
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('cid', 1))
      await accounts.update(id, new Deposit(2))
    } finally {
      await app.close()
    }
    expect(sdk.spans.getFinishedSpans()).toEqual([])
    expect(commandHeaders(backend)).toEqual([])
    expect((await sdk.collect()).get('esk.commands')).toBeUndefined()
  })

  it('picks up an SDK registered after createEsk', async () => {
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }), telemetry: true })
    try {
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('dee', 1))
      sdk = registerSdk()
      await accounts.update(id, new Deposit(2))
      expect(commandHeaders(backend)).toEqual([{ traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/) }])
      // The processor counts a command once its batch is saved, which may be just after the reply.
      const counted = await eventually(async () => (await sdk!.collect()).get('esk.commands'), 'the command counted')
      expect(counted.dataPoints.map((p) => [p.attributes['esk.outcome'], p.value])).toEqual([['accepted', 1]])
    } finally {
      await app.close()
    }
  })

  it('counts the events recoveries replay', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }), telemetry: false })
    const { id } = await first.repository(ContractAccount).save(new Open('eve', 1))
    await first.repository(ContractAccount).update(id, new Deposit(2))
    await first.close()
    sdk = registerSdk()
    const again = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver({ backend }), rebuild: true })
    await again.close()
    const replayed = (await sdk.collect()).get('esk.recovery.events')
    expect(replayed?.dataPoints.map((p) => [p.attributes['esk.recovery.rebuild'], p.value])).toEqual([[true, 2]])
  })
})
