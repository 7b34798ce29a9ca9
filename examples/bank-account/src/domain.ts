import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler } from '@esk/core'

// Amounts are whole numbers of the currency's smallest unit (cents), so balances never carry
// floating-point error. Every class has a constructor with defaults: the serializer builds
// instances with `new X()` and then assigns the stored fields.

/** The application's own reason codes, carried by `CommandRejected.reason`. */
export const Reason = {
  /** The withdrawal would take the balance below minus the overdraft limit. */
  InsufficientFunds: 'INSUFFICIENT_FUNDS',
} as const

/** An account was opened. */
@Event('bank.AccountOpened')
export class AccountOpened {
  owner: string
  initialDeposit: number
  overdraftLimit: number

  constructor(owner = '', initialDeposit = 0, overdraftLimit = 0) {
    this.owner = owner
    this.initialDeposit = initialDeposit
    this.overdraftLimit = overdraftLimit
  }
}

/** Money was paid into an account. */
@Event('bank.MoneyDeposited')
export class MoneyDeposited {
  amount: number

  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Money was taken out of an account. */
@Event('bank.MoneyWithdrawn')
export class MoneyWithdrawn {
  amount: number

  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Opens an account for an owner, with an optional first deposit and overdraft limit. */
@Command<OpenAccount>('bank.OpenAccount', {
  validate: (c) => {
    const problems: string[] = []
    if (typeof c.owner !== 'string' || c.owner.trim() === '') problems.push('owner is required')
    if (!isWholeAmount(c.initialDeposit, 0)) problems.push('initialDeposit must be a whole number >= 0')
    if (!isWholeAmount(c.overdraftLimit, 0)) problems.push('overdraftLimit must be a whole number >= 0')
    return problems
  },
})
export class OpenAccount {
  owner: string
  initialDeposit: number
  overdraftLimit: number

  constructor(owner = '', initialDeposit = 0, overdraftLimit = 0) {
    this.owner = owner
    this.initialDeposit = initialDeposit
    this.overdraftLimit = overdraftLimit
  }
}

/** Pays a positive amount into an account. */
@Command<Deposit>('bank.Deposit', { validate: (c) => positiveAmount(c.amount) })
export class Deposit {
  amount: number

  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Takes a positive amount out of an account, down to minus its overdraft limit. */
@Command<Withdraw>('bank.Withdraw', { validate: (c) => positiveAmount(c.amount) })
export class Withdraw {
  amount: number

  constructor(amount = 0) {
    this.amount = amount
  }
}

/**
 * A bank account. Command handlers decide against the current state and return events; only the
 * event handlers change the fields, so replaying the events always rebuilds the same account.
 */
@Aggregate({ name: 'account' })
export class Account {
  owner = ''
  balance = 0
  overdraftLimit = 0

  @CommandHandler(OpenAccount, { creates: true })
  open(command: OpenAccount): AccountOpened {
    return new AccountOpened(command.owner.trim(), command.initialDeposit, command.overdraftLimit)
  }

  @CommandHandler(Deposit)
  deposit(command: Deposit): MoneyDeposited {
    return new MoneyDeposited(command.amount)
  }

  @CommandHandler(Withdraw)
  withdraw(command: Withdraw): MoneyWithdrawn {
    const available = this.balance + this.overdraftLimit
    if (command.amount > available) {
      throw new CommandRejected(
        `cannot withdraw ${command.amount}: balance ${this.balance} with overdraft limit ${this.overdraftLimit} ` +
          `leaves ${available} available`,
        {
          reason: Reason.InsufficientFunds,
          details: { balance: this.balance, overdraftLimit: this.overdraftLimit, amount: command.amount },
        },
      )
    }
    return new MoneyWithdrawn(command.amount)
  }

  @EventHandler(AccountOpened)
  onOpened(event: AccountOpened): void {
    this.owner = event.owner
    this.balance = event.initialDeposit
    this.overdraftLimit = event.overdraftLimit
  }

  @EventHandler(MoneyDeposited)
  onDeposited(event: MoneyDeposited): void {
    this.balance += event.amount
  }

  @EventHandler(MoneyWithdrawn)
  onWithdrawn(event: MoneyWithdrawn): void {
    this.balance -= event.amount
  }
}

function positiveAmount(amount: unknown): string | undefined {
  return isWholeAmount(amount, 1) ? undefined : 'amount must be a whole number > 0'
}

function isWholeAmount(value: unknown, min: number): boolean {
  return Number.isSafeInteger(value) && (value as number) >= min
}
