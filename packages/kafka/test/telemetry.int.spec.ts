import { afterEach, describe, it } from 'vitest'
import { runTelemetryScenario } from '../../core/test/support/telemetry.js'
import { isolatedStack, type IsolatedStack } from './support.js'

let stack: IsolatedStack | undefined
afterEach(async () => {
  await stack?.dispose?.()
  stack = undefined
})

describe('telemetry on Kafka + Redis', () => {
  it('traces a command through the command topic (W3C headers), its transaction and a read model, and counts outcomes', async () => {
    stack = isolatedStack()
    const { driver, topicPrefix } = stack
    await runTelemetryScenario({ driver: () => driver(), system: 'kafka', topicPrefix, group: true })
  })
})
