import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler } from '@esk/core'

// The aggregate the contract suite drives. Its names are prefixed so they never collide with an
// application's own types in a shared environment.

/** An account was opened. */
@Event('contract.Opened')
export class Opened {
  owner!: string
  initial!: number
  constructor(owner = '', initial = 0) {
    this.owner = owner
    this.initial = initial
  }
}

/** Money was deposited. */
@Event('contract.Deposited')
export class Deposited {
  amount!: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Money was withdrawn. */
@Event('contract.Withdrawn')
export class Withdrawn {
  amount!: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** A note was attached; its size is the caller's choice, so it can probe size limits. */
@Event('contract.Noted')
export class Noted {
  text!: string
  constructor(text = '') {
    this.text = text
  }
}

/** Opens an account; the owner is required. */
@Command<Open>('contract.Open', { validate: (c) => (c.owner ? undefined : 'owner is required') })
export class Open {
  owner!: string
  initial!: number
  constructor(owner = '', initial = 0) {
    this.owner = owner
    this.initial = initial
  }
}

/** Deposits a positive amount. */
@Command<Deposit>('contract.Deposit', {
  validate: (c) => (Number.isFinite(c.amount) && c.amount > 0 ? undefined : 'amount must be a positive number'),
})
export class Deposit {
  amount!: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Withdraws; rejected beyond the balance. */
@Command('contract.Withdraw')
export class Withdraw {
  amount!: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Deposits then withdraws in one command: two events from one command. */
@Command('contract.Shuffle')
export class Shuffle {
  amount!: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Attaches a note of any size. */
@Command('contract.Note')
export class Note {
  text!: string
  constructor(text = '') {
    this.text = text
  }
}

/** A command whose handler has a bug. */
@Command('contract.Explode')
export class Explode {}

/**
 * Deposits, but only once the test opens the named gate: holds a batch inside its handler, with
 * its snapshots loaded and nothing committed, while the test does something to the store.
 */
@Command('contract.Hold')
export class Hold {
  gate!: string
  amount!: number
  constructor(gate = '', amount = 0) {
    this.gate = gate
    this.amount = amount
  }
}

const gates = new Map<string, { entered: () => void; opened: Promise<void> }>()

/**
 * A gate for {@link Hold}: `entered` resolves once a handler waits at it, `open` lets it go on. A
 * gate no test made lets the handler through at once.
 */
export function holdGate(name: string): { entered: Promise<void>; open: () => void } {
  let open!: () => void
  let entered!: () => void
  const enteredPromise = new Promise<void>((resolve) => (entered = resolve))
  gates.set(name, { entered, opened: new Promise<void>((resolve) => (open = resolve)) })
  return { entered: enteredPromise, open }
}

/** A command no aggregate handles. */
@Command('contract.Unhandled')
export class Unhandled {}

/** The contract suite's aggregate, schema version 1. */
@Aggregate({ name: 'contract-account' })
export class ContractAccount {
  owner = ''
  balance = 0
  deposits = 0
  /** Every amount, in order: makes a wrongly ordered replay visible. */
  history: number[] = []
  /** Characters of notes attached. */
  notes = 0

  @CommandHandler(Open, { creates: true })
  open(c: Open): Opened {
    if (c.initial < 0) throw new CommandRejected('initial must be >= 0', { reason: 'NEGATIVE_INITIAL' })
    return new Opened(c.owner, c.initial)
  }

  @CommandHandler(Deposit)
  deposit(c: Deposit): Deposited {
    return new Deposited(c.amount)
  }

  @CommandHandler(Withdraw)
  withdraw(c: Withdraw): Withdrawn {
    if (c.amount > this.balance) {
      throw new CommandRejected(`balance ${this.balance} is below ${c.amount}`, { reason: 'INSUFFICIENT_FUNDS' })
    }
    return new Withdrawn(c.amount)
  }

  @CommandHandler(Shuffle)
  shuffle(c: Shuffle): object[] {
    return [new Deposited(c.amount), new Withdrawn(c.amount)]
  }

  @CommandHandler(Note)
  note(c: Note): Noted {
    return new Noted(c.text)
  }

  @CommandHandler(Hold)
  async hold(c: Hold): Promise<Deposited> {
    const gate = gates.get(c.gate)
    if (gate) {
      gate.entered()
      await gate.opened
    }
    return new Deposited(c.amount)
  }

  @CommandHandler(Explode)
  explode(): never {
    throw new TypeError('a bug in the handler')
  }

  @EventHandler(Opened)
  onOpened(e: Opened): void {
    this.owner = e.owner
    this.balance = e.initial
    this.history.push(e.initial)
  }

  @EventHandler(Deposited)
  onDeposited(e: Deposited): void {
    this.balance += e.amount
    this.deposits += 1
    this.history.push(e.amount)
  }

  @EventHandler(Withdrawn)
  onWithdrawn(e: Withdrawn): void {
    this.balance -= e.amount
    this.history.push(-e.amount)
  }

  @EventHandler(Noted)
  onNoted(e: Noted): void {
    this.notes += e.text.length
  }
}

/**
 * The same aggregate at schema version 2: it also tracks the largest deposit, which only a
 * replay of every event can compute for aggregates written under version 1.
 */
@Aggregate({ name: 'contract-account', schemaVersion: 2 })
export class ContractAccountV2 extends ContractAccount {
  largestDeposit = 0

  @CommandHandler(Open, { creates: true })
  override open(c: Open): Opened {
    return super.open(c)
  }

  @CommandHandler(Deposit)
  override deposit(c: Deposit): Deposited {
    return super.deposit(c)
  }

  @EventHandler(Opened)
  override onOpened(e: Opened): void {
    super.onOpened(e)
  }

  @EventHandler(Deposited)
  override onDeposited(e: Deposited): void {
    super.onDeposited(e)
    this.largestDeposit = Math.max(this.largestDeposit, e.amount)
  }

  @EventHandler(Withdrawn)
  override onWithdrawn(e: Withdrawn): void {
    super.onWithdrawn(e)
  }
}
