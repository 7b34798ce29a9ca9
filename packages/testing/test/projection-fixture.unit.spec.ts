import { On, Projection, defineProjection, on, type EventMeta, type ViewStore } from '@esk/core'
import { FixtureMismatch, projectionFixture } from '@esk/testing'
import { contractModel } from '@esk/testing/contract'
import { describe, expect, it } from 'vitest'

const { ContractAccount, Opened, Deposited, Withdrawn } = contractModel

@Projection({ name: 'balances' })
class Balances {
  @On(Opened)
  opened(e: InstanceType<typeof Opened>, meta: EventMeta, store: ViewStore): void {
    store.hash('balance').set(meta.aggregateId, e.initial)
    store.sortedSet(`owner:${e.owner}`).add(meta.aggregateId, meta.version)
  }

  @On(Deposited)
  deposited(e: InstanceType<typeof Deposited>, meta: EventMeta, store: ViewStore): void {
    store.hash('balance').incr(meta.aggregateId, e.amount)
    store.incr(`day:${new Date(meta.timestamp!).toISOString().slice(0, 10)}`, e.amount)
  }
}

describe('projection fixture', () => {
  it('builds the view from given events and compares it whole', async () => {
    const result = await projectionFixture(Balances, { aggregates: [ContractAccount], partitions: 3 })
      .given([
        { event: new Opened('ada', 10), aggregateId: 'a' },
        { event: new Opened('ada', 0), aggregateId: 'b' },
        { event: new Deposited(5), aggregateId: 'a', timestamp: new Date('2024-05-01T10:00:00Z') },
        { event: new Deposited(7), aggregateId: 'b', timestamp: Date.parse('2024-05-01T23:59:59Z') },
        { event: new Deposited(1), aggregateId: 'b', timestamp: Date.parse('2024-05-02T00:00:00Z') },
      ])
      .then({
        values: { 'day:2024-05-01': 12, 'day:2024-05-02': 1 },
        hashes: { balance: { a: 15, b: 8 } },
        sortedSets: { 'owner:ada': [['a', 1], ['b', 1]] },
      })
    expect(await result.view.hash('balance').get('b')).toBe(8)
  })

  it('fails with the difference when the view is not the expected one', async () => {
    const step = projectionFixture(Balances, { aggregates: [ContractAccount] }).given([new Opened('ada', 10)])
    await expect(step.then({ hashes: { balance: { 'id-1': 11 } } })).rejects.toThrow(FixtureMismatch)
    // A section left out must be empty.
    await expect(step.then({ hashes: { balance: { 'id-1': 10 } } })).rejects.toThrow(/sortedSets/)
  })

  it("fails with the handler's error when it keeps failing, and reports parked events", async () => {
    const strict = defineProjection({
      name: 'strict',
      handlers: [on(Withdrawn, () => {
        throw new Error('withdrawals are not expected here')
      })],
    })
    await expect(projectionFixture(strict, { aggregates: [ContractAccount] }).given([new Withdrawn(1)]).run()).rejects.toThrow(
      /stopped on an event: .*withdrawals are not expected here/,
    )
    const lenient = defineProjection({ ...strict.options, name: 'lenient', onFailure: 'park', handlers: strict.handlers })
    const { deadLetters } = await projectionFixture(lenient, { aggregates: [ContractAccount] }).given([new Withdrawn(1)]).run()
    expect(deadLetters).toMatchObject([{ type: 'contract.Withdrawn', aggregateId: 'id-1', version: 1, error: { message: 'withdrawals are not expected here' } }])
  })
})
