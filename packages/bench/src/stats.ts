/** Order statistics of repeated measurements: what every table of the suite reports. */

/** Median and spread of a set of repetitions. */
export interface Spread {
  /** How many values. */
  n: number
  median: number
  min: number
  max: number
  /** First and third quartiles (linear interpolation between order statistics). */
  q1: number
  q3: number
}

/**
 * The `p` quantile (0..1) of `values`, interpolating linearly between the two nearest order
 * statistics (the usual "type 7" definition). NaN for no values.
 */
export function quantile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  if (p < 0 || p > 1) throw new RangeError(`a quantile is between 0 and 1, got ${p}`)
  const sorted = [...values].sort((a, b) => a - b)
  const position = (sorted.length - 1) * p
  const below = Math.floor(position)
  const above = Math.ceil(position)
  const low = sorted[below]!
  return low + (sorted[above]! - low) * (position - below)
}

/** Median, min, max and quartiles of `values`; every field NaN (n 0) for no values. */
export function spread(values: readonly number[]): Spread {
  const finite = values.filter((v) => Number.isFinite(v))
  if (finite.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, q1: NaN, q3: NaN }
  return {
    n: finite.length,
    median: quantile(finite, 0.5),
    min: Math.min(...finite),
    max: Math.max(...finite),
    q1: quantile(finite, 0.25),
    q3: quantile(finite, 0.75),
  }
}

/** `a / b`, or NaN when b is 0 or either is not a number. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN
}

/** Rounds to `digits` decimals (2 by default); leaves NaN as it is. */
export function round(value: number, digits = 2): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

/**
 * The chance that at least `k` of `n` runs fall on one side of the true median, each run as likely
 * on either side: the tail of a binomial of `n` trials of ½, which a one-sided sign test compares
 * with its level. 1 for `k` ≤ 0.
 */
export function signTestTail(n: number, k: number): number {
  let tail = 0
  // C(n, i), built up term by term: exact in a double for any n a benchmark repeats.
  let choose = 1
  for (let i = 0; i <= n; i++) {
    if (i >= k) tail += choose
    choose = (choose * (n - i)) / (i + 1)
  }
  return tail / 2 ** n
}
