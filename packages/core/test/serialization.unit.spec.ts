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
  /** Declared without @Type: kept as whatever JSON gives back. */
  rawAt: Date | undefined

  @CommandHandler(Register, { creates: true })
  register(c: Register): Registered {
    // A command handler sees a real Address, rebuilt from the command log.
    if (!(c.address instanceof Address)) throw new Error('the command address is not an Address')
    return new Registered(new Date(Date.UTC(2024, 1, 29, 12)), c.address)
  }

  @EventHandler(Registered)
  onRegistered(e: Registered): void {
    this.registeredAt = e.at
    this.rawAt = e.at
    this.addresses.push(e.address)
  }
}

describe('serialisation through a driver', () => {
  it('rebuilds Dates and nested classes declared with @Type, and only those', async () => {
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
      // Without @Type the same value comes back as its JSON form.
      expect(state.rawAt).toBe('2024-02-29T12:00:00.000Z')
      await app.close()
    }
  })
})
