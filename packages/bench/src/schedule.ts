/** Open-loop arrival schedules: when each command is meant to leave, whatever the replies do. */

/**
 * The intended send time (ms after the schedule's start) of command `index` at a constant
 * `ratePerSecond`. Latency is measured from this time, not from the actual send, so a client
 * that falls behind (coordinated omission) still charges the delay to the system.
 */
export function intendedTime(index: number, ratePerSecond: number): number {
  if (!(ratePerSecond > 0)) throw new RangeError(`a rate is > 0 commands/s, got ${ratePerSecond}`)
  return (index * 1000) / ratePerSecond
}

/** How many commands are due `elapsedMs` after the start at `ratePerSecond` (command 0 is due at 0). */
export function dueBy(elapsedMs: number, ratePerSecond: number): number {
  if (elapsedMs < 0) return 0
  return Math.floor((elapsedMs * ratePerSecond) / 1000) + 1
}

/**
 * The offered rates of a sweep: `fractions` of a measured closed-loop maximum, rounded to whole
 * commands/s, at least 1, duplicates removed, ascending.
 */
export function sweepRates(maximum: number, fractions: readonly number[]): number[] {
  if (!(maximum > 0)) throw new RangeError(`a sweep needs a maximum > 0, got ${maximum}`)
  const rates = fractions.map((f) => Math.max(1, Math.round(maximum * f)))
  return [...new Set(rates)].sort((a, b) => a - b)
}

/**
 * The knee of a sweep: the highest offered rate whose achieved rate is within `tolerance` of the
 * offer and whose p99 is at most `p99LimitMs`. Undefined when no point qualifies.
 */
export function knee(
  points: ReadonlyArray<{ offered: number; achieved: number; p99Ms: number }>,
  p99LimitMs: number,
  tolerance = 0.05,
): number | undefined {
  let best: number | undefined
  for (const point of points) {
    if (point.achieved >= point.offered * (1 - tolerance) && point.p99Ms <= p99LimitMs) {
      best = best === undefined ? point.offered : Math.max(best, point.offered)
    }
  }
  return best
}
