import { randomUUID } from 'node:crypto'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { localStack } from '@esk/testing/stack'
import { afterAll, describe, expect, it } from 'vitest'
import { run } from '../src/app.js'
import { driverFromArgs, type ExampleDriver } from '../src/driver.js'
import { expectStory } from './story.js'

// The example exactly as `main.js --kafka` builds it, on the local stack (or ESK_KAFKA_BROKERS and
// ESK_REDIS_URL), with topic and key prefixes of its own so that no other run is in the way.
describe('bank-account example on Kafka and Redis', () => {
  const stack = localStack()
  const keyPrefixes: string[] = []

  function isolatedDriver(): ExampleDriver {
    const id = randomUUID().slice(0, 8)
    const keyPrefix = `esk-example-it-${id}:`
    keyPrefixes.push(keyPrefix)
    const args = ['--kafka', '--brokers', stack.brokers.join(','), '--redis-url', stack.redisUrl]
    return driverFromArgs([...args, '--topic-prefix', `esk-example-it-${id}.`, '--key-prefix', keyPrefix], process.env)
  }

  // Topics stay behind, under prefixes nobody reuses; the keys go.
  afterAll(async () => {
    const store = redisStore({ url: stack.redisUrl })
    try {
      for (const prefix of keyPrefixes) await deleteKeysWithPrefix(store.client, prefix)
    } finally {
      await store.close()
    }
  })

  it('runs the whole story with the results of the embedded driver', async () => {
    const lines: string[] = []
    const result = await run((line) => lines.push(line), { driver: isolatedDriver(), runId: 'kafka' })

    expectStory(result, lines, 'kafka')
    expect(result.replayed).toEqual({ restart: 0, rebuild: 7 })
  })

  it('runs again on the same topics and keys: the rebuild folds both runs, each reads its own accounts', async () => {
    const driver = isolatedDriver()
    await run(() => undefined, { driver, runId: 'first' })
    const lines: string[] = []
    const result = await run((line) => lines.push(line), { driver, runId: 'second' })

    expectStory(result, lines, 'second')
    expect(result.replayed).toEqual({ restart: 0, rebuild: 14 })
    expect(lines).toContain("   (7 of the 14 events are this run's; the rest are earlier runs' accounts)")
  })
})
