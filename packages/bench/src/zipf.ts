/** Zipf-skewed key picks for the workloads. */

/**
 * Picks ranks 0..n-1 with probability proportional to 1 / (rank + 1)^exponent: rank 0 is the
 * hottest key. Sampling inverts the cumulative distribution by binary search (n floats of memory).
 */
export class Zipf {
  private readonly cumulative: Float64Array

  constructor(
    readonly n: number,
    readonly exponent: number,
    private readonly random: () => number,
  ) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`a Zipf distribution needs n >= 1, got ${n}`)
    if (!(exponent >= 0)) throw new RangeError(`a Zipf exponent is >= 0, got ${exponent}`)
    this.cumulative = new Float64Array(n)
    let total = 0
    for (let rank = 0; rank < n; rank++) {
      total += 1 / (rank + 1) ** exponent
      this.cumulative[rank] = total
    }
    for (let rank = 0; rank < n; rank++) this.cumulative[rank]! /= total
  }

  /** The probability of `rank`. */
  probability(rank: number): number {
    return this.cumulative[rank]! - (rank === 0 ? 0 : this.cumulative[rank - 1]!)
  }

  /** The next rank. */
  next(): number {
    const u = this.random()
    let low = 0
    let high = this.n - 1
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.cumulative[mid]! > u) high = mid
      else low = mid + 1
    }
    return low
  }
}
