import { FencedError, createEsk, type Logger } from '@esk/core'
import { type PartitionHost, type Transport } from '@esk/core/driver'
import { memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing/contract'
import { describe, expect, it } from 'vitest'

const { ContractAccount } = contractModel

type Line = { level: string; message: string; fields: Record<string, unknown> | undefined }

describe('logs of background failures', () => {
  it('logs conditions that heal by themselves at warn with a stable code, and other failures at error', async () => {
    const lines: Line[] = []
    const at =
      (level: string) =>
      (message: string, fields?: Record<string, unknown>): void => {
        lines.push({ level, message, fields })
      }
    const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
    // The embedded transport, reporting through the same host a transport uses for its own failures.
    const { transport, store } = memoryDriver()
    let host: PartitionHost | undefined
    const reporting: Transport = Object.assign(Object.create(transport) as Transport, {
      startProcessing: (streams: Parameters<Transport['startProcessing']>[0], h: PartitionHost) => {
        host = h
        return transport.startProcessing(streams, h)
      },
    })
    const app = await createEsk({ aggregates: [ContractAccount], driver: { transport: reporting, store }, logger, telemetry: false })
    try {
      const rebalance = Object.assign(new Error('The group is rebalancing, so a rejoin is needed'), { type: 'REBALANCE_IN_PROGRESS' })
      host!.reportError(new FencedError('the writer of esk.x.commands[1] was fenced by a newer owner'), { stream: 'contract-account', partition: 1 })
      host!.reportError(Object.assign(new Error('retries exceeded'), { cause: rebalance }), { stream: 'contract-account', partition: 0 })
      host!.reportError(new Error('disk on fire'), { stream: 'contract-account', partition: 0 })
    } finally {
      await app.close()
    }
    const reported = lines.filter((l) => l.fields?.error !== undefined)
    expect(reported.map((l) => [l.level, l.fields?.code ?? null])).toEqual([
      ['warn', 'ESK_PARTITION_FENCED'],
      ['warn', 'ESK_REBALANCE'],
      ['error', null],
    ])
    expect(reported[0]).toMatchObject({ fields: { aggregate: 'contract-account', partition: 1 } })
    expect(reported[0]!.message).toMatch(/reopened if it is still assigned here \(during transport\)/)
  })
})
