import { InvalidCommandError } from './errors.js'
import type { CommandEnvelope } from './records.js'

/** Encodes a command envelope for the command log. */
export function encodeEnvelope(envelope: CommandEnvelope): string {
  return JSON.stringify(envelope)
}

/** What could be read of a command record that failed to decode: enough to answer its sender. */
export interface UndecodableCommand {
  error: InvalidCommandError
  commandId?: string
  aggregateId?: string
  replyTo?: string
}

/**
 * Decodes a command record. Anyone with access to the topic can write to it, so every field is
 * checked; a record that fails returns what it could read, so its sender can still be answered.
 */
export function decodeEnvelope(value: string): CommandEnvelope | UndecodableCommand {
  let raw: unknown
  try {
    raw = JSON.parse(value)
  } catch {
    return { error: new InvalidCommandError('unknown', ['the record is not JSON']) }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { error: new InvalidCommandError('unknown', ['the record is not a JSON object']) }
  }
  const r = raw as Record<string, unknown>
  // Every command record passes here: no closure, and one object literal per outcome.
  let problems: string[] | undefined
  const commandId = r.commandId
  const type = r.type
  const aggregateId = r.aggregateId
  if (!isText(commandId)) (problems ??= []).push('commandId must be a non-empty string')
  if (!isText(type)) (problems ??= []).push('type must be a non-empty string')
  if (!isText(aggregateId)) (problems ??= []).push('aggregateId must be a non-empty string')
  if (r.kind !== 'create' && r.kind !== 'update') (problems ??= []).push(`kind must be 'create' or 'update'`)
  const expected = r.expectedVersion
  if (expected !== undefined && !(Number.isInteger(expected) && (expected as number) >= 0)) {
    ;(problems ??= []).push('expectedVersion must be a non-negative integer when given')
  }
  if (typeof r.payload !== 'object' || r.payload === null || Array.isArray(r.payload)) {
    ;(problems ??= []).push('payload must be a JSON object')
  }
  const replyTo = typeof r.replyTo === 'string' ? r.replyTo : undefined
  if (problems) {
    const undecodable: UndecodableCommand = { error: new InvalidCommandError(isText(type) ? type : 'unknown', problems) }
    if (isText(commandId)) undecodable.commandId = commandId
    if (isText(aggregateId)) undecodable.aggregateId = aggregateId
    if (replyTo !== undefined) undecodable.replyTo = replyTo
    return undecodable
  }
  const envelope: CommandEnvelope = {
    commandId: commandId as string,
    type: type as string,
    aggregateId: aggregateId as string,
    kind: r.kind as CommandEnvelope['kind'],
    payload: r.payload,
    sentAt: typeof r.sentAt === 'number' ? r.sentAt : 0,
  }
  if (expected !== undefined) envelope.expectedVersion = expected as number
  if (replyTo !== undefined) envelope.replyTo = replyTo
  return envelope
}

function isText(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0
}

/** True when decoding failed. */
export function isUndecodable(value: CommandEnvelope | UndecodableCommand): value is UndecodableCommand {
  return 'error' in value
}
