import { Aggregate, Command, CommandHandler, Event, EventHandler } from '@esk/core'
import { AggregateRuntime } from '@esk/core/driver'
import { Type } from 'class-transformer'
import { describe, expect, it } from 'vitest'

// Anyone who can write to a topic can send these: decoding must never touch a prototype or
// instantiate anything but the declared classes.
class Address {
  city = ''
}

@Event('wire.Moved')
class Moved {
  @Type(() => Address)
  to = new Address()
}

@Command('wire.Move')
class Move {
  @Type(() => Address)
  to = new Address()
}

@Aggregate({ name: 'wire-person' })
class Person {
  @Type(() => Address)
  home = new Address()

  @CommandHandler(Move, { creates: true })
  move(c: Move): Moved {
    return Object.assign(new Moved(), { to: c.to })
  }

  @EventHandler(Moved)
  onMoved(e: Moved): void {
    this.home = e.to
  }
}

const hostile = JSON.stringify({
  __proto__: { polluted: true, city: 'from the prototype' },
  constructor: { prototype: { polluted: true } },
  prototype: { polluted: true },
  to: { city: 'Oslo', __proto__: { polluted: true }, constructor: { name: 'Evil' } },
})

describe('decoding records from the wire', () => {
  const runtime = new AggregateRuntime(Person)

  it('never pollutes a prototype or instantiates an undeclared class', () => {
    const { command } = runtime.decodeCommand('wire.Move', JSON.parse(hostile))
    const event = runtime.decodeEvent({ type: 'wire.Moved', payload: hostile, offset: 0, aggregateId: 'p' }) as Moved
    const state = runtime.hydrate(JSON.stringify({ home: JSON.parse(hostile).to }))
    for (const value of [command, event, state]) {
      expect(Object.getPrototypeOf(value)).not.toHaveProperty('polluted')
    }
    expect(Object.getPrototypeOf(command)).toBe(Move.prototype)
    expect(Object.getPrototypeOf(event)).toBe(Moved.prototype)
    expect(Object.getPrototypeOf(state)).toBe(Person.prototype)
    expect(Object.getPrototypeOf((command as Move).to)).toBe(Address.prototype)
    expect(Object.getPrototypeOf(event.to)).toBe(Address.prototype)
    expect(event.to.city).toBe('Oslo')
    expect((event.to.constructor as { name: string }).name).toBe('Address')
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined()
  })
})
