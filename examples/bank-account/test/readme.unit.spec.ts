import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler, createEsk } from '@esk/core'
import { expect, it } from 'vitest'

// The README's first code block, as it stands there: if this test changes, change the README.

@Event('bank.AccountOpened') class AccountOpened { owner = ''; initial = 0 }
@Event('bank.MoneyDeposited') class MoneyDeposited { amount = 0 }
@Command('bank.OpenAccount') class OpenAccount { owner = ''; initial = 0 }
@Command<Deposit>('bank.Deposit', { validate: (c) => (c.amount > 0 ? undefined : 'amount must be > 0') })
class Deposit { amount = 0 }

@Aggregate({ name: 'account' })
class Account {
  balance = 0

  @CommandHandler(OpenAccount, { creates: true })
  open(c: OpenAccount) {
    if (c.initial < 0) throw new CommandRejected('initial must be >= 0', { reason: 'NEGATIVE_INITIAL' })
    return Object.assign(new AccountOpened(), c)
  }

  @CommandHandler(Deposit)
  deposit(c: Deposit) {
    return Object.assign(new MoneyDeposited(), { amount: c.amount })
  }

  @EventHandler(AccountOpened) onOpened(e: AccountOpened) { this.balance = e.initial }
  @EventHandler(MoneyDeposited) onDeposited(e: MoneyDeposited) { this.balance += e.amount }
}

it('runs the README example', async () => {
  const app = await createEsk({ aggregates: [Account] })               // embedded driver by default
  const accounts = app.repository(Account)
  const { id, version } = await accounts.save(Object.assign(new OpenAccount(), { owner: 'ada', initial: 10 }))
  await accounts.update(id, Object.assign(new Deposit(), { amount: 5 }), { expectedVersion: version })
  const found = await accounts.find(id, { atLeastVersion: 2 })         // { id, version: 2, state: Account { balance: 15 } }
  await app.close()

  expect(found).toMatchObject({ id, version: 2, state: { balance: 15 } })
  expect(found?.state).toBeInstanceOf(Account)
})
