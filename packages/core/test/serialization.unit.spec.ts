import { Aggregate, Command, CommandHandler, Event, EventHandler, createEsk } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { Type } from 'class-transformer'
import { describe, expect, it } from 'vitest'

// esk never reads `design:type` metadata (vitest's transform does not emit it): a field that is a
// Date or an instance of another class must say so with @Type(() => X), or it comes back as a
// string or a plain object after a restart.

class Address {
  street: string
  city: string
  constructor(street = '', city = '') {
    this.street = street
    this.city = city
  }

  label(): string {
    return `${this.street}, ${this.city}`
  }
}

@Event('ser.Registered')
class Registered {
  @Type(() => Date)
  at: Date
  @Type(() => Address)
  address: Address
  constructor(at = new Date(0), address = new Address()) {
    this.at = at
    this.address = address
  }
}

@Command('ser.Register')
class Register {
  @Type(() => Address)
  address: Address
  constructor(address = new Address()) {
    this.address = address
  }
}

@Aggregate({ name: 'ser-customer' })
class Customer {
  @Type(() => Date)
  registeredAt: Date | undefined
  @Type(() => Address)
  addresses: Address[] = []

  @CommandHandler(Register, { creates: true })
  register(c: Register): Registered {
    // A command handler sees a real Address, rebuilt from the command log.
    if (!(c.address instanceof Address)) throw new Error('the command address is not an Address')
    return new Registered(new Date(Date.UTC(2024, 1, 29, 12)), c.address)
  }

  @EventHandler(Registered)
  onRegistered(e: Registered): void {
    this.registeredAt = e.at
    this.addresses.push(e.address)
  }
}

describe('serialisation through a driver', () => {
  it('rebuilds Dates and nested classes declared with @Type', async () => {
    const backend = new MemoryBackend()
    const start = (rebuild: boolean) =>
      createEsk({ aggregates: [{ aggregate: Customer, partitions: 1 }], driver: memoryDriver({ backend }), rebuild })
    const first = await start(false)
    const { id } = await first.repository(Customer).save(new Register(new Address('1 Main St', 'Springfield')))
    await first.close()

    const stored = JSON.parse(backend.log('ser-customer', 0).events[0]!.payload) as unknown
    expect(stored).toEqual({ at: '2024-02-29T12:00:00.000Z', address: { street: '1 Main St', city: 'Springfield' } })

    for (const rebuild of [false, true]) {
      const app = await start(rebuild)
      const { state } = await app.repository(Customer).get(id)
      expect(state.registeredAt).toBeInstanceOf(Date)
      expect(state.registeredAt?.toISOString()).toBe('2024-02-29T12:00:00.000Z')
      expect(state.addresses[0]).toBeInstanceOf(Address)
      expect(state.addresses[0]?.label()).toBe('1 Main St, Springfield')
      await app.close()
    }
  })
})

// Live equals replay: a processor builds its state from the events as they come back from the
// log, and refuses a command whose events or resulting state would not come back equal.

@Event('live.Stamped')
class Stamped {
  /** No @Type: the log gives back an ISO string. */
  at: Date
  constructor(at = new Date(0)) {
    this.at = at
  }
}

@Event('live.Visited')
class Visited {
  @Type(() => Date)
  at: Date
  @Type(() => Address)
  address: Address
  constructor(at = new Date(0), address = new Address()) {
    this.at = at
    this.address = address
  }
}

@Event('live.Odd')
class Odd {
  /** Whatever a test puts here; none of these survive without a declaration. */
  value: unknown
  constructor(value: unknown = null) {
    this.value = value
  }
}

@Event('live.Limited')
class Limited {
  currency: string
  amount: number
  constructor(currency = '', amount = 0) {
    this.currency = currency
    this.amount = amount
  }
}

@Command('live.Open')
class Open {}

@Command('live.Stamp')
class Stamp {}

@Command('live.Visit')
class Visit {
  city: string
  constructor(city = '') {
    this.city = city
  }
}

@Command('live.SendOdd')
class SendOdd {
  what: string
  constructor(what = '') {
    this.what = what
  }
}

@Command('live.Limit')
class Limit {}

@Aggregate({ name: 'live-visitor' })
class Visitor {
  @Type(() => Date)
  lastVisit: Date | undefined = undefined
  @Type(() => Address)
  places: Address[] = []
  days: number[] = []

  @CommandHandler(Open, { creates: true })
  open(): Visited {
    return new Visited(new Date(Date.UTC(2024, 0, 1)), new Address('Home', 'Springfield'))
  }

  @CommandHandler(Stamp)
  stamp(): Stamped {
    return new Stamped(new Date(Date.UTC(2024, 0, 2)))
  }

  @CommandHandler(Visit)
  visit(c: Visit): Visited {
    const last = this.lastVisit ?? new Date(0)
    return new Visited(new Date(last.getTime() + 86_400_000), new Address(`${this.places.length} Road`, c.city))
  }

  @CommandHandler(SendOdd)
  sendOdd(c: SendOdd): Odd {
    const values: Record<string, unknown> = {
      map: new Map([['eur', 1]]),
      set: new Set(['a']),
      nan: NaN,
      nested: new Address('1 Main St', 'Springfield'),
    }
    return new Odd(values[c.what])
  }

  @EventHandler(Visited)
  onVisited(e: Visited): void {
    this.lastVisit = e.at
    this.places.push(e.address)
    this.days.push(e.at.getUTCDate())
  }

  @EventHandler(Stamped)
  onStamped(e: Stamped): void {
    // Works on the handler's Date; a replay of the decoded string would throw here.
    this.days.push(e.at.getUTCDate())
  }

  @EventHandler(Odd)
  onOdd(): void {}
}

@Aggregate({ name: 'live-budget' })
class Budget {
  /** A Map without @Type(() => Map): a snapshot gives back a plain object. */
  limits = new Map<string, number>()

  @CommandHandler(Limit, { creates: true })
  limit(): Limited {
    return new Limited('eur', 100)
  }

  @EventHandler(Limited)
  onLimited(e: Limited): void {
    this.limits.set(e.currency, e.amount)
  }
}

describe('live state equals replayed state', () => {
  const start = (backend: MemoryBackend, rebuild = false) =>
    createEsk({ aggregates: [{ aggregate: Visitor, partitions: 2 }], driver: memoryDriver({ backend }), rebuild })

  /** The rejection of a command that must be refused. */
  async function refusal(sent: Promise<unknown>): Promise<Error & { code: string; details: Record<string, unknown> }> {
    return sent.then(
      () => {
        throw new Error('expected the command to be refused')
      },
      (e: unknown) => e as Error & { code: string; details: Record<string, unknown> },
    )
  }

  it('keeps the state a replay of the same events produces, with @Type declared', async () => {
    const backend = new MemoryBackend()
    const app = await start(backend)
    const visitors = app.repository(Visitor)
    const ids = await Promise.all([1, 2, 3].map(async () => (await visitors.save(new Open())).id))
    // Sent together, several commands of one aggregate share a batch and its live instance.
    await Promise.all(ids.flatMap((id) => ['Paris', 'Oslo', 'Rome'].map((city) => visitors.update(id, new Visit(city)))))
    for (const id of ids) await visitors.update(id, new Visit('Lima'))
    const live = await Promise.all(ids.map((id) => visitors.get(id)))
    await app.close()

    const replayed = await start(backend, true)
    const again = await Promise.all(ids.map((id) => replayed.repository(Visitor).get(id)))
    await replayed.close()
    for (const [i, found] of again.entries()) {
      expect(found.version).toBe(5)
      expect(found.state).toEqual(live[i]!.state)
      expect(found.state.lastVisit).toBeInstanceOf(Date)
      expect(found.state.places.every((p) => p instanceof Address)).toBe(true)
      expect(found.state.days).toEqual([1, 2, 3, 4, 5])
    }
  })

  // Fails before the fix: the command was accepted (the handler's Date was applied), and every
  // later replay threw in onStamped, so the partition could not recover.
  it('refuses an event with a Date and no @Type, naming the event and the field, and records nothing', async () => {
    const backend = new MemoryBackend()
    const app = await start(backend)
    const visitors = app.repository(Visitor)
    const { id } = await visitors.save(new Open())
    const error = await refusal(visitors.update(id, new Stamp()))
    expect(error.code).toBe('ESK_HANDLER_FAILED')
    expect(error.message).toContain(
      'event live.Stamped does not survive serialisation: at: a Date became a string (declare @Type(() => Date))',
    )
    expect(error.details).toMatchObject({ eventType: 'live.Stamped', field: 'at', commandType: 'live.Stamp' })
    expect((await visitors.get(id)).version).toBe(1)
    await app.close()

    const replayed = await start(backend, true)
    expect((await replayed.repository(Visitor).get(id)).state.days).toEqual([1])
    await replayed.close()
  })

  // Fails before the fix: each of these was accepted, and a replay applied another value.
  it.each([
    ['map', 'value: a Map became a plain object (declare @Type(() => Map); its keys must be strings)'],
    ['set', 'value: a Set became an array (JSON has no Set'],
    ['nan', 'value: NaN became null (JSON has no NaN or Infinity'],
    ['nested', 'value: an instance of Address became a plain object (declare @Type(() => Address))'],
  ])('refuses an event carrying a %s without a declaration, naming the field', async (what, problem) => {
    const app = await start(new MemoryBackend())
    const visitors = app.repository(Visitor)
    const { id } = await visitors.save(new Open())
    const error = await refusal(visitors.update(id, new SendOdd(what)))
    expect(error.code).toBe('ESK_HANDLER_FAILED')
    expect(error.message).toContain(`event live.Odd does not survive serialisation: ${problem}`)
    expect(error.details).toMatchObject({ eventType: 'live.Odd', field: 'value' })
    expect((await visitors.get(id)).version).toBe(1)
    await app.close()
  })

  // Fails before the fix: accepted, and after a restart `limits` was a plain object, so the
  // next command's event handler met `this.limits.set is not a function`.
  it('refuses a command whose resulting state does not survive its snapshot, naming the field', async () => {
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [{ aggregate: Budget, partitions: 1 }], driver: memoryDriver({ backend }) })
    const error = await refusal(app.repository(Budget).save(new Limit()))
    expect(error.code).toBe('ESK_HANDLER_FAILED')
    expect(error.message).toContain(
      'the state of live-budget after live.Limit does not survive its snapshot format: ' +
        'limits: a Map became a plain object (declare @Type(() => Map); its keys must be strings)',
    )
    expect(error.details).toMatchObject({ commandType: 'live.Limit', field: 'limits' })
    expect(backend.log('live-budget', 0).events).toEqual([])
    await app.close()
  })

  it('refuses nothing once the Map is declared with @Type(() => Map), and replays to the same state', async () => {
    @Aggregate({ name: 'live-budget' })
    class DeclaredBudget {
      @Type(() => Map)
      limits = new Map<string, number>()

      @CommandHandler(Limit, { creates: true })
      limit(): Limited {
        return new Limited('eur', 100)
      }

      @EventHandler(Limited)
      onLimited(e: Limited): void {
        this.limits.set(e.currency, e.amount)
      }
    }
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [DeclaredBudget], driver: memoryDriver({ backend }) })
    const { id } = await app.repository(DeclaredBudget).save(new Limit())
    await app.close()
    const replayed = await createEsk({ aggregates: [DeclaredBudget], driver: memoryDriver({ backend }), rebuild: true })
    expect((await replayed.repository(DeclaredBudget).get(id)).state.limits).toEqual(new Map([['eur', 100]]))
    await replayed.close()
  })
})
