import { describe, expect, it } from 'vitest'
import { seededRandom } from '@esk/testing'
import { Zipf } from '../src/zipf.js'
import { CommandSource } from '../src/workload.js'

describe('Zipf', () => {
  it('has probabilities proportional to 1 / rank^s that sum to 1', () => {
    const zipf = new Zipf(100, 1, seededRandom(1))
    const total = Array.from({ length: 100 }, (_, r) => zipf.probability(r)).reduce((a, b) => a + b, 0)
    expect(total).toBeCloseTo(1, 10)
    expect(zipf.probability(0) / zipf.probability(1)).toBeCloseTo(2, 10)
    expect(zipf.probability(0) / zipf.probability(9)).toBeCloseTo(10, 10)
  })

  it('samples ranks with those frequencies', () => {
    const zipf = new Zipf(1000, 0.99, seededRandom(7))
    const counts = new Map<number, number>()
    const samples = 200_000
    let outside = 0
    for (let i = 0; i < samples; i++) {
      const rank = zipf.next()
      if (!(rank >= 0 && rank < 1000)) outside += 1
      counts.set(rank, (counts.get(rank) ?? 0) + 1)
    }
    expect(outside).toBe(0)
    for (const rank of [0, 1, 10]) {
      expect((counts.get(rank) ?? 0) / samples).toBeCloseTo(zipf.probability(rank), 2)
    }
  })

  it('is uniform with exponent 0 and refuses an empty range', () => {
    const zipf = new Zipf(4, 0, seededRandom(3))
    for (let r = 0; r < 4; r++) expect(zipf.probability(r)).toBeCloseTo(0.25, 12)
    expect(() => new Zipf(0, 1, seededRandom(1))).toThrow(RangeError)
  })
})

describe('CommandSource', () => {
  it('refuses about the asked share, pads within the range, and creates new ids when asked', () => {
    const source = new CommandSource({ name: 't', keys: 'uniform', aggregates: 50, refusedFraction: 0.05, eventBytes: [1024, 2048] }, 9, 'x')
    const commands = Array.from({ length: 20_000 }, () => source.next())
    const refused = commands.filter((c) => c.amount < 0).length / commands.length
    expect(refused).toBeGreaterThan(0.04)
    expect(refused).toBeLessThan(0.06)
    expect(commands.every((c) => c.note.length >= 1024 && c.note.length <= 2048 && /^a\d+$/.test(c.id))).toBe(true)
    expect(new Set(commands.map((c) => c.id)).size).toBe(50)
    const creating = new CommandSource({ name: 'c', keys: 'new', aggregates: 1 }, 1, 'run')
    const ids = Array.from({ length: 100 }, () => creating.next())
    expect(ids.every((c) => c.kind === 'create')).toBe(true)
    expect(new Set(ids.map((c) => c.id)).size).toBe(100)
    const hot = new CommandSource({ name: 'h', keys: 'hot', aggregates: 100 }, 1, '')
    expect(new Set(Array.from({ length: 100 }, () => hot.next().id))).toEqual(new Set(['a0']))
  })
})
