/**
 * A deterministic source of numbers in [0, 1) for tests that generate their inputs: the same seed
 * gives the same sequence on every run and machine, so a failure found with a seed can be run
 * again. Mulberry32: 32 bits of state, fast, and uniform enough for picking test data; not for
 * anything that must not be guessed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
