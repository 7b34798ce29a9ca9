import type { Outcome, StoredSnapshot } from '@esk/core/driver'
import { describe, expect, it } from 'vitest'
import { decodeSnapshot, encodeSnapshot, encodeWindow, replyMessages } from '../src/codec.js'

const recent = [
  { commandId: 'c-1', version: 1, events: 1, offset: undefined },
  { commandId: 'c-"2"\nwith a line break', version: 3, events: 2, offset: 9_007_199_254_740_991 },
]
const snapshot: StoredSnapshot = { aggregateId: 'a-"1"', version: 3, schemaVersion: 2, offset: 17, state: '{"x":"\\u0000"}', recent }

describe('snapshot codec', () => {
  it('writes the window beside the snapshot, one entry per line, and reads both back', () => {
    const text = encodeSnapshot(snapshot)
    const window = encodeWindow(recent)
    expect(window.split('\n')).toEqual([JSON.stringify(['c-1', 1, 1]), JSON.stringify(['c-"2"\nwith a line break', 3, 2, 9_007_199_254_740_991])])
    expect(decodeSnapshot(text, 'k', 's:a', window)).toEqual(snapshot)
    expect(decodeSnapshot(text, 'k', 's:a', '')).toEqual({ ...snapshot, recent: [] })
    // Saved again with the same entries (as every later command of the aggregate does).
    expect(encodeWindow([...recent])).toBe(window)
  })

  it('gives earlier versions a snapshot they refuse as corrupt rather than one with an empty window', () => {
    // Earlier versions read `recent ?? []` and refuse anything but a list: a snapshot whose window
    // is elsewhere must not look like one without a window to them.
    const raw = JSON.parse(encodeSnapshot(snapshot)) as Record<string, unknown>
    expect(raw.recent).toBeDefined()
    expect(Array.isArray(raw.recent)).toBe(false)
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
