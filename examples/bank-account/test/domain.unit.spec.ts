import { given, rejected } from '@esk/testing'
import { describe, expect, it } from 'vitest'
import {
  Account,
  AccountOpened,
  Deposit,
  MoneyDeposited,
  MoneyWithdrawn,
  OpenAccount,
  Withdraw,
} from '../src/domain.js'

describe('Account', () => {
  describe('opening', () => {
    it('records who opened it, the first deposit and the overdraft limit', async () => {
      const result = await given(Account)
        .when(new OpenAccount('Ada', 100, 50))
        .then([new AccountOpened('Ada', 100, 50)])
      expect(result.state).toMatchObject({ owner: 'Ada', balance: 100, overdraftLimit: 50 })
    })

    it('trims the owner name', async () => {
      await given(Account).when(new OpenAccount('  Ada ')).then([new AccountOpened('Ada', 0, 0)])
    })

    it('requires an owner and non-negative whole amounts, listing every problem', async () => {
      const result = await given(Account)
        .when(new OpenAccount('', -1, 0.5))
        .then(rejected('ESK_INVALID_COMMAND'))
      expect(result.error?.details.problems).toEqual([
        'owner is required',
        'initialDeposit must be a whole number >= 0',
        'overdraftLimit must be a whole number >= 0',
      ])
    })
  })

  describe('deposits', () => {
    it('adds to the balance', async () => {
      const result = await given(Account, [new AccountOpened('Ada', 100, 0)])
        .when(new Deposit(25))
        .then([new MoneyDeposited(25)])
      expect(result.state.balance).toBe(125)
    })

    it.each([0, -5, 2.5, Number.NaN])('refuses an amount of %s as invalid', async (amount) => {
      const result = await given(Account, [new AccountOpened('Ada', 100, 0)])
        .when(new Deposit(amount))
        .then(rejected('ESK_INVALID_COMMAND'))
      expect(result.error?.details.problems).toEqual(['amount must be a whole number > 0'])
      expect(result.state.balance).toBe(100)
    })
  })

  describe('withdrawals', () => {
    it('may take the balance down to minus the overdraft limit', async () => {
      const result = await given(Account, [new AccountOpened('Bob', 20, 50), new MoneyDeposited(30)])
        .when(new Withdraw(100))
        .then([new MoneyWithdrawn(100)])
      expect(result.state.balance).toBe(-50)
    })

    it('refuses to go beyond the overdraft limit with INSUFFICIENT_FUNDS, recording nothing', async () => {
      const result = await given(Account, [new AccountOpened('Bob', 20, 50), new MoneyWithdrawn(60)])
        .when(new Withdraw(11))
        .then(rejected('ESK_COMMAND_REJECTED', 'INSUFFICIENT_FUNDS'))
      expect(result.events).toEqual([])
      expect(result.state.balance).toBe(-40)
      expect(result.error?.message).toBe('cannot withdraw 11: balance -40 with overdraft limit 50 leaves 10 available')
      expect(result.error?.details).toMatchObject({ balance: -40, overdraftLimit: 50, amount: 11 })
    })

    it('refuses any overdraft on an account opened without a limit', async () => {
      await given(Account, [new AccountOpened('Ada', 10, 0)])
        .when(new Withdraw(11))
        .then(rejected('ESK_COMMAND_REJECTED', 'INSUFFICIENT_FUNDS'))
    })

    it('refuses a negative amount as invalid rather than as a deposit in disguise', async () => {
      await given(Account, [new AccountOpened('Ada', 10, 0)]).when(new Withdraw(-10)).then(rejected('ESK_INVALID_COMMAND'))
    })
  })

  it('folds a history into a balance', () => {
    const state = given(Account, [
      new AccountOpened('Ada', 100, 0),
      new MoneyDeposited(50),
      new MoneyWithdrawn(30),
      new MoneyDeposited(5),
    ]).state()
    expect(state).toBeInstanceOf(Account)
    expect(state).toMatchObject({ owner: 'Ada', balance: 125, overdraftLimit: 0 })
  })
})
