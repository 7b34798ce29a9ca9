import { describe, expect, it } from 'vitest'
import { seededRandom } from '../src/random.js'

describe('seededRandom', () => {
  it('repeats for a seed, differs between seeds, and stays in [0, 1)', () => {
    const a = seededRandom(42)
    const b = seededRandom(42)
    const c = seededRandom(43)
    const first = Array.from({ length: 1000 }, () => a())
    expect(Array.from({ length: 1000 }, () => b())).toEqual(first)
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(first)
    expect(first.every((x) => x >= 0 && x < 1)).toBe(true)
    // Roughly uniform: each tenth of [0, 1) gets 5-15% of the values.
    const tenths = new Array(10).fill(0)
    for (const x of first) tenths[Math.floor(x * 10)] += 1
    expect(tenths.every((n) => n > 50 && n < 150)).toBe(true)
  })
})
