import {
  AggregateExistsError,
  AggregateNotFoundError,
  ClosedError,
  CommandLogTruncatedError,
  CommandRejected,
  CommandTimeoutError,
  ConfigurationError,
  ErrorCode,
  EskError,
  FencedError,
  HandlerFailedError,
  InvalidArgumentError,
  InvalidCommandError,
  ReadTimeoutError,
  SerializationError,
  SnapshotStaleError,
  UnknownCommandError,
  VersionConflictError,
  hasCode,
  SchemaAheadError,
  UnavailableError,
  EventsTruncatedError,
  ProjectionFailedError,
} from '@esk/core'
import { errorFromPayload, errorToPayload } from '@esk/core/driver'
import { describe, expect, it } from 'vitest'

// One instance of every error class, as a processor or a client would raise it.
const examples: Array<[string, EskError]> = [
  ['ConfigurationError', new ConfigurationError('partitions must be an integer', { option: 'partitions' })],
  ['InvalidArgumentError', new InvalidArgumentError('aggregate id must be a string', { id: '' })],
  ['AggregateExistsError', new AggregateExistsError('account', 'acc-1')],
  ['AggregateNotFoundError', new AggregateNotFoundError('account', 'acc-2')],
  ['VersionConflictError', new VersionConflictError('account', 'acc-3', 2, 5)],
  ['UnknownCommandError', new UnknownCommandError('bank.Close is not handled', { commandType: 'bank.Close' })],
  ['InvalidCommandError', new InvalidCommandError('bank.Deposit', ['amount must be > 0', 'owner is required'])],
  ['CommandRejected', new CommandRejected('balance too low', { reason: 'INSUFFICIENT_FUNDS', details: { balance: 3 } })],
  ['CommandRejected without reason', new CommandRejected('closed')],
  ['HandlerFailedError', new HandlerFailedError('handler threw', { commandType: 'bank.Deposit' }, new TypeError('x'))],
  ['CommandTimeoutError', new CommandTimeoutError('account', 'acc-4', 'cmd-1', 500)],
  ['ReadTimeoutError', new ReadTimeoutError('account', 'acc-5', 9, 4, 250)],
  ['SnapshotStaleError', new SnapshotStaleError('account', 'acc-6', 1, 2)],
  ['SerializationError', new SerializationError('event type unknown', { eventType: 'bank.Gone', offset: 12 })],
  ['FencedError', new FencedError('partition taken over', { aggregate: 'account', partition: 3 })],
  ['ClosedError', new ClosedError('this esk application')],
  ['UnavailableError', new UnavailableError('the command log is unreachable', { commandId: 'cmd-8', id: 'acc-8' })],
  ['SchemaAheadError', new SchemaAheadError('account', 2, 3, 2)],
  ['CommandLogTruncatedError', new CommandLogTruncatedError('command topic recreated', { topic: 't', partition: 0, end: 0 })],
  ['EventsTruncatedError', new EventsTruncatedError('by-owner', 'account', 2, 10, 40, 90)],
  ['ProjectionFailedError', new ProjectionFailedError('handler threw on offset 7', { projection: 'by-owner', offset: 7 })],
  [
    'ClosedError with the command to retry',
    new ClosedError('this esk application', 'closed before the outcome arrived', { commandId: 'cmd-9', id: 'acc-9' }),
  ],
]

describe('errors', () => {
  it('covers every error code', () => {
    expect(new Set(examples.map(([, e]) => e.code))).toEqual(new Set(Object.values(ErrorCode)))
  })

  it.each(examples)('%s survives errorToPayload -> JSON -> errorFromPayload unchanged', (_name, original) => {
    // An outcome crosses processes as JSON.
    const payload = JSON.parse(JSON.stringify(errorToPayload(original))) as ReturnType<typeof errorToPayload>
    const rebuilt = errorFromPayload(payload)
    expect(rebuilt.code).toBe(original.code)
    expect(rebuilt.message).toBe(original.message)
    expect(rebuilt.name).toBe(original.name)
    expect(rebuilt.constructor).toBe(original.constructor)
    expect(rebuilt).toBeInstanceOf(EskError)
    expect(rebuilt).toBeInstanceOf(Error)
    expect(rebuilt.details).toEqual(original.details)
  })

  it('keeps the fields callers read besides the code', () => {
    const roundTrip = <E extends EskError>(e: E): E => errorFromPayload(JSON.parse(JSON.stringify(errorToPayload(e)))) as E
    expect(roundTrip(new CommandRejected('no', { reason: 'INSUFFICIENT_FUNDS' })).reason).toBe('INSUFFICIENT_FUNDS')
    expect(roundTrip(new CommandRejected('no')).reason).toBeUndefined()
    expect(roundTrip(new InvalidCommandError('bank.Open', ['owner is required'])).problems).toEqual(['owner is required'])
    expect(roundTrip(new VersionConflictError('account', 'a', 1, 2)).details).toEqual({
      aggregate: 'account',
      id: 'a',
      expected: 1,
      actual: 2,
    })
  })

  it('keeps the processor wording even when the details could rebuild another', () => {
    const rebuilt = errorFromPayload({
      code: ErrorCode.AggregateExists,
      message: 'account acc-1 already exists (seen by processor 7)',
      details: { aggregate: 'account', id: 'acc-1' },
    })
    expect(rebuilt).toBeInstanceOf(AggregateExistsError)
    expect(rebuilt.message).toBe('account acc-1 already exists (seen by processor 7)')
  })

  it('turns a payload with a code it does not know into an EskError that keeps the message', () => {
    const rebuilt = errorFromPayload({ code: 'SOMETHING_NEWER', message: 'from a newer version', details: { a: 1 } })
    expect(rebuilt).toBeInstanceOf(EskError)
    expect(rebuilt.message).toBe('from a newer version')
    expect(rebuilt.details).toEqual({ a: 1 })
  })

  it('says what to do in the messages a caller meets most', () => {
    expect(new VersionConflictError('account', 'a', 1, 2).message).toBe(
      "account 'a' is at version 2, not the expected 1; reload it with find() and decide again",
    )
    expect(new AggregateNotFoundError('account', 'a').message).toContain('create it with save() first')
    expect(new AggregateExistsError('account', 'a').message).toContain('use update() to change it')
    expect(new CommandTimeoutError('account', 'a', 'c', 10).message).toContain('retry with the same commandId')
    expect(new InvalidCommandError('bank.Deposit', ['a', 'b']).message).toBe(
      'command bank.Deposit is invalid: a; b; fix the command and send it again',
    )
  })

  it('keeps a handler failure cause locally (it does not cross processes)', () => {
    const cause = new TypeError('boom')
    expect(new HandlerFailedError('failed', {}, cause).cause).toBe(cause)
  })

  describe('hasCode', () => {
    it('matches esk errors by code', () => {
      expect(hasCode(new ClosedError('x'), ErrorCode.Closed)).toBe(true)
      expect(hasCode(new ClosedError('x'), ErrorCode.Fenced)).toBe(false)
    })

    it('works on plain objects, as errors from another copy of the package look', () => {
      expect(hasCode({ code: 'ESK_VERSION_CONFLICT' }, ErrorCode.VersionConflict)).toBe(true)
      expect(hasCode({ code: 'ESK_VERSION_CONFLICT', message: 'm' }, ErrorCode.Closed)).toBe(false)
      expect(hasCode(Object.assign(new Error('kafka'), { code: 'ESK_FENCED' }), ErrorCode.Fenced)).toBe(true)
    })

    it.each([null, undefined, 'ESK_CLOSED', 42, {}, { code: 42 }])('is false for %j', (value) => {
      expect(hasCode(value, ErrorCode.Closed)).toBe(false)
    })
  })
})
