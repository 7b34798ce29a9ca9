/**
 * The aggregate every esk run of the suite drives, and what the baselines do in its place. Its
 * state stays the same size whatever the load (a balance and a count), so a hot aggregate costs
 * the same per command as a cold one, as it does in the baselines.
 */
import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler } from '@esk/core'

/** An account was opened. */
@Event('bench.Opened')
export class Opened {
  owner!: string
  constructor(owner = '') {
    this.owner = owner
  }
}

/** Money was deposited; `note` pads the event to the workload's event size. */
@Event('bench.Deposited')
export class Deposited {
  amount!: number
  note!: string
  constructor(amount = 0, note = '') {
    this.amount = amount
    this.note = note
  }
}

/** Opens an account. */
@Command('bench.Open')
export class Open {
  owner!: string
  constructor(owner = '') {
    this.owner = owner
  }
}

/** Deposits `amount`; the processor refuses a negative amount (the refused-commands workload). */
@Command('bench.Deposit')
export class Deposit {
  amount!: number
  note!: string
  constructor(amount = 0, note = '') {
    this.amount = amount
    this.note = note
  }
}

/** The suite's aggregate. */
@Aggregate({ name: 'bench-account' })
export class BenchAccount {
  owner = ''
  balance = 0
  deposits = 0

  @CommandHandler(Open, { creates: true })
  open(c: Open): Opened {
    return new Opened(c.owner)
  }

  @CommandHandler(Deposit)
  deposit(c: Deposit): Deposited {
    if (c.amount < 0) throw new CommandRejected('amount must not be negative', { reason: 'NEGATIVE' })
    return new Deposited(c.amount, c.note)
  }

  @EventHandler(Opened)
  onOpened(e: Opened): void {
    this.owner = e.owner
  }

  @EventHandler(Deposited)
  onDeposited(e: Deposited): void {
    this.balance += e.amount
    this.deposits += 1
  }
}

/** The aggregate type name, which is also the baselines' topic stem. */
export const AGGREGATE = 'bench-account'
