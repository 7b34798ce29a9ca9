import { describe, expect, it } from 'vitest'
import { seededRandom } from '@esk/testing'
import { FifoMap, LruMap, RecentMap } from '../src/recent.js'

describe('RecentMap', () => {
  it('remembers at least the last capacity keys set, a key set on every call included, and at most twice as many', () => {
    const map = new RecentMap<string, number>(100)
    for (let i = 0; i < 1_000; i++) {
      map.set(`a-${i}`, i)
      map.set('hot', i)
      for (let back = 0; back < Math.min(i, 49); back++) expect(map.get(`a-${i - back}`)).toBe(i - back)
      expect(map.get('hot')).toBe(i)
      expect(map.size).toBeLessThanOrEqual(200)
    }
    // Set long ago, with more than twice the capacity of other keys since.
    expect(map.get('a-0')).toBeUndefined()
  })

  it('gives the newest value of a key set in both generations', () => {
    const map = new RecentMap<string, number>(2)
    map.set('a', 1)
    map.set('b', 1)
    map.set('a', 2)
    expect(map.get('a')).toBe(2)
    expect(map.size).toBe(2)
  })

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new RecentMap(0)).toThrow(RangeError)
    expect(() => new RecentMap(1.5)).toThrow(RangeError)
  })
})

describe('FifoMap', () => {
  it('holds what a Redis hash beside a list of its keys holds: first value wins, oldest dropped first', () => {
    const next = seededRandom(7)
    const map = new FifoMap<number, number>()
    // The reference: [key, value] pairs in order of first addition, trimmed to the capacity.
    let model: Array<[number, number]> = []
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(next() * 200)
      const added = map.add(key, step)
      expect(added).toBe(!model.some(([k]) => k === key))
      if (added) model.push([key, step])
      if (step % 7 === 0) {
        map.trim(50)
        model = model.slice(Math.max(0, model.length - 50))
      }
      if (step % 97 === 0) {
        for (let k = 0; k < 200; k++) expect(map.get(k)).toBe(model.find(([mk]) => mk === k)?.[1])
        expect(map.keys()).toEqual(model.map(([k]) => k))
        expect(map.size).toBe(model.length)
      }
    }
  })

  it('holds nothing once trimmed to 0 or cleared', () => {
    const map = new FifoMap<string, number>()
    map.add('a', 1)
    map.add('b', 2)
    map.trim(0)
    expect([map.has('a'), map.size, map.keys()]).toEqual([false, 0, []])
    map.add('c', 3)
    map.clear()
    expect(map.keys()).toEqual([])
    map.add('c', 4)
    expect(map.get('c')).toBe(4)
  })
})

describe('LruMap', () => {
  it('keeps the most recently set keys when trimmed, in the order a Map moved on every use keeps them', () => {
    const next = seededRandom(11)
    const lru = new LruMap<number, number>()
    // The reference: a Map in which a use deletes the key and sets it again at the end.
    const model = new Map<number, number | undefined>()
    for (let step = 0; step < 20_000; step++) {
      const key = Math.floor(next() * 300)
      const roll = next()
      if (roll < 0.5) {
        lru.set(key, step)
        model.delete(key)
        model.set(key, step)
      } else if (roll < 0.7) {
        expect(lru.take(key)).toBe(model.get(key))
        // Taken out: still in its place, empty, until set again or trimmed.
        if (model.has(key)) model.set(key, undefined)
      } else if (roll < 0.9) {
        expect(lru.get(key)).toBe(model.get(key))
      } else {
        lru.trim(100)
        for (const k of model.keys()) {
          if (model.size <= 100) break
          model.delete(k)
        }
      }
      if (step % 101 === 0) {
        expect([...lru.keys()]).toEqual([...model.keys()])
        expect(lru.size).toBe(model.size)
      }
    }
  })

  it('drops the least recently used first, and nothing once cleared', () => {
    const lru = new LruMap<string, number>()
    lru.set('a', 1)
    lru.set('b', 2)
    lru.set('a', 3)
    lru.set('c', 4)
    lru.trim(2)
    expect([...lru.keys()]).toEqual(['a', 'c'])
    expect(lru.get('b')).toBeUndefined()
    lru.clear()
    expect(lru.size).toBe(0)
    expect([...lru.keys()]).toEqual([])
    lru.set('d', 5)
    expect([...lru.keys()]).toEqual(['d'])
  })
})
