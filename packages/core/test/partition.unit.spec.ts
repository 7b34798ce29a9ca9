import { partitionFor } from '@esk/core/driver'
import { describe, expect, it } from 'vitest'

// partitionFor decides which partition, and so which processor and which Redis keys, own an
// aggregate. Clients and processors of every version must agree on it, and Kafka keeps the data
// where it was written: changing the hash (or its byte encoding) silently moves existing aggregates
// to partitions that do not hold their events. These vectors catch any such change.

describe('partitionFor', () => {
  it('is 32-bit FNV-1a over UTF-8: the published test vectors', () => {
    // With 2^32 partitions the modulo is the identity, so the raw hash shows through. Vectors from
    // the FNV reference (draft-eastlake-fnv): "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968.
    expect(partitionFor('', 2 ** 32)).toBe(0x811c9dc5)
    expect(partitionFor('a', 2 ** 32)).toBe(0xe40c292c)
    expect(partitionFor('foobar', 2 ** 32)).toBe(0xbf9cf968)
  })

  it('maps fixed ids to fixed partitions', () => {
    // Computed once with an independent FNV-1a implementation (Python, over the UTF-8 bytes).
    expect(partitionFor('account-42', 8)).toBe(5) // 0x7a3b6bc5
    expect(partitionFor('ada-1', 4)).toBe(1) // 0x900bf6e9
    expect(partitionFor('0f8fad5b-d9cb-469f-a165-70867728950e', 3)).toBe(2) // 0x222496c1
    // Non-ASCII ids hash their UTF-8 bytes, not UTF-16 code units.
    expect(partitionFor('konto-müller', 16)).toBe(0) // 0x7e2e7660
    expect(partitionFor('konto-müller', 2 ** 32)).toBe(0x7e2e7660)
  })

  it('always maps the same id to the same partition', () => {
    for (let i = 0; i < 1_000; i++) {
      const id = `order-${i}`
      expect(partitionFor(id, 12)).toBe(partitionFor(`order-${i}`, 12))
    }
  })

  it('stays within range for every partition count', () => {
    for (const partitions of [1, 2, 3, 7, 8, 100, 10_000]) {
      for (let i = 0; i < 500; i++) {
        const p = partitionFor(`id-${i}`, partitions)
        expect(Number.isInteger(p) && p >= 0 && p < partitions).toBe(true)
      }
    }
    expect(partitionFor('anything', 1)).toBe(0)
  })

  it.each([
    ['account-${i}', (i: number) => `account-${i}`],
    ['${i}', (i: number) => String(i)],
    ['customer/${i}/cart', (i: number) => `customer/${i}/cart`],
  ])('spreads 10,000 ids like %s evenly over 8 partitions', (_pattern, idOf) => {
    const counts = new Array<number>(8).fill(0)
    for (let i = 0; i < 10_000; i++) counts[partitionFor(idOf(i), 8)]! += 1
    // 1,250 each on average; every partition stays within 10% of that.
    for (const count of counts) {
      expect(count).toBeGreaterThan(1_125)
      expect(count).toBeLessThan(1_375)
    }
  })
})
