import { projectionFixture } from '@esk/testing'
import { describe, expect, it } from 'vitest'
import { Account, AccountOpened, MoneyDeposited, MoneyWithdrawn } from '../src/domain.js'
import { AccountsByOwner, DailyTotals, OwnerLookup, totalsOf } from '../src/read-models.js'

const may1 = Date.parse('2024-05-01T09:00:00Z')
const may2 = Date.parse('2024-05-02T09:00:00Z')

describe('bank read models', () => {
  it('lists accounts by owner with their balances', async () => {
    await projectionFixture(AccountsByOwner, { aggregates: [Account], partitions: 4 })
      .given([
        { event: new AccountOpened('Ada', 100), aggregateId: 'a1', timestamp: may1 },
        { event: new AccountOpened('Ada', 0), aggregateId: 'a2', timestamp: may2 },
        { event: new AccountOpened('Bob', 20, 50), aggregateId: 'b1', timestamp: may1 },
        { event: new MoneyDeposited(50), aggregateId: 'a1' },
        { event: new MoneyWithdrawn(80), aggregateId: 'b1' },
      ])
      .then({
        hashes: { balances: { a1: 150, a2: 0, b1: -60 } },
        sortedSets: { 'owner:Ada': [['a1', may1], ['a2', may2]], 'owner:Bob': [['b1', may1]] },
      })
  })

  it('totals the money moved per day, over every account', async () => {
    const { view } = await projectionFixture(DailyTotals, { aggregates: [Account], partitions: 4 })
      .given([
        { event: new AccountOpened('Ada', 100), aggregateId: 'a1', timestamp: may1 },
        { event: new MoneyDeposited(50), aggregateId: 'a1', timestamp: may1 + 1_000 },
        { event: new AccountOpened('Bob', 20), aggregateId: 'b1', timestamp: may2 },
        { event: new MoneyWithdrawn(5), aggregateId: 'b1', timestamp: may2 + 1_000 },
      ])
      .then({
        hashes: { 'day:2024-05-01': { in: 150 }, 'day:2024-05-02': { in: 20, out: 5 } },
        sortedSets: { days: [['2024-05-01', Date.parse('2024-05-01')], ['2024-05-02', Date.parse('2024-05-02')]] },
      })
    expect(await totalsOf(view)).toEqual({ in: 170, out: 5 })
  })

  it('looks account ids up by owner', async () => {
    const { view } = await projectionFixture(OwnerLookup, { aggregates: [Account] })
      .given([
        { event: new AccountOpened('Ada'), aggregateId: 'a1' },
        { event: new AccountOpened('Ada'), aggregateId: 'a2' },
      ])
      .run()
    expect((await view.sortedSet('Ada').range()).map((m) => m.member)).toEqual(['a1', 'a2'])
  })
})
