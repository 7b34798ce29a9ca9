/** Latency recording in an HDR histogram (microsecond resolution, 3 significant digits). */
import * as hdr from 'hdr-histogram-js'

/** Percentiles of one histogram, in ms. */
export interface LatencySummary {
  count: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  maxMs: number
}

/** A histogram of latencies up to 10 minutes. */
export function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 })
}

/** Records `ms` (clamped into the histogram's range). */
export function recordMs(histogram: hdr.Histogram, ms: number): void {
  histogram.recordValue(Math.min(600_000_000, Math.max(1, Math.round(ms * 1000))))
}

/** The summary the tables show. */
export function summarize(histogram: hdr.Histogram): LatencySummary {
  const ms = (us: number): number => Math.round(us / 10) / 100
  return {
    count: histogram.totalCount,
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
  }
}
