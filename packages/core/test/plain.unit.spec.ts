import 'reflect-metadata'
import { Exclude, Expose, Transform, Type, instanceToPlain, plainToInstance } from 'class-transformer'
import { decodeInstance, encodeInstance } from '../src/roundtrip.js'
import { describe, expect, it } from 'vitest'
import { asPlainJson, encodePlain, isPlainClass } from '../src/plain.js'

// The short cut past class-transformer must give exactly class-transformer's results, or live
// state and replayed state could differ between two versions of esk. These tests compare both
// ways on the shapes aggregates, commands and events have, and on random JSON.

class Line {
  sku = ''
  quantity = 0
}

class Order {
  id = ''
  total = 0
  paid = false
  note: string | null = null
  tags: string[] = []
  lines: Array<{ sku: string; quantity: number }> = []
  address: { city: string; zip?: string } = { city: '' }
  maybe?: number
  get label(): string {
    return `order ${this.id}`
  }
  describe(): string {
    return this.id
  }
}

class PriorityOrder extends Order {
  priority = 1
}

class WithReadOnly {
  value = 1
  get computed(): number {
    return this.value * 2
  }
  set writable(_: number) {}
}

class Typed {
  @Type(() => Date)
  at = new Date(0)
}

class TypedChild extends Typed {
  other = 1
}

class Exposed {
  @Expose({ name: 'n' })
  name = ''
}

@Exclude()
class ExcludedClass {
  @Expose()
  kept = 1
  dropped = 2
}

class Transformed {
  @Transform(({ value }) => String(value))
  value: unknown = 1
}

class WithToJson {
  a = 1
  toJSON(): unknown {
    return { b: 2 }
  }
}

function classTransformerText(value: object): string {
  return JSON.stringify(instanceToPlain(value))
}

/** Decodes with both, each result or the error it threw (both must throw alike). */
function both<T extends object>(cls: new () => T, json: string): { fast: T | Error; reference: T | Error } {
  const attempt = (decode: () => T): T | Error => {
    try {
      return decode()
    } catch (error) {
      return error as Error
    }
  }
  return {
    fast: attempt(() => decodeInstance(cls, JSON.parse(json) as unknown)),
    reference: attempt(() => plainToInstance(cls, JSON.parse(json) as unknown) as T),
  }
}

describe('the short cut past class-transformer', () => {
  it('is taken for classes without class-transformer metadata, and only for them', () => {
    expect(isPlainClass(Order)).toBe(true)
    expect(isPlainClass(PriorityOrder)).toBe(true)
    expect(isPlainClass(Line)).toBe(true)
    for (const cls of [Typed, TypedChild, Exposed, ExcludedClass, Transformed, WithToJson]) expect(isPlainClass(cls)).toBe(false)
  })

  it('encodes JSON-valued instances exactly as class-transformer does', () => {
    const order = new PriorityOrder()
    Object.assign(order, {
      id: 'o-1',
      total: 12.5,
      note: null,
      tags: ['a', 'b'],
      lines: [{ sku: 's', quantity: 2 }],
      address: { city: 'Graz', toString: 'kept when encoding' },
      maybe: undefined,
    })
    expect(encodePlain(order)).toBeDefined()
    expect(encodeInstance(order)).toBe(classTransformerText(order))
    // Embedded as it is in a larger value (a command in its envelope), it reads the same too.
    expect(asPlainJson(order)).toBe(order)
    expect(JSON.stringify({ payload: asPlainJson(order) })).toBe(`{"payload":${classTransformerText(order)}}`)
  })

  it('leaves values that are not JSON to class-transformer, with its result', () => {
    const values: Array<Record<string, unknown>> = [
      { when: new Date(5) },
      { map: new Map([['a', 1]]) },
      { set: new Set([1, 2]) },
      { nested: new Line() },
      { fn: () => 'called by class-transformer' },
      // eslint-disable-next-line no-sparse-arrays
      { sparse: [1, , 3] },
      { big: 1n },
      { withConstructorKey: JSON.parse('{"constructor": 1}') as unknown },
    ]
    for (const fields of values) {
      const order = Object.assign(new Order(), fields)
      expect(encodePlain(order), Object.keys(fields)[0]).toBeUndefined()
      expect(asPlainJson(order), Object.keys(fields)[0]).toBeUndefined()
      let reference: string | undefined
      try {
        reference = classTransformerText(order)
      } catch {
        reference = undefined
      }
      if (reference === undefined) expect(() => encodeInstance(order)).toThrow()
      else expect(encodeInstance(order)).toBe(reference)
    }
  })

  it('decodes exactly as plainToInstance: defaults, missing and extra fields, methods and read-only accessors kept', () => {
    const cases = [
      '{}',
      '{"id":"o-2","total":3,"paid":true,"tags":["x"],"lines":[{"sku":"q","quantity":1}],"address":{"city":"Linz"}}',
      '{"extra":{"deep":[1,{"a":null}]},"maybe":7}',
      '{"label":"not a getter value","describe":"not a method","priority":9}',
      '{"address":{"city":"W","toString":"x","valueOf":1,"hasOwnProperty":2,"normal":3}}',
      '{"__proto__":{"polluted":true},"constructor":"x","id":"safe"}',
    ]
    for (const json of cases) {
      for (const cls of [Order, PriorityOrder]) {
        const { fast, reference } = both(cls, json)
        expect(fast, json).toStrictEqual(reference)
        if (!(fast instanceof Error)) expect(Object.getPrototypeOf(fast)).toBe(cls.prototype)
      }
    }
    const { fast, reference } = both(WithReadOnly, '{"value":3,"computed":100,"writable":5}')
    expect(fast).toStrictEqual(reference)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('agrees with class-transformer on random JSON, both ways', () => {
    let seed = 42
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    const keys = ['a', 'b', 'id', 'total', 'toString', 'valueOf', 'constructor', '__proto__', 'label', 'describe', 'lines']
    const value = (depth: number): unknown => {
      const r = random()
      if (depth > 3 || r < 0.3) return [1, -0, 2.5, 'x', '', true, false, null][Math.floor(random() * 8)]
      if (r < 0.6) return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1))
      return fields(depth + 1, 4)
    }
    // Built from entries, so __proto__ is an own field as JSON.parse makes it, not a prototype.
    // A nested field named constructor makes class-transformer throw (see the test below).
    const key = (depth: number): string => {
      const k = keys[Math.floor(random() * keys.length)]!
      return depth > 0 && k === 'constructor' ? 'c' : k
    }
    const fields = (depth: number, most: number): Record<string, unknown> =>
      Object.fromEntries(Array.from({ length: Math.floor(random() * most) }, () => [key(depth), value(depth)]))
    let decoded = 0
    for (let i = 0; i < 500; i++) {
      const json = JSON.stringify(fields(0, 5))
      for (const cls of [Order, PriorityOrder]) {
        const { fast, reference } = both(cls, json)
        expect(fast, json).toStrictEqual(reference)
        if (fast instanceof Error || reference instanceof Error) continue
        decoded += 1
        expect(encodeInstance(fast), json).toBe(classTransformerText(reference))
      }
    }
    expect(decoded).toBeGreaterThan(500)
  })

  it('drops a nested field named constructor, where class-transformer throws', () => {
    const { fast, reference } = both(Order, '{"address":{"city":"x","constructor":[]}}')
    expect(reference).toBeInstanceOf(Error)
    expect(fast).toMatchObject({ address: { city: 'x' } })
    expect(Object.keys((fast as Order).address)).toEqual(['city'])
  })
})
