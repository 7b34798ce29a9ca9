import { CHECKPOINT_FIELDS } from './keys.js'
import { InvalidArgumentError, SerializationError } from '@esk/core'
import { type Checkpoint, type Outcome, type RecentCommand, type SnapshotWrite, type StoredSnapshot } from '@esk/core/driver'

/*
 * Values are JSON written by this package; reads check them anyway, because a key can be edited by
 * hand or written by another version, and a wrong number here would corrupt a partition silently.
 */

/**
 * The JSON text stored for a snapshot: exactly the StoredSnapshot fields, nothing a caller added;
 * the de-duplication window as compact `[commandId, version, events, offset]` entries (the offset
 * of the command's last event, absent in entries written before it was kept).
 */
export function encodeSnapshot(snapshot: StoredSnapshot): string {
  const { aggregateId, version, schemaVersion, offset, state } = snapshot
  const head = JSON.stringify({ aggregateId, version, schemaVersion, offset, state })
  // The same text as JSON.stringify of the whole record, with each window entry encoded once.
  return `${head.slice(0, -1)},"recent":[${snapshot.recent.map(encodeRecent).join(',')}]}`
}

/**
 * Window entries are never changed once made (a processor makes a new one instead), and an
 * aggregate's entries are saved again with every later command of it: each is encoded once.
 */
const encodedEntries = new WeakMap<RecentCommand, string>()

function encodeRecent(entry: RecentCommand): string {
  let text = encodedEntries.get(entry)
  if (text === undefined) {
    const { commandId, version, events, offset } = entry
    text = JSON.stringify(offset === undefined ? [commandId, version, events] : [commandId, version, events, offset])
    encodedEntries.set(entry, text)
  }
  return text
}

/** Decodes a stored snapshot; `key` and `field` name where it came from in the error. */
export function decodeSnapshot(text: string, key: string, field: string): StoredSnapshot {
  const raw = parseObject(text, key, field, 'snapshot')
  const fail = (problem: string): never => corrupt(key, field, 'snapshot', problem)
  if (typeof raw.aggregateId !== 'string') fail('aggregateId is not a string')
  if (typeof raw.state !== 'string') fail('state is not a string')
  for (const name of ['version', 'schemaVersion', 'offset'] as const) {
    if (!isNonNegativeInteger(raw[name])) fail(`${name} is not a non-negative integer`)
  }
  const recent = raw.recent ?? []
  if (!Array.isArray(recent)) fail('recent is not a list')
  const entries = (recent as unknown[]).map((entry) => {
    const [commandId, version, events, at] = Array.isArray(entry) ? (entry as unknown[]) : []
    if (typeof commandId !== 'string' || !isNonNegativeInteger(version) || !isNonNegativeInteger(events)) {
      return fail('recent holds an entry that is not [commandId, version, events]')
    }
    if (at !== undefined && !isNonNegativeInteger(at)) return fail('recent holds an entry whose offset is not a non-negative integer')
    // One shape for every entry (offset undefined when absent) keeps reading windows fast.
    return { commandId, version, events, offset: at as number | undefined }
  })
  return {
    aggregateId: raw.aggregateId as string,
    version: raw.version as number,
    schemaVersion: raw.schemaVersion as number,
    offset: raw.offset as number,
    state: raw.state as string,
    recent: entries,
  }
}

/** The JSON text stored and published for an outcome. */
export function encodeOutcome(outcome: Outcome): string {
  return JSON.stringify(outcome)
}

/**
 * Decodes an outcome read from the key `where`, or, when `published`, received on the channel
 * `where` (then there is nothing stored to repair).
 */
export function decodeOutcome(text: string, where: string, published = false): Outcome {
  const raw = parseObject(text, where, undefined, 'outcome', published)
  const fail = (problem: string): never => corrupt(where, undefined, 'outcome', problem, published)
  if (typeof raw.commandId !== 'string') fail('commandId is not a string')
  if (typeof raw.aggregateId !== 'string') fail('aggregateId is not a string')
  if (raw.status === 'accepted') {
    if (!isNonNegativeInteger(raw.version)) fail('version is not a non-negative integer')
    if (!isNonNegativeInteger(raw.events)) fail('events is not a non-negative integer')
  } else if (raw.status === 'rejected') {
    const error = raw.error as Record<string, unknown> | null | undefined
    const valid = typeof error === 'object' && error !== null
    if (!valid || typeof error.code !== 'string' || typeof error.message !== 'string') {
      fail('error is not an object with a code and a message')
    }
  } else {
    fail(`status is neither 'accepted' nor 'rejected'`)
  }
  return raw as unknown as Outcome
}

/**
 * Decodes the checkpoint fields as HMGET returns them (offset, commandPosition, schemaVersion);
 * undefined when none is stored.
 */
export function decodeCheckpoint(fields: ReadonlyArray<string | null>, key: string): Checkpoint | undefined {
  if (fields.every((value) => value === null)) return undefined
  const [offset, commandPosition, schemaVersion] = fields.map((value, i) => {
    const number = value === null ? NaN : Number(value)
    if (!Number.isSafeInteger(number) || number < (i === 1 ? -1 : 0)) {
      const problem = value === null ? 'it is missing' : `'${value}' is not a valid integer`
      corrupt(key, CHECKPOINT_FIELDS[i], 'checkpoint', problem)
    }
    return number
  }) as [number, number, number]
  return { offset, commandPosition, schemaVersion }
}


/**
 * Rejects a write the Lua script cannot hold exactly: it compares offsets as Lua numbers (IEEE
 * doubles), which is exact only for integers below 2^53.
 */
export function checkWrite(write: SnapshotWrite, where: string): void {
  const bad = (what: string, value: unknown, details: Record<string, unknown> = {}): never => {
    throw new InvalidArgumentError(`cannot save ${where}: ${what} must be a safe integer, got ${String(value)}`, {
      ...details,
      value,
    })
  }
  for (const s of write.snapshots) {
    if (typeof s.aggregateId !== 'string' || s.aggregateId.length === 0) {
      throw new InvalidArgumentError(`cannot save ${where}: a snapshot has no aggregateId`)
    }
    for (const name of ['version', 'schemaVersion', 'offset'] as const) {
      if (!isNonNegativeInteger(s[name])) {
        bad(`snapshot ${name} of '${s.aggregateId}'`, s[name], { aggregateId: s.aggregateId })
      }
    }
    if (typeof s.state !== 'string') {
      throw new InvalidArgumentError(`cannot save ${where}: the state of '${s.aggregateId}' is not a string`)
    }
  }
  const c = write.checkpoint
  if (!isNonNegativeInteger(c.offset)) bad('checkpoint offset', c.offset)
  if (!Number.isSafeInteger(c.commandPosition) || c.commandPosition < -1) {
    bad('checkpoint commandPosition (>= -1)', c.commandPosition)
  }
  if (!isNonNegativeInteger(c.schemaVersion)) bad('checkpoint schemaVersion', c.schemaVersion)
  for (const o of write.unlogged) {
    if (typeof o.commandId !== 'string' || o.commandId.length === 0) {
      throw new InvalidArgumentError(`cannot save ${where}: an outcome has no commandId`)
    }
  }
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function parseObject(
  text: string,
  key: string,
  field: string | undefined,
  what: string,
  published = false,
): Record<string, unknown> {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return corrupt(key, field, what, 'it is not JSON', published)
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return corrupt(key, field, what, 'it is not a JSON object', published)
  }
  return raw as Record<string, unknown>
}

function corrupt(key: string, field: string | undefined, what: string, problem: string, published = false): never {
  if (published) {
    throw new SerializationError(
      `a reply on channel '${key}' is not an outcome esk published: ${problem}; check what else publishes there`,
      { channel: key },
    )
  }
  const at = field === undefined ? `'${key}'` : `field '${field}' of '${key}'`
  throw new SerializationError(
    `the ${what} at ${at} is not one esk wrote: ${problem}; delete it, or reset the partition so that it is ` +
      `rebuilt from the event log`,
    { key, ...(field !== undefined && { field }) },
  )
}
