import { describe, expect, it } from 'vitest'
import { quantile, ratio, round, signTestTail, spread } from '../src/stats.js'
import { pairedRatio } from '../src/report.js'

describe('stats', () => {
  it('takes quantiles by linear interpolation between order statistics', () => {
    expect(quantile([3, 1, 2], 0.5)).toBe(2)
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5)
    expect(quantile([10, 20, 30, 40, 50], 0.25)).toBe(20)
    expect(quantile([1, 2], 0.75)).toBe(1.75)
    expect(quantile([7], 0.99)).toBe(7)
    expect(quantile([], 0.5)).toBeNaN()
    expect(() => quantile([1], 1.5)).toThrow(RangeError)
  })

  it('reports the median, extremes and quartiles of repetitions, ignoring non-numbers', () => {
    expect(spread([5, 1, 9, NaN, 3, 7])).toEqual({ n: 5, median: 5, min: 1, max: 9, q1: 3, q3: 7 })
    expect(spread([]).n).toBe(0)
    expect(spread([]).median).toBeNaN()
  })

  it('divides only by a non-zero number', () => {
    expect(ratio(3, 4)).toBe(0.75)
    expect(ratio(3, 0)).toBeNaN()
    expect(ratio(NaN, 2)).toBeNaN()
    expect(round(1.23456)).toBe(1.23)
    expect(round(1.23456, 3)).toBe(1.235)
  })

  it('gives the chance of at least k of n runs on one side of a true median, as a sign test needs', () => {
    // All of five: 1 in 32. Four or more of five: 6 in 32. At least 12 of 15: 576 in 32,768.
    expect(signTestTail(5, 5)).toBeCloseTo(1 / 32, 12)
    expect(signTestTail(5, 4)).toBeCloseTo(6 / 32, 12)
    expect(signTestTail(15, 12)).toBeCloseTo(576 / 32_768, 12)
    expect(signTestTail(15, 11)).toBeCloseTo(1941 / 32_768, 12)
    expect(signTestTail(9, 0)).toBe(1)
    expect(signTestTail(9, 10)).toBe(0)
  })

  it('pairs windows that ran next to each other before taking ratios', () => {
    // Pairwise ratios 0.5, 1, 2: the median is 1, not the ratio of medians (20 / 20 = 1 too, so use uneven sets).
    const r = pairedRatio([10, 20, 40, 99], [20, 20, 20])
    expect(r).toMatchObject({ n: 3, median: 1, min: 0.5, max: 2 })
  })
})
