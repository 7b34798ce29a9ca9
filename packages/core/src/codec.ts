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
  const problems: string[] = []
  const text = (key: string): string | undefined => {
    const v = r[key]
    if (typeof v === 'string' && v.length > 0) return v
    problems.push(`${key} must be a non-empty string`)
    return undefined
  }
  const commandId = text('commandId')
  const type = text('type')
  const aggregateId = text('aggregateId')
  if (r.kind !== 'create' && r.kind !== 'update') problems.push(`kind must be 'create' or 'update'`)
  const expected = r.expectedVersion
  if (expected !== undefined && !(Number.isInteger(expected) && (expected as number) >= 0)) {
    problems.push('expectedVersion must be a non-negative integer when given')
  }
  if (typeof r.payload !== 'object' || r.payload === null || Array.isArray(r.payload)) {
    problems.push('payload must be a JSON object')
  }
  const replyTo = typeof r.replyTo === 'string' ? r.replyTo : undefined
  if (problems.length > 0) {
    return {
      error: new InvalidCommandError(type ?? 'unknown', problems),
      ...(commandId !== undefined && { commandId }),
      ...(aggregateId !== undefined && { aggregateId }),
      ...(replyTo !== undefined && { replyTo }),
    }
  }
  return {
    commandId: commandId!,
    type: type!,
    aggregateId: aggregateId!,
    kind: r.kind as CommandEnvelope['kind'],
    ...(expected !== undefined && { expectedVersion: expected as number }),
    payload: r.payload,
    ...(replyTo !== undefined && { replyTo }),
    sentAt: typeof r.sentAt === 'number' ? r.sentAt : 0,
  }
}

/** True when decoding failed. */
export function isUndecodable(value: CommandEnvelope | UndecodableCommand): value is UndecodableCommand {
  return 'error' in value
}
