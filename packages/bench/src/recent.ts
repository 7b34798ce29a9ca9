/**
 * What keeping "the last n keys" costs per call, with esk's structures (`@esk/core`'s `RecentMap`,
 * `FifoMap` and `LruMap`) against the plain Map or Set they replaced, measured in the same run:
 * - moved to the end on every use (delete, then set): the client's own writes and the processor's
 *   held aggregates;
 * - oldest dropped with `keys().next()`: the client's own writes once full, and the processor's
 *   unlogged outcomes.
 * Keys are used by a pattern: one hot key, 8 hot keys, uniform over the held keys, or always new.
 *
 *   node packages/bench/dist/recent.js [--sizes 1000,10000] [--calls N]
 */
import { parseArgs } from 'node:util'
import { FifoMap, LruMap, RecentMap } from '@esk/core/driver'
import { seededRandom } from '@esk/testing'

const { values } = parseArgs({ options: { sizes: { type: 'string', default: '1000,10000' }, calls: { type: 'string', default: '50000' } } })
const sizes = values.sizes.split(',').map(Number)
const calls = Number(values.calls)
if (sizes.some((n) => !Number.isInteger(n) || n < 8) || !Number.isInteger(calls) || calls < 1) {
  throw new Error('--sizes must be integers of at least 8, --calls a positive integer')
}

type Pattern = 'one hot key' | '8 hot keys' | 'uniform' | 'new keys'
const PATTERNS: Pattern[] = ['one hot key', '8 hot keys', 'uniform', 'new keys']

/** The keys of `calls` uses in a pattern, over `size` keys held. */
function keysOf(pattern: Pattern, size: number): string[] {
  const next = seededRandom(12345)
  return Array.from({ length: calls }, (_, i) => {
    switch (pattern) {
      case 'one hot key':
        return 'k-0'
      case '8 hot keys':
        return `k-${i % 8}`
      case 'uniform':
        return `k-${Math.floor(next() * size)}`
      case 'new keys':
        return `k-${size + i}`
    }
  })
}

/** Nanoseconds per call of `use` over `keys`, after one pass to warm up. */
function timed(keys: readonly string[], use: (key: string, i: number) => void): number {
  for (let i = 0; i < keys.length; i++) use(keys[i]!, i)
  const started = process.hrtime.bigint()
  for (let i = 0; i < keys.length; i++) use(keys[i]!, i)
  return Number(process.hrtime.bigint() - started) / keys.length
}

interface Row {
  size: number
  pattern: Pattern
  use: string
  before: number
  after: number
}
const rows: Row[] = []
for (const size of sizes) {
  for (const pattern of PATTERNS) {
    const keys = keysOf(pattern, size)
    // The client's own writes: a version per aggregate, the oldest dropped once full.
    {
      const map = new Map<string, number>()
      for (let i = 0; i < size; i++) map.set(`k-${i}`, 0)
      const before = timed(keys, (key, v) => {
        if (map.has(key)) map.delete(key)
        else if (map.size >= size) map.delete(map.keys().next().value!)
        map.set(key, v)
      })
      const recent = new RecentMap<string, number>(size)
      for (let i = 0; i < size; i++) recent.set(`k-${i}`, 0)
      const after = timed(keys, (key, v) => {
        if ((recent.get(key) ?? -1) < v) recent.set(key, v)
      })
      rows.push({ size, pattern, use: "a client's own writes (RecentMap)", before, after })
    }
    // The processor's held aggregates: taken out for a batch, put back as the most recently used.
    {
      const map = new Map<string, number>()
      for (let i = 0; i < size; i++) map.set(`k-${i}`, 0)
      const before = timed(keys, (key, v) => {
        map.delete(key)
        map.set(key, v)
        for (const k of map.keys()) {
          if (map.size <= size) break
          map.delete(k)
        }
      })
      const lru = new LruMap<string, number>()
      for (let i = 0; i < size; i++) lru.set(`k-${i}`, 0)
      const after = timed(keys, (key, v) => {
        lru.take(key)
        lru.set(key, v)
        lru.trim(size)
      })
      rows.push({ size, pattern, use: 'held aggregates (LruMap)', before, after })
    }
    // The processor's unlogged outcomes: added once, the oldest dropped beyond the window.
    {
      const set = new Set<string>()
      for (let i = 0; i < size; i++) set.add(`k-${i}`)
      const before = timed(keys, (key) => {
        if (set.has(key)) return
        set.add(key)
        if (set.size > size) set.delete(set.values().next().value!)
      })
      const fifo = new FifoMap<string, true>()
      for (let i = 0; i < size; i++) fifo.add(`k-${i}`, true)
      const after = timed(keys, (key) => {
        if (fifo.add(key, true)) fifo.trim(size)
      })
      rows.push({ size, pattern, use: 'unlogged outcomes (FifoMap)', before, after })
    }
  }
}

const ns = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)} µs` : `${Math.round(n)} ns`)
console.log(`Per call, ${calls} calls after as many to warm up; Node ${process.version}.\n`)
console.log('| keys held | keys used | structure | Map or Set before | esk now |')
console.log('| --- | --- | --- | --- | --- |')
for (const r of rows) console.log(`| ${r.size.toLocaleString('en-US')} | ${r.pattern} | ${r.use} | ${ns(r.before)} | ${ns(r.after)} |`)
