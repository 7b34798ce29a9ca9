import { randomUUID } from 'node:crypto'
import { createEsk, defineProjection, on, type Esk, type EskOptions } from '@esk/core'
import { partitionFor } from '@esk/core/driver'
import { contractModel } from '@esk/testing/contract'
import { eventually } from '@esk/testing/stack'
import { Kafka, logLevel } from 'kafkajs'
import { afterEach, describe, expect, it } from 'vitest'
import { isolatedStack, type IsolatedStack } from './support.js'

const { ContractAccount, Open, Deposit, Deposited } = contractModel

/** Amounts the projection's handler refuses while they are listed. */
const refused = new Set<number>()

const Sums = defineProjection({
  name: 'kafka-sums',
  handlers: [
    on(Deposited, (e, meta, store) => {
      if (refused.has(e.amount)) throw new Error(`refusing ${e.amount}`)
      store.incr('sum', e.amount)
      store.hash('times').incr(meta.eventId)
    }),
  ],
})

describe('kafka read models', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    refused.clear()
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })

  function env(): IsolatedStack {
    const stack = isolatedStack()
    cleanups.push(() => stack.dispose!())
    return stack
  }

  async function app(stack: IsolatedStack, options: Partial<EskOptions> = {}): Promise<Esk> {
    const esk = await createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions: 4 }],
      driver: stack.driver(),
      projections: [Sums],
      projectionPollMs: 100,
      commandTimeoutMs: 30_000,
      readTimeoutMs: 30_000,
      ...options,
    })
    cleanups.push(() => esk.close())
    return esk
  }

  /**
   * Opens `count` accounts and deposits into each; resolves once `esk`'s read model (if it runs
   * one) has applied them. A command is answered at its commit, a moment before read_committed
   * readers see it, so `ready()` alone could miss the last ones (it did, in CI, once answers came
   * at the commit): `waitFor` is the way to read one's own writes.
   */
  async function deposits(esk: Esk, count: number, amount = 1, applied = true): Promise<void> {
    const accounts = esk.repository(ContractAccount)
    const ids = Array.from({ length: count }, () => `acc-${randomUUID()}`)
    await Promise.all(ids.map((id) => accounts.save(new Open('ann', 0), { id })))
    const results = await Promise.all(ids.map((id) => accounts.update(id, new Deposit(amount))))
    if (applied) await Promise.all(results.map((result) => esk.projection(Sums).waitFor(result)))
  }

  it("starts every partition at the store's position, whatever the consumer group's offsets say", async () => {
    const stack = env()
    const first = await app(stack)
    await deposits(first, 8)
    await first.projection(Sums).ready()
    await first.close()

    const second = await app(stack, { projections: [] })
    await deposits(second, 8, 2, false)
    await second.close()
    // Offsets of the projection's group moved to the end of the log, as a tool or a mistake could:
    // a consumer that trusted them would skip the 8 deposits made while the projection was down.
    const admin = new Kafka({ brokers: stack.transportOptions().brokers!, logLevel: logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      const topic = `${stack.topicPrefix}contract-account.events`
      const ends = await admin.fetchTopicOffsets(topic)
      await admin.setOffsets({
        groupId: `${stack.topicPrefix}projection.kafka-sums.v1`,
        topic,
        partitions: ends.map((e) => ({ partition: e.partition, offset: e.offset })),
      })
    } finally {
      await admin.disconnect()
    }

    const third = await app(stack)
    await third.projection(Sums).ready()
    expect(await third.projection(Sums).get('sum')).toBe(8 + 16)
    const times = await third.projection(Sums).hash<number>('times').all()
    expect(Object.values(times)).toEqual(Array.from({ length: 16 }, () => 1))
  })

  it('lets the group rebalance while a partition waits on an event its handler keeps failing on', async () => {
    const stack = env()
    const one = await app(stack)
    const accounts = one.repository(ContractAccount)
    const id = `acc-${randomUUID()}`
    await accounts.save(new Open('ann', 0), { id })
    refused.add(13)
    const stuck = await accounts.update(id, new Deposit(13))
    await eventually(
      async () => (await one.projection(Sums).status()).lanes.some((l) => l.partition === partitionFor(id, 4) && l.state === 'failed'),
      'the lane to stop on the refused event',
      30_000,
    )
    // A second member joins: the first must give partitions up although one of its lanes is busy failing.
    const two = await app(stack)
    const held = async (esk: Esk): Promise<number> => (await esk.projection(Sums).status()).lanes.filter((l) => l.state !== undefined).length
    await eventually(async () => (await held(two)) > 0 && (await held(one)) + (await held(two)) === 4, 'the partitions to be split', 60_000)
    refused.delete(13)
    await two.projection(Sums).waitFor(stuck)
    await deposits(two, 4)
    await two.projection(Sums).ready()
    expect(await two.projection(Sums).get('sum')).toBe(13 + 4)
  })
})
