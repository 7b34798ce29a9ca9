import { describe, expect, it } from 'vitest'
import { newHistogram, recordMs, summarize } from '../src/latency.js'

describe('latency histogram', () => {
  it('reports percentiles in ms within the histogram precision (3 digits)', () => {
    const histogram = newHistogram()
    for (let ms = 1; ms <= 1000; ms++) recordMs(histogram, ms)
    const summary = summarize(histogram)
    expect(summary.count).toBe(1000)
    expect(summary.p50Ms).toBeCloseTo(500, -1)
    expect(summary.p99Ms).toBeCloseTo(990, -1)
    expect(summary.p999Ms).toBeCloseTo(999, -1)
    expect(Math.abs(summary.maxMs - 1000)).toBeLessThan(1)
  })

  it('keeps sub-millisecond and very long latencies instead of dropping them', () => {
    const histogram = newHistogram()
    recordMs(histogram, 0.0001)
    recordMs(histogram, 10 * 60_000 + 1)
    expect(summarize(histogram).count).toBe(2)
    expect(summarize(histogram).maxMs).toBeGreaterThan(590_000)
  })
})
