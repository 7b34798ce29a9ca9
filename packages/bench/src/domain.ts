/**
 * The aggregate every esk run of the suite drives, and what the baselines do in its place. Its
 * state stays the same size whatever the load (a balance and a count), so a hot aggregate costs
 * the same per command as a cold one, as it does in the baselines.
 */
import { Aggregate, Command, CommandHandler, CommandRejected, Event, EventHandler } from '@esk/core'
import { type EventToAppend, type StreamSpec } from '@esk/core/driver'
import { MemoryBackend, memoryDriver } from '@esk/memory'

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

/**
 * Writes event logs directly (recovery, projections): event `i` of a log spread round-robin over
 * `aggregates` aggregates, `bench.Opened` first for each, then `bench.Deposited`.
 */
export class EventSeries {
  private readonly versions = new Map<string, number>()

  constructor(private readonly aggregates: number) {}

  /** How many aggregates have events so far. */
  get size(): number {
    return this.versions.size
  }

  /** Event `i`, recorded as the outcome of command offset `commandPosition`. */
  event(i: number, commandPosition: number): EventToAppend {
    const aggregateId = `a${i % this.aggregates}`
    const version = (this.versions.get(aggregateId) ?? 0) + 1
    this.versions.set(aggregateId, version)
    return {
      aggregateId,
      type: version === 1 ? 'bench.Opened' : 'bench.Deposited',
      version,
      commandId: `c${i}`,
      commandPosition,
      payload: JSON.stringify(version === 1 ? { owner: 'bench' } : { amount: 1, note: '' }),
    }
  }
}

/**
 * An embedded driver's backend whose stream already holds these events, partition by partition
 * (`byPartition[p]` in log order), as if committed there: for stages that rebuild or project
 * without paying for writes.
 */
export async function memoryBackendWith(stream: StreamSpec, byPartition: ReadonlyArray<Iterable<EventToAppend>>): Promise<MemoryBackend> {
  const backend = new MemoryBackend()
  const setup = memoryDriver({ backend })
  await setup.transport.provision([stream])
  await setup.transport.close()
  byPartition.forEach((events, p) => {
    const log = backend.log(stream.aggregate, p)
    for (const e of events) log.events.push({ ...e, offset: log.events.length, timestamp: Date.now() })
  })
  return backend
}
