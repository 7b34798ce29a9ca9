import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler } from '@esk/core'
import { CommandType, EventType, Reason, validate } from './model.js'

/*
 * The fault suite's domain on esk: accounts with an overdraft limit. The invariant the checker
 * verifies after every event is `balance >= -overdraftLimit`. Type names and decisions are the
 * ones `model.ts` states independently; the unit tests hold the two to each other.
 */

/**
 * Called at the start of every command handler, so a processor process can stop or kill itself
 * inside a handler on the controller's request. Does nothing unless the process sets it.
 */
export const handlerHook: { inHandler?: () => void } = {}

/** An account was opened. */
@Event(EventType.Opened)
export class AccountOpened {
  constructor(
    public owner = '',
    public initialDeposit = 0,
    public overdraftLimit = 0,
  ) {}
}

/** Money was paid in. */
@Event(EventType.Deposited)
export class MoneyDeposited {
  constructor(public amount = 0) {}
}

/** Money was taken out. */
@Event(EventType.Withdrawn)
export class MoneyWithdrawn {
  constructor(public amount = 0) {}
}

/** The overdraft limit changed. */
@Event(EventType.LimitChanged)
export class OverdraftLimitChanged {
  constructor(public limit = 0) {}
}

/** Opens an account. */
@Command<OpenAccount>(CommandType.Open, { validate: (c) => validate({ type: CommandType.Open, payload: { ...c } }) })
export class OpenAccount {
  constructor(
    public owner = '',
    public initialDeposit = 0,
    public overdraftLimit = 0,
  ) {}
}

/** Pays a positive amount in. */
@Command<Deposit>(CommandType.Deposit, { validate: (c) => validate({ type: CommandType.Deposit, payload: { ...c } }) })
export class Deposit {
  constructor(public amount = 0) {}
}

/** Pays several amounts in: one event each, in one command. */
@Command<DepositMany>(CommandType.DepositMany, { validate: (c) => validate({ type: CommandType.DepositMany, payload: { ...c } }) })
export class DepositMany {
  constructor(public amounts: number[] = []) {}
}

/** Takes a positive amount out, down to minus the overdraft limit. */
@Command<Withdraw>(CommandType.Withdraw, { validate: (c) => validate({ type: CommandType.Withdraw, payload: { ...c } }) })
export class Withdraw {
  constructor(public amount = 0) {}
}

/** Changes the overdraft limit; refused if the balance is already below minus the new limit. */
@Command<ChangeOverdraftLimit>(CommandType.ChangeLimit, { validate: (c) => validate({ type: CommandType.ChangeLimit, payload: { ...c } }) })
export class ChangeOverdraftLimit {
  constructor(public limit = 0) {}
}

/**
 * The schema version processors run with: `FAULTS_SCHEMA_VERSION`, default 1, so a rolling
 * restart can bump it without another build.
 */
export const SCHEMA_VERSION = Number.parseInt(process.env.FAULTS_SCHEMA_VERSION ?? '1', 10) || 1

/** An account with an overdraft limit. */
@Aggregate({ name: 'account', schemaVersion: SCHEMA_VERSION })
export class Account {
  owner = ''
  balance = 0
  overdraftLimit = 0

  @CommandHandler(OpenAccount, { creates: true })
  open(c: OpenAccount): AccountOpened {
    handlerHook.inHandler?.()
    return new AccountOpened(c.owner, c.initialDeposit, c.overdraftLimit)
  }

  @CommandHandler(Deposit)
  deposit(c: Deposit): MoneyDeposited {
    handlerHook.inHandler?.()
    return new MoneyDeposited(c.amount)
  }

  @CommandHandler(DepositMany)
  depositMany(c: DepositMany): MoneyDeposited[] {
    handlerHook.inHandler?.()
    return c.amounts.map((amount) => new MoneyDeposited(amount))
  }

  @CommandHandler(Withdraw)
  withdraw(c: Withdraw): MoneyWithdrawn {
    handlerHook.inHandler?.()
    if (c.amount > this.balance + this.overdraftLimit) {
      throw new CommandRejected(`cannot withdraw ${c.amount}: ${this.balance + this.overdraftLimit} available`, {
        reason: Reason.InsufficientFunds,
      })
    }
    return new MoneyWithdrawn(c.amount)
  }

  @CommandHandler(ChangeOverdraftLimit)
  changeLimit(c: ChangeOverdraftLimit): OverdraftLimitChanged {
    handlerHook.inHandler?.()
    if (this.balance < -c.limit) {
      throw new CommandRejected(`balance ${this.balance} is below minus the new limit ${c.limit}`, { reason: Reason.LimitBelowDebt })
    }
    return new OverdraftLimitChanged(c.limit)
  }

  @EventHandler(AccountOpened)
  onOpened(e: AccountOpened): void {
    this.owner = e.owner
    this.balance = e.initialDeposit
    this.overdraftLimit = e.overdraftLimit
  }

  @EventHandler(MoneyDeposited)
  onDeposited(e: MoneyDeposited): void {
    this.balance += e.amount
  }

  @EventHandler(MoneyWithdrawn)
  onWithdrawn(e: MoneyWithdrawn): void {
    this.balance -= e.amount
  }

  @EventHandler(OverdraftLimitChanged)
  onLimitChanged(e: OverdraftLimitChanged): void {
    this.overdraftLimit = e.limit
  }
}

/** The command class of each persisted command type, for clients that build commands from payloads. */
export const commandClasses = {
  [CommandType.Open]: OpenAccount,
  [CommandType.Deposit]: Deposit,
  [CommandType.DepositMany]: DepositMany,
  [CommandType.Withdraw]: Withdraw,
  [CommandType.ChangeLimit]: ChangeOverdraftLimit,
} as const
