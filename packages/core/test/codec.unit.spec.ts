import {
  commandKey,
  decodeEnvelope,
  encodeEnvelope,
  isUndecodable,
  type CommandEnvelope,
  type UndecodableCommand,
} from '@esk/core/driver'
import { describe, expect, it } from 'vitest'

const valid: CommandEnvelope = {
  commandId: 'cmd-1',
  type: 'bank.Deposit',
  aggregateId: 'acc-1',
  kind: 'update',
  expectedVersion: 3,
  payload: { amount: 5 },
  replyTo: 'client-1',
  sentAt: 1_700_000_000_000,
}

/** Decodes a record that must fail, and returns what could be read of it. */
function undecodable(value: string): UndecodableCommand {
  const decoded = decodeEnvelope(value)
  if (!isUndecodable(decoded)) throw new Error(`expected ${value} to be refused, got ${JSON.stringify(decoded)}`)
  expect(decoded.error).toMatchObject({ code: 'ESK_INVALID_COMMAND', name: 'InvalidCommandError' })
  return decoded
}

const record = (fields: Record<string, unknown>): string => JSON.stringify(fields)

describe('decodeEnvelope', () => {
  it('gives back what encodeEnvelope wrote', () => {
    const decoded = decodeEnvelope(encodeEnvelope(valid))
    expect(isUndecodable(decoded)).toBe(false)
    expect(decoded).toEqual(valid)
  })

  it('keeps optional fields optional', () => {
    const { expectedVersion: _, replyTo: __, ...minimal } = valid
    expect(decodeEnvelope(record(minimal))).toEqual(minimal)
    expect(decodeEnvelope(record({ ...minimal, expectedVersion: 0 }))).toMatchObject({ expectedVersion: 0 })
  })

  it('reads a missing or malformed sentAt as 0 rather than refusing the command', () => {
    expect(decodeEnvelope(record({ ...valid, sentAt: undefined }))).toMatchObject({ sentAt: 0 })
    expect(decodeEnvelope(record({ ...valid, sentAt: 'yesterday' }))).toMatchObject({ sentAt: 0 })
  })

  it('refuses text that is not JSON', () => {
    const { error, commandId, aggregateId, replyTo } = undecodable('not json at all')
    expect(error.problems).toEqual(['the record is not JSON'])
    expect(error.details).toMatchObject({ commandType: 'unknown' })
    expect([commandId, aggregateId, replyTo]).toEqual([undefined, undefined, undefined])
  })

  it.each(['42', '"text"', 'null', 'true', '[]', '[{"commandId":"x"}]'])('refuses %s: not a JSON object', (value) => {
    expect(undecodable(value).error.problems).toEqual(['the record is not a JSON object'])
  })

  it('lists every missing field at once', () => {
    const { error } = undecodable('{}')
    expect(error.problems).toEqual([
      'commandId must be a non-empty string',
      'type must be a non-empty string',
      'aggregateId must be a non-empty string',
      "kind must be 'create' or 'update'",
      'payload must be a JSON object',
    ])
    expect(error.message).toContain('commandId must be a non-empty string; type must be a non-empty string')
  })

  it.each([
    ['an empty commandId', { commandId: '' }, 'commandId must be a non-empty string'],
    ['a numeric aggregateId', { aggregateId: 7 }, 'aggregateId must be a non-empty string'],
    ['an unknown kind', { kind: 'delete' }, "kind must be 'create' or 'update'"],
    ['an array payload', { payload: [1, 2] }, 'payload must be a JSON object'],
    ['a null payload', { payload: null }, 'payload must be a JSON object'],
    ['a string payload', { payload: '{"amount":5}' }, 'payload must be a JSON object'],
  ])('refuses %s', (_what, change, problem) => {
    expect(undecodable(record({ ...valid, ...change })).error.problems).toEqual([problem])
  })

  it.each([-1, 1.5, '3', null, true])('refuses expectedVersion %j', (expectedVersion) => {
    const { error } = undecodable(record({ ...valid, expectedVersion }))
    expect(error.problems).toEqual(['expectedVersion must be a non-negative integer when given'])
  })

  it('returns commandId, aggregateId and replyTo when they are readable, so the sender can be answered', () => {
    const refused = undecodable(record({ ...valid, kind: 'sideways', payload: [] }))
    expect(refused).toMatchObject({ commandId: 'cmd-1', aggregateId: 'acc-1', replyTo: 'client-1' })
    expect(refused.error.problems).toEqual(["kind must be 'create' or 'update'", 'payload must be a JSON object'])
    // The command type is readable too, and named in the error.
    expect(refused.error.details).toMatchObject({ commandType: 'bank.Deposit' })
    expect(refused.error.message).toContain('command bank.Deposit is invalid')
  })

  it('leaves out what is not readable, without inventing values', () => {
    const refused = undecodable(record({ commandId: 'cmd-2', aggregateId: '', replyTo: 42, payload: {} }))
    expect(refused.commandId).toBe('cmd-2')
    expect('aggregateId' in refused).toBe(false)
    expect('replyTo' in refused).toBe(false)
    expect(refused.error.details).toMatchObject({ commandType: 'unknown' })
  })
})

describe('commandKey', () => {
  // Fails before the JSON pair: `a\0b` + `c` and `a` + `b\0c` shared a key, so one aggregate's
  // outcome answered another's command.
  it('gives different commands different keys, whatever characters the ids hold', () => {
    const pairs = [
      { aggregateId: 'a\u0000b', commandId: 'c' },
      { aggregateId: 'a', commandId: 'b\u0000c' },
      { aggregateId: 'a"', commandId: 'b' },
      { aggregateId: 'a', commandId: '"b' },
    ]
    expect(new Set(pairs.map(commandKey)).size).toBe(pairs.length)
  })
})
