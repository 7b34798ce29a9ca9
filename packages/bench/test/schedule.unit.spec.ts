import { describe, expect, it } from 'vitest'
import { dueBy, intendedTime, knee, sweepRates } from '../src/schedule.js'

describe('open-loop schedule', () => {
  it('spaces intended send times evenly at the rate', () => {
    expect(intendedTime(0, 100)).toBe(0)
    expect(intendedTime(1, 100)).toBe(10)
    expect(intendedTime(250, 1000)).toBe(250)
    expect(() => intendedTime(1, 0)).toThrow(RangeError)
  })

  it('makes every command due once its intended time has come, and no other', () => {
    for (const rate of [7, 100, 3333]) {
      for (const elapsed of [0, 0.5, 10, 999.9, 1000, 12_345]) {
        const due = dueBy(elapsed, rate)
        expect(intendedTime(due - 1, rate)).toBeLessThanOrEqual(elapsed)
        expect(intendedTime(due, rate)).toBeGreaterThan(elapsed)
      }
    }
    expect(dueBy(-1, 100)).toBe(0)
  })

  it('sweeps fractions of a maximum, rounded, distinct and ascending', () => {
    expect(sweepRates(1000, [1, 0.25, 0.5, 0.5])).toEqual([250, 500, 1000])
    expect(sweepRates(3, [0.01, 0.1])).toEqual([1])
    expect(() => sweepRates(0, [0.5])).toThrow(RangeError)
  })

  it('finds the knee: the highest rate achieved within tolerance and under the p99 limit', () => {
    const points = [
      { offered: 100, achieved: 100, p99Ms: 10 },
      { offered: 200, achieved: 198, p99Ms: 30 },
      { offered: 300, achieved: 290, p99Ms: 80 },
      { offered: 400, achieved: 310, p99Ms: 20 },
    ]
    expect(knee(points, 50)).toBe(200)
    expect(knee(points, 100)).toBe(300)
    expect(knee(points, 5)).toBeUndefined()
  })
})
