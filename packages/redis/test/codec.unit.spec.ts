import type { Outcome, StoredSnapshot } from '@esk/core/driver'
import { describe, expect, it } from 'vitest'
import { WINDOW_IN_FIELD, decodeSnapshot, encodeSnapshot, encodeWindow, replyMessages } from '../src/codec.js'

const recent = [
  { commandId: 'c-1', version: 1, events: 1, offset: undefined },
  { commandId: 'c-"2"\nwith a line break', version: 3, events: 2, offset: 9_007_199_254_740_991 },
]
const snapshot: StoredSnapshot = { aggregateId: 'a-"1"', version: 3, schemaVersion: 2, offset: 17, state: '{"x":"\\u0000"}', recent }

describe('snapshot codec', () => {
  it('writes the window beside the snapshot, one entry per line, and reads it back from its two fields', () => {
    const text = encodeSnapshot(snapshot)
    expect(JSON.parse(text)).toMatchObject({ recent: { split: 2 } })
    const window = encodeWindow(recent)
    expect(window.split('\n')).toEqual([JSON.stringify(['c-1', 1, 1]), JSON.stringify(['c-"2"\nwith a line break', 3, 2, 9_007_199_254_740_991])])
    expect(decodeSnapshot(text, 'k', 's:a', window)).toEqual(snapshot)
    expect(decodeSnapshot(text, 'k', 's:a', window, '')).toEqual(snapshot)
    expect(decodeSnapshot(text, 'k', 's:a', '', window)).toEqual(snapshot)
    // The newest entries in the second field, after older ones the window no longer holds.
    const older = { commandId: 'c-0', version: 1, events: 1, offset: 3 }
    expect(decodeSnapshot(text, 'k', 's:a', encodeWindow([older, recent[0]!]), encodeWindow([recent[1]!]))).toEqual(snapshot)
    expect(decodeSnapshot(encodeSnapshot({ ...snapshot, recent: [] }), 'k', 's:a', '', '')).toEqual({ ...snapshot, recent: [] })
    // Saved again with the same entries (as every later command of the aggregate does).
    expect(encodeWindow([...recent])).toBe(window)
  })

  it('gives earlier versions a snapshot they refuse as corrupt rather than one with fewer entries in its window', () => {
    // Versions before windows had fields of their own read `recent ?? []` and refuse anything but a
    // list; the previous version read `"separate"` as "the whole window is in w:". A snapshot whose
    // newest entries are elsewhere must look like neither.
    const raw = JSON.parse(encodeSnapshot(snapshot)) as Record<string, unknown>
    expect(raw.recent).toBeDefined()
    expect(Array.isArray(raw.recent)).toBe(false)
    expect(raw.recent).not.toBe(WINDOW_IN_FIELD)
  })

  it('reads snapshots written with the whole window in one field, as the previous version wrote them', () => {
    const previous = JSON.stringify({ ...snapshot, recent: WINDOW_IN_FIELD })
    expect(decodeSnapshot(previous, 'k', 's:a', encodeWindow(recent))).toEqual(snapshot)
    expect(decodeSnapshot(previous, 'k', 's:a', encodeWindow(recent), 'ignored')).toEqual(snapshot)
  })

  it('reads snapshots written with the window inside, as earlier versions wrote them', () => {
    const earlier = JSON.stringify({ ...snapshot, recent: [['c-1', 1, 1], ['c-"2"\nwith a line break', 3, 2, 9_007_199_254_740_991]] })
    expect(decodeSnapshot(earlier, 'k', 's:a')).toEqual(snapshot)
    expect(decodeSnapshot(earlier, 'k', 's:a', 'ignored')).toEqual(snapshot)
  })

  it('refuses a snapshot whose window field is missing or malformed, saying where', () => {
    const text = encodeSnapshot(snapshot)
    expect(() => decodeSnapshot(text, 'k', 's:a', null)).toThrow(expect.objectContaining({ code: 'ESK_SERIALIZATION', message: expect.stringContaining('window is missing') }))
    expect(() => decodeSnapshot(text, 'k', 's:a', '["c-1",1,1]\nnot json')).toThrow(
      expect.objectContaining({ code: 'ESK_SERIALIZATION', details: { key: 'k', field: 'w:a-"1"' } }),
    )
    expect(() => decodeSnapshot(text, 'k', 's:a', '["c-1",-1,1]')).toThrow(expect.objectContaining({ code: 'ESK_SERIALIZATION' }))
    expect(() => decodeSnapshot(text, 'k', 's:a', '["c-1",1,1]', 'not json')).toThrow(
      expect.objectContaining({ code: 'ESK_SERIALIZATION', details: { key: 'k', field: 't:a-"1"' } }),
    )
    // Fewer entries than the snapshot says its window holds: a field was lost or edited.
    expect(() => decodeSnapshot(text, 'k', 's:a', '["c-1",1,1]')).toThrow(
      expect.objectContaining({ code: 'ESK_SERIALIZATION', message: expect.stringContaining('fewer than the 2 recorded') }),
    )
  })
})

describe('reply messages', () => {
  const outcome = (commandId: string, message = 'no'): Outcome => ({
    status: 'rejected',
    commandId,
    aggregateId: 'a',
    error: { code: 'ESK_COMMAND_REJECTED', message },
  })

  it('sends a client that reads lines one message with its outcomes in order, and any other client one per outcome', () => {
    const lines = 'c-1.lines'
    const other = 'c-2'
    const replies = [
      { replyTo: lines, outcome: outcome('x', 'two\nlines') },
      { replyTo: other, outcome: outcome('y') },
      { replyTo: lines, outcome: outcome('z') },
      { replyTo: other, outcome: outcome('w') },
    ]
    const messages = replyMessages('p:', replies)
    expect(messages).toEqual([
      'p:replies:c-1.lines',
      `${JSON.stringify(outcome('x', 'two\nlines'))}\n${JSON.stringify(outcome('z'))}`,
      'p:replies:c-2',
      JSON.stringify(outcome('y')),
      'p:replies:c-2',
      JSON.stringify(outcome('w')),
    ])
    // A line break inside an outcome is escaped by JSON: every line is one outcome.
    expect(messages[1]!.split('\n').map((line) => JSON.parse(line) as unknown)).toEqual([outcome('x', 'two\nlines'), outcome('z')])
  })
})
