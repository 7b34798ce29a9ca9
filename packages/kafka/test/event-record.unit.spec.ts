import { ErrorCode } from '@esk/core'
import { EVENT_HEADER, EventHeaders, encodeEventHeader } from '@esk/kafka'
import { decodeEvent } from '@esk/kafka/driver'
import type { KafkaMessage } from 'kafkajs'
import { describe, expect, it } from 'vitest'

/** A record as kafkajs hands it over: key, value and header values as buffers. */
function record(offset: number, key: string | null, headers: Record<string, string>, value = '{"amount":5}'): KafkaMessage {
  return {
    offset: String(offset),
    key: key === null ? null : Buffer.from(key),
    value: Buffer.from(value),
    headers: Object.fromEntries(Object.entries(headers).map(([name, text]) => [name, Buffer.from(text)])),
    timestamp: '0',
    attributes: 0,
  }
}

const expected = { offset: 7, type: 'Deposited', aggregateId: 'acct "1"', version: 3, commandId: 'c 1', commandPosition: 41, payload: '{"amount":5}' }

describe('event records', () => {
  it('are read from their one header and key, and from the per-field headers of earlier versions', () => {
    const meta = encodeEventHeader({ type: 'Deposited', version: 3, commandId: 'c 1', commandPosition: 41 })
    expect(decodeEvent('t', 0, record(7, 'acct "1"', { [EVENT_HEADER]: meta }))).toEqual(expected)
    const legacy = {
      [EventHeaders.type]: 'Deposited',
      [EventHeaders.aggregateId]: 'acct "1"',
      [EventHeaders.version]: '3',
      [EventHeaders.commandId]: 'c 1',
      [EventHeaders.commandOffset]: '41',
    }
    expect(decodeEvent('t', 0, record(7, 'acct "1"', legacy))).toEqual(expected)
    // Other headers (trace context) are kept, esk's are not.
    expect(decodeEvent('t', 0, record(7, 'acct "1"', { [EVENT_HEADER]: meta, traceparent: 'x' })).headers).toEqual({ traceparent: 'x' })
  })

  it('that esk did not write are refused with a serialization error naming the record', () => {
    const refusals: Array<[string | null, Record<string, string>, RegExp]> = [
      ['a', {}, /t\[0\]@7 has neither an esk-event header nor an esk-type header/],
      ['a', { [EVENT_HEADER]: 'not json' }, /esk-event header that is not \[type, version, commandId, commandOffset\]/],
      ['a', { [EVENT_HEADER]: '["Deposited","3","c",41]' }, /esk-event header that is not/],
      ['a', { [EVENT_HEADER]: '["Deposited",3,"c"]' }, /esk-event header that is not/],
      [null, { [EVENT_HEADER]: '["Deposited",3,"c",41]' }, /has no key \(the aggregate id\)/],
    ]
    for (const [key, headers, message] of refusals) {
      let error: unknown
      try {
        decodeEvent('t', 0, record(7, key, headers))
      } catch (caught) {
        error = caught
      }
      expect(error).toMatchObject({ code: ErrorCode.Serialization, message: expect.stringMatching(message) })
    }
  })
})
