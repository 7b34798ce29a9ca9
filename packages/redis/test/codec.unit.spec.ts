import type { StoredSnapshot } from '@esk/core/driver'
import { describe, expect, it } from 'vitest'
import { decodeSnapshot, encodeSnapshot } from '../src/codec.js'

describe('snapshot codec', () => {
  it('writes the same text as encoding the whole record at once, with window entries encoded once', () => {
    const recent = [
      { commandId: 'c-1', version: 1, events: 1 },
      { commandId: 'c-"2"', version: 3, events: 2, offset: 9_007_199_254_740_991 },
    ]
    const snapshot: StoredSnapshot = { aggregateId: 'a-"1"', version: 3, schemaVersion: 2, offset: 17, state: '{"x":"\\u0000"}', recent }
    const whole = JSON.stringify({
      aggregateId: snapshot.aggregateId,
      version: 3,
      schemaVersion: 2,
      offset: 17,
      state: snapshot.state,
      recent: [['c-1', 1, 1], ['c-"2"', 3, 2, 9_007_199_254_740_991]],
    })
    expect(encodeSnapshot(snapshot)).toBe(whole)
    // Saved again with the same entries (as every later command of the aggregate does).
    expect(encodeSnapshot({ ...snapshot, recent: [...recent] })).toBe(whole)
    expect(encodeSnapshot({ ...snapshot, recent: [] })).toBe(whole.replace(/"recent":.*$/, '"recent":[]}'))
    expect(decodeSnapshot(whole, 'k', 'f')).toEqual(snapshot)
  })
})
