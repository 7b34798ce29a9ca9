import {
  Aggregate,
  Command,
  CommandHandler,
  Event,
  EventHandler,
  describeDifference,
  firstDifference,
  roundTrip,
  type Class,
  type RoundTripDifference,
} from '@esk/core'
import { AggregateRuntime } from '@esk/core/driver'
import { Transform, Type } from 'class-transformer'
import { describe, expect, it } from 'vitest'

// The round trip is the one esk uses: instanceToPlain + JSON.stringify to store, JSON.parse +
// plainToInstance with the declared class to replay. What does not come back equal is named.

class Address {
  city: string
  constructor(city = '') {
    this.city = city
  }
}

class Animal {
  name = ''
}

class Dog extends Animal {
  barks = true
}

/** The first difference of a round trip of `value` through `cls`, as `path: problem`. */
function problemOf<T extends object>(value: T, cls: Class<T> = value.constructor as Class<T>): string | undefined {
  const result = roundTrip(value, cls)
  return result.ok ? undefined : describeDifference(result.difference)
}

describe('roundTrip', () => {
  it('returns the stored JSON and an equal instance of the class for plain fields', () => {
    class Deposited {
      amount = 12.5
      currency = 'EUR'
      note: string | null = null
      tags = ['a', 'b']
      meta = { source: 'api', retries: 0 }
    }
    const result = roundTrip(new Deposited(), Deposited)
    expect(result.ok).toBe(true)
    if (!result.ok) return
    expect(result.encoded).toBe(
      '{"amount":12.5,"currency":"EUR","note":null,"tags":["a","b"],"meta":{"source":"api","retries":0}}',
    )
    expect(result.decoded).toBeInstanceOf(Deposited)
    expect(result.decoded).toEqual(new Deposited())
  })

  it('names a Date without @Type, and accepts it with @Type(() => Date)', () => {
    class Raw {
      occurredAt = new Date(Date.UTC(2024, 1, 29))
    }
    expect(problemOf(new Raw())).toBe('occurredAt: a Date became a string (declare @Type(() => Date))')

    class Typed {
      @Type(() => Date)
      occurredAt = new Date(Date.UTC(2024, 1, 29))
    }
    const result = roundTrip(new Typed(), Typed)
    expect(result.ok).toBe(true)
    expect(result.ok && result.decoded.occurredAt).toBeInstanceOf(Date)

    const invalid = new Typed()
    invalid.occurredAt = new Date('not a date')
    expect(problemOf(invalid)).toBe('occurredAt: a Date became null (an invalid Date: JSON writes it as null)')
  })

  it('names a nested class without @Type, a plain object where a class is declared, and a subclass', () => {
    class Untyped {
      address = new Address('Paris')
    }
    expect(problemOf(new Untyped())).toBe(
      'address: an instance of Address became a plain object (declare @Type(() => Address))',
    )

    class Typed {
      @Type(() => Address)
      address: Address = new Address('Paris')
    }
    expect(problemOf(new Typed())).toBeUndefined()
    const literal = new Typed()
    literal.address = { city: 'Paris' }
    expect(problemOf(literal)).toBe(
      'address: a plain object became an instance of Address (the field declares @Type(() => Address): store an instance of it)',
    )

    class Pet {
      @Type(() => Animal)
      pet: Animal = new Dog()
    }
    expect(problemOf(new Pet())).toBe(
      'pet: an instance of Dog became an instance of Animal (the field declares @Type(() => Animal); a subclass needs a discriminator)',
    )
  })

  it('accepts subclasses under a discriminator that is kept, and names the property otherwise', () => {
    const discriminator = {
      property: 'kind',
      subTypes: [
        { value: Dog, name: 'dog' },
        { value: Animal, name: 'animal' },
      ],
    }
    class Kept {
      @Type(() => Animal, { discriminator, keepDiscriminatorProperty: true })
      pets: Animal[] = [new Dog(), new Animal()]
    }
    const result = roundTrip(new Kept(), Kept)
    expect(result.ok).toBe(true)
    expect(result.ok && result.decoded.pets[0]).toBeInstanceOf(Dog)

    // class-transformer writes the property into the live instance, and drops it when reading.
    class Dropped {
      @Type(() => Animal, { discriminator })
      pets: Animal[] = [new Dog()]
    }
    expect(problemOf(new Dropped())).toBe(
      'pets[0].kind: "dog" became missing (JSON does not carry it back, and the class does not set it; ' +
        'a discriminator property needs @Type(..., { keepDiscriminatorProperty: true }))',
    )
  })

  it('names a Buffer without @Type, and accepts it with @Type(() => Buffer)', () => {
    class Raw {
      bytes = Buffer.from('hi')
    }
    expect(problemOf(new Raw())).toBe('bytes: an instance of Buffer became a plain object (declare @Type(() => Buffer))')
    class Typed {
      @Type(() => Buffer)
      bytes = Buffer.from('hi')
    }
    const result = roundTrip(new Typed(), Typed)
    expect(result.ok && result.decoded.bytes.toString()).toBe('hi')
  })

  it('names a Set, and accepts one rebuilt with @Transform', () => {
    class Raw {
      tags = new Set(['a', 'b'])
    }
    expect(problemOf(new Raw())).toBe(
      'tags: a Set became an array (JSON has no Set: keep an array, or declare ' +
        '@Transform(({ value }) => new Set(value), { toClassOnly: true }))',
    )

    class Rebuilt {
      @Transform(({ value }: { value: string[] }) => new Set(value), { toClassOnly: true })
      tags = new Set(['a', 'b'])
    }
    expect(problemOf(new Rebuilt())).toBeUndefined()
    const reordered = new Rebuilt()
    reordered.tags = new Set(['a', 'b', 'c'])
    expect(problemOf(reordered)).toBeUndefined()
  })

  it('names a Map without @Type, a non-string key, and a value that changed inside a Map', () => {
    class Raw {
      limits = new Map([['eur', 10]])
    }
    expect(problemOf(new Raw())).toBe(
      'limits: a Map became a plain object (declare @Type(() => Map); its keys must be strings)',
    )

    class Typed {
      @Type(() => Map)
      limits = new Map<unknown, unknown>([['eur', 10]])
    }
    expect(problemOf(new Typed())).toBeUndefined()
    const numbered = new Typed()
    numbered.limits = new Map([[1, 10]])
    expect(problemOf(numbered)).toBe(
      'limits: the key 1 became the string "1" (JSON keys are strings: use string keys)',
    )
    const dated = new Typed()
    dated.limits = new Map([['since', new Date(0)]])
    expect(problemOf(dated)).toBe('limits.get("since"): a Date became a string (declare @Type(() => Date))')
  })

  it('names NaN and Infinity, which JSON writes as null', () => {
    class Scored {
      score = NaN
      best = 1
    }
    expect(problemOf(new Scored())).toBe('score: NaN became null (JSON has no NaN or Infinity: store null, or a string)')
    const infinite = new Scored()
    infinite.score = 0
    infinite.best = -Infinity
    expect(problemOf(infinite)).toBe('best: -Infinity became null (JSON has no NaN or Infinity: store null, or a string)')
  })

  it('names a field left undefined whose class default differs, and a field the class adds', () => {
    class Counter {
      count: number | undefined = 5
      label = ''
    }
    const unset = new Counter()
    unset.count = undefined
    expect(problemOf(unset)).toBe('count: undefined became 5 (JSON drops undefined, so the class default applies)')

    const deleted = new Counter()
    delete (deleted as { count?: number }).count
    expect(problemOf(deleted)).toBe('count: a missing field became 5 (the class sets it when the JSON lacks it)')

    // A field holding undefined reads the same as a missing one: not a difference.
    class Optional {
      note?: string
    }
    const optional = new Optional()
    optional.note = undefined
    expect(problemOf(optional)).toBeUndefined()
  })

  it('names array items: undefined becomes null, an empty slot shortens the array', () => {
    class Listed {
      items: unknown[] = [1, 2]
    }
    const withUndefined = new Listed()
    withUndefined.items = [1, undefined, 3]
    expect(problemOf(withUndefined)).toBe('items[1]: undefined became null (JSON writes undefined in an array as null)')

    const nested = new Listed()
    nested.items = [{ at: 1 }, { at: new Date(0) }]
    expect(problemOf(nested)).toBe('items[1].at: a Date became a string (declare @Type(() => Date))')
  })

  it('names a bigint and a cycle, which JSON cannot carry, instead of throwing', () => {
    class Big {
      inner = { count: 10n }
    }
    expect(problemOf(new Big())).toBe(
      'inner.count: a bigint, which JSON cannot carry: store it as a string (or a number if it fits)',
    )

    class Node {
      child: { parent?: Node } = {}
    }
    const node = new Node()
    node.child.parent = node
    expect(problemOf(node)).toBe('child.parent: refers back to the value itself: a cycle, which JSON cannot carry')
  })

  it('names built-in classes JSON cannot carry, and quotes keys that are not identifiers', () => {
    class Patterned {
      'match rule' = /x+/g
    }
    expect(problemOf(new Patterned())).toBe(
      '["match rule"]: an instance of RegExp became a plain object (JSON cannot carry a RegExp: store a plain value)',
    )
  })

  it('accepts -0, which JSON writes as 0 (the two compare equal with ===)', () => {
    class Signed {
      zero = -0
    }
    expect(problemOf(new Signed())).toBeUndefined()
  })
})

describe('firstDifference', () => {
  it('is undefined for equal values and names the first differing field otherwise', () => {
    expect(firstDifference({ a: [1, { b: 'x' }] }, { a: [1, { b: 'x' }] })).toBeUndefined()
    expect(firstDifference({ a: [1, { b: 'x' }] }, { a: [1, { b: 'y' }] })).toEqual<RoundTripDifference>({
      path: 'a[1].b',
      problem: '"x" became "y"',
    })
    expect(firstDifference({ a: [1, 2, 3] }, { a: [1, 2] })).toEqual<RoundTripDifference>({
      path: 'a',
      problem: 'an array of 3 items became one of 2 (an empty slot in an array is dropped)',
    })
    expect(firstDifference(new Date(0), new Date(1))).toEqual<RoundTripDifference>({
      path: '',
      problem: 'the Date 1970-01-01T00:00:00.000Z became 1970-01-01T00:00:00.001Z',
    })
    expect(describeDifference({ path: '', problem: 'a Date became a string' })).toBe('a Date became a string')
  })

  it('stops at a bounded depth: a cycle on one side, or very deep nesting, ends with a difference', () => {
    type Chain = { next?: Chain }
    const deep = (levels: number): Chain => {
      const head: Chain = {}
      let at = head
      for (let i = 0; i < levels; i++) at = at.next = {}
      return head
    }
    const cyclic: Chain = {}
    cyclic.next = cyclic
    expect(firstDifference(cyclic, deep(2))).toEqual<RoundTripDifference>({
      path: 'next.next.next',
      problem: 'a plain object became missing (JSON does not carry it back, and the class does not set it)',
    })
    const difference = firstDifference(deep(150), deep(150))
    expect(difference?.problem).toContain('nested more than 100 levels deep')
    expect(firstDifference(deep(90), deep(90))).toBeUndefined()
  })
})

@Event('rt.Stamped')
class Stamped {
  at: Date
  constructor(at = new Date(0)) {
    this.at = at
  }
}

@Command('rt.Stamp')
class Stamp {}

@Aggregate({ name: 'rt-stamps' })
class Stamps {
  last: Date | undefined = undefined

  @CommandHandler(Stamp, { creates: true })
  stamp(): Stamped {
    return new Stamped(new Date(Date.UTC(2024, 0, 1)))
  }

  @EventHandler(Stamped)
  onStamped(e: Stamped): void {
    this.last = e.at
  }
}

describe('AggregateRuntime round trips', () => {
  const runtime = new AggregateRuntime(Stamps)
  const binding = runtime.bindingOf(new Stamp())

  it('refuses an event that does not survive, naming its type, the handler and the field', () => {
    const error = (() => {
      try {
        runtime.roundTripEvents([new Stamped(new Date(Date.UTC(2024, 0, 1)))], binding)
      } catch (e) {
        return e
      }
      throw new Error('expected roundTripEvents to throw')
    })()
    expect(error).toMatchObject({
      code: 'ESK_HANDLER_FAILED',
      details: { aggregate: 'rt-stamps', eventType: 'rt.Stamped', commandType: 'rt.Stamp', field: 'at' },
    })
    expect((error as Error).message).toBe(
      'event rt.Stamped does not survive serialisation: at: a Date became a string (declare @Type(() => Date)); ' +
        'replay applies the event decoded from the log, not the one handler rt-stamps.stamp returned, ' +
        'so the command is refused and nothing is recorded',
    )
  })

  it('refuses a state that does not survive its snapshot, naming the field', () => {
    const state = runtime.create()
    state.last = new Date(0)
    expect(() => runtime.roundTripState(state, binding)).toThrow(
      'the state of rt-stamps after rt.Stamp does not survive its snapshot format: ' +
        'last: a Date became a string (declare @Type(() => Date))',
    )
    state.last = undefined
    const checked = runtime.roundTripState(state, binding)
    expect(checked.state).toBeInstanceOf(Stamps)
    expect(checked.encoded).toBe(runtime.dehydrate(state))
  })
})
