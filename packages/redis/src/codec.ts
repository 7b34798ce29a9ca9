import { CHECKPOINT_FIELDS, LINES_ADDRESS_SUFFIX, replyChannel } from './keys.js'
import { InvalidArgumentError, SerializationError } from '@esk/core'
import { type Checkpoint, type Outcome, type RecentCommand, type Reply, type SnapshotWrite, type StoredSnapshot } from '@esk/core/driver'

/*
 * Values are JSON written by this package; reads check them anyway, because a key can be edited by
 * hand or written by another version, and a wrong number here would corrupt a partition silently.
 */

/**
 * What a snapshot's `recent` holds when its de-duplication window is in a field of its own
 * (`w:<aggregateId>`, see {@link encodeWindow}), as the previous version wrote it. Still read,
 * never written. Not a list, on purpose: versions that kept the window inside the snapshot refuse
 * such a record as corrupt and rebuild the partition from the log, instead of reading an empty
 * window and applying a retried command twice.
 */
export const WINDOW_IN_FIELD = 'separate'

/**
 * What a snapshot's `recent` holds when its window is split in two fields: older entries in
 * `w:<aggregateId>`, the newest in `t:<aggregateId>` (see `RedisSnapshotStore.save`), the window
 * being the last `split` entries of the two. Versions that know only {@link WINDOW_IN_FIELD} or a
 * list refuse it as corrupt and rebuild the partition from the log: reading the first field alone
 * would miss the newest entries.
 */
export interface SplitWindow {
  split: number
}

/**
 * The JSON text stored for a snapshot: exactly the StoredSnapshot fields, nothing a caller added,
 * with `recent` a {@link SplitWindow}: the window is stored beside it.
 */
export function encodeSnapshot(snapshot: StoredSnapshot): string {
  const { aggregateId, version, schemaVersion, offset, state } = snapshot
  const recent: SplitWindow = { split: snapshot.recent.length }
  return JSON.stringify({ aggregateId, version, schemaVersion, offset, state, recent })
}

/**
 * The text stored for a de-duplication window (or a part of one): its entries, oldest first, one
 * per line, each a compact `[commandId, version, events, offset]` (the offset of the command's last
 * event, absent in entries written before it was kept). JSON text holds no raw line break, so the
 * store can cut the oldest entries off a window's text and append new ones without parsing it.
 */
export function encodeWindow(entries: readonly RecentCommand[]): string {
  return entries.map(encodeRecent).join('\n')
}

/**
 * The text of `JSON.stringify([commandId, version, events, offset?])` for the integers an entry
 * holds, without building the array: a replay encodes one entry per event.
 */
function encodeRecent(entry: RecentCommand): string {
  const { commandId, version, events, offset } = entry
  const head = `[${JSON.stringify(commandId)},${version},${events}`
  return offset === undefined ? `${head}]` : `${head},${offset}]`
}

/** A window's texts as stored: the older entries, and the newest (empty for a record with one field). */
export interface StoredWindow {
  base: string
  tail: string
}

/**
 * Decodes a stored snapshot; `key` and `field` name where it came from in errors. `window` and
 * `tail` are the texts of its `w:` and `t:` fields: the first required when the snapshot says its
 * window is stored beside it, both ignored for a snapshot written with the window inside (by
 * earlier versions).
 */
export function decodeSnapshot(text: string, key: string, field: string, window?: string | null, tail?: string | null): StoredSnapshot {
  return decodeStoredSnapshot(text, key, field, window, tail).snapshot
}

/** {@link decodeSnapshot}, also giving the window's texts when it came from fields of its own. */
export function decodeStoredSnapshot(
  text: string,
  key: string,
  field: string,
  window: string | null | undefined,
  tail?: string | null,
): { snapshot: StoredSnapshot; stored: StoredWindow | undefined } {
  const raw = parseObject(text, key, field, 'snapshot')
  const fail = (problem: string): never => corrupt(key, field, 'snapshot', problem)
  if (typeof raw.aggregateId !== 'string') fail('aggregateId is not a string')
  if (typeof raw.state !== 'string') fail('state is not a string')
  for (const name of ['version', 'schemaVersion', 'offset'] as const) {
    if (!isNonNegativeInteger(raw[name])) fail(`${name} is not a non-negative integer`)
  }
  let entries: unknown[]
  let stored: StoredWindow | undefined
  const split = splitLength(raw.recent)
  if (split !== undefined || raw.recent === WINDOW_IN_FIELD) {
    if (typeof window !== 'string') fail(`its window is missing (the field 'w:${raw.aggregateId as string}')`)
    // A split window whose newest part was never written has none yet.
    stored = { base: window as string, tail: split !== undefined ? (tail ?? '') : '' }
    entries = parseWindow(stored.base, key, `w:${raw.aggregateId as string}`)
    if (stored.tail !== '') entries.push(...parseWindow(stored.tail, key, `t:${raw.aggregateId as string}`))
    if (split !== undefined) {
      if (split > entries.length) fail(`its window holds ${entries.length} entries, fewer than the ${split} recorded`)
      entries = entries.slice(entries.length - split)
    }
  } else if (raw.recent === undefined || Array.isArray(raw.recent)) {
    entries = (raw.recent as unknown[] | undefined) ?? []
  } else {
    return fail('recent is not a list')
  }
  const snapshot: StoredSnapshot = {
    aggregateId: raw.aggregateId as string,
    version: raw.version as number,
    schemaVersion: raw.schemaVersion as number,
    offset: raw.offset as number,
    state: raw.state as string,
    recent: entries.map((entry) => decodeRecent(entry, fail)),
  }
  return { snapshot, stored }
}

/** The entry count of a {@link SplitWindow}; undefined for anything else (which the caller refuses unless it is a list). */
function splitLength(recent: unknown): number | undefined {
  if (typeof recent !== 'object' || recent === null || Array.isArray(recent)) return undefined
  const { split } = recent as Partial<SplitWindow>
  return isNonNegativeInteger(split) ? split : undefined
}

function parseWindow(text: string, key: string, field: string): unknown[] {
  if (text === '') return []
  try {
    // Lines are whole JSON values, so joined by commas they make one array.
    const entries = JSON.parse(`[${text.replaceAll('\n', ',')}]`) as unknown
    if (Array.isArray(entries)) return entries
  } catch {
    // reported below
  }
  return corrupt(key, field, 'window', 'it is not one JSON entry per line')
}

function decodeRecent(entry: unknown, fail: (problem: string) => never): RecentCommand {
  const [commandId, version, events, at] = Array.isArray(entry) ? (entry as unknown[]) : []
  if (typeof commandId !== 'string' || !isNonNegativeInteger(version) || !isNonNegativeInteger(events)) {
    return fail('recent holds an entry that is not [commandId, version, events]')
  }
  if (at !== undefined && !isNonNegativeInteger(at)) return fail('recent holds an entry whose offset is not a non-negative integer')
  // One shape for every entry (offset undefined when absent) keeps reading windows fast.
  return { commandId, version, events, offset: at as number | undefined }
}

/** The JSON text stored and published for an outcome. */
export function encodeOutcome(outcome: Outcome): string {
  return JSON.stringify(outcome)
}

/**
 * The messages that carry `replies`, as (channel, message) pairs in the order they go out: one per
 * client that reads outcomes by line ({@link LINES_ADDRESS_SUFFIX}), its outcomes in the order of
 * `replies`; one per outcome for any other client. A PUBLISH costs Redis, and the subscriber,
 * about as much as the outcome it carries: a batch answers each client once.
 */
export function replyMessages(prefix: string, replies: readonly Reply[]): string[] {
  const messages: string[] = []
  let grouped: Map<string, number> | undefined
  for (const { replyTo, outcome } of replies) {
    const text = encodeOutcome(outcome)
    if (!replyTo.endsWith(LINES_ADDRESS_SUFFIX)) {
      messages.push(replyChannel(prefix, replyTo), text)
      continue
    }
    grouped ??= new Map()
    const at = grouped.get(replyTo)
    if (at === undefined) {
      grouped.set(replyTo, messages.length + 1)
      messages.push(replyChannel(prefix, replyTo), text)
    } else {
      messages[at] += `\n${text}`
    }
  }
  return messages
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
 * doubles), which is exact only for integers below 2^53, and takes each aggregate once.
 */
export function checkWrite(write: SnapshotWrite, where: string): void {
  const bad = (what: string, value: unknown, details: Record<string, unknown> = {}): never => {
    throw new InvalidArgumentError(`cannot save ${where}: ${what} must be a safe integer, got ${String(value)}`, {
      ...details,
      value,
    })
  }
  const ids = new Set<string>()
  for (const s of write.snapshots) {
    if (typeof s.aggregateId !== 'string' || s.aggregateId.length === 0) {
      throw new InvalidArgumentError(`cannot save ${where}: a snapshot has no aggregateId`)
    }
    // The save script reads what is stored for each aggregate once, before it writes any.
    if (ids.has(s.aggregateId)) {
      throw new InvalidArgumentError(`cannot save ${where}: two snapshots of '${s.aggregateId}' in one write; save the last one only`, {
        aggregateId: s.aggregateId,
      })
    }
    ids.add(s.aggregateId)
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
