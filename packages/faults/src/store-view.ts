import type { Redis } from 'ioredis'

/*
 * Everything the checker reads from Redis, in one module, so that a change of esk's key layout is
 * adapted here only. The layout (see docs/operations.md), per partition with the hash tag
 * `{<aggregate>:<p>}`:
 *
 * - `<prefix>{<aggregate>:<p>}:state` HASH: `s:<id>` snapshot JSON {aggregateId, version,
 *   schemaVersion, offset, state, recent}, where `recent` is `{"split": n}` and the dedup window is
 *   the last n entries of `w:<id>` and `t:<id>`, one `[commandId, version, events, offset]` per
 *   line (earlier versions: `recent` is `"separate"` and the window all of `w:<id>`, or `recent` is
 *   the list of entries itself), `o:<id>` its offset, `@offset`, `@position`, `@schema` the
 *   checkpoint, `@owner` the owner token, `@ready`;
 * - `<prefix>{<aggregate>:<p>}:unlogged` HASH JSON [aggregateId, commandId] -> outcome JSON of a
 *   refusal (or an acceptance without events).
 *
 * Values are read leniently: what cannot be parsed is reported, never thrown, because a corrupt
 * value is itself a finding.
 */

/** A snapshot as stored. `state` is the parsed JSON of the state text, or undefined when it did not parse. */
export interface SnapshotEntry {
  aggregateId: string
  version: number
  offset: number
  schemaVersion: number
  state: Record<string, unknown> | undefined
  /** Command ids of the dedup window kept with the snapshot. */
  recent: string[]
}

/** A partition's checkpoint as stored. */
export interface CheckpointEntry {
  offset: number
  commandPosition: number
  schemaVersion: number
  owner?: string
}

/** An outcome the store would serve to a retry. */
export interface StoredOutcome {
  commandId: string
  aggregateId?: string
  status: 'accepted' | 'rejected'
  version?: number
  code?: string
  /** The key (and field) it was read from. */
  where: string
}

/** One partition's keys, decoded. */
export interface PartitionStore {
  snapshots: Map<string, SnapshotEntry>
  /** Snapshot offsets from the `o:` fields. */
  offsets: Map<string, number>
  checkpoint?: CheckpointEntry
  outcomes: StoredOutcome[]
  /** Values that could not be decoded, each with where and why. */
  corrupt: string[]
}

/** The store as the checker saw it. */
export interface StoreView {
  partitions: PartitionStore[]
}

/** Which keys: the store's prefix, the aggregate type name and its partition count. */
export interface StoreLocation {
  prefix: string
  aggregate: string
  partitions: number
}

/** The keys of one partition. */
export function partitionKeys(location: StoreLocation, partition: number) {
  const base = `${location.prefix}{${location.aggregate}:${partition}}:`
  return { base, state: `${base}state`, unlogged: `${base}unlogged` }
}

/** Reads every partition's snapshots, offsets, checkpoint and stored outcomes. */
export async function readStore(redis: Redis, location: StoreLocation): Promise<StoreView> {
  const partitions: PartitionStore[] = []
  for (let p = 0; p < location.partitions; p++) {
    const keys = partitionKeys(location, p)
    const [state, unlogged] = await Promise.all([redis.hgetall(keys.state), redis.hgetall(keys.unlogged)])
    const store = decodeState(state, keys.state)
    for (const [field, text] of Object.entries(unlogged)) {
      const outcome = decodeOutcome(text, commandIdOf(field), `${keys.unlogged} field ${field}`)
      if (typeof outcome === 'string') store.corrupt.push(outcome)
      else store.outcomes.push(outcome)
    }
    partitions.push(store)
  }
  return { partitions }
}

/** A checkpoint and the snapshot offsets of one partition, read in one command while the load runs. */
export interface CheckpointSample {
  at: number
  partition: number
  checkpoint?: CheckpointEntry
  /** aggregate id -> snapshot offset */
  offsets: Record<string, number>
}

/**
 * Reads each partition's checkpoint and snapshot offsets atomically (one HGETALL of its state
 * hash), so the checker can tell whether a checkpoint ever claimed events whose snapshots were
 * missing.
 */
export async function sampleCheckpoints(redis: Redis, location: StoreLocation): Promise<CheckpointSample[]> {
  const samples: CheckpointSample[] = []
  for (let p = 0; p < location.partitions; p++) {
    const keys = partitionKeys(location, p)
    const store = decodeState(await redis.hgetall(keys.state), keys.state)
    const sample: CheckpointSample = { at: Date.now(), partition: p, offsets: Object.fromEntries(store.offsets) }
    if (store.checkpoint) sample.checkpoint = store.checkpoint
    samples.push(sample)
  }
  return samples
}

/** Splits a partition's state hash into snapshots, offsets and checkpoint. */
function decodeState(fields: Record<string, string>, key: string): PartitionStore {
  const store: PartitionStore = { snapshots: new Map(), offsets: new Map(), outcomes: [], corrupt: [] }
  const checkpoint: Record<string, string> = {}
  for (const [field, text] of Object.entries(fields)) {
    if (field.startsWith('s:')) {
      const id = field.slice(2)
      const decoded = decodeSnapshot(text, fields[`w:${id}`], fields[`t:${id}`])
      if (typeof decoded === 'string') store.corrupt.push(`${key} field ${field}: ${decoded}`)
      else store.snapshots.set(field.slice(2), decoded)
    } else if (field.startsWith('o:')) {
      const n = Number(text)
      if (Number.isSafeInteger(n)) store.offsets.set(field.slice(2), n)
      else store.corrupt.push(`${key} field ${field}: '${text}' is not an integer`)
    } else if (field.startsWith('@')) {
      checkpoint[field.slice(1)] = text
    }
  }
  const decoded = decodeCheckpoint(checkpoint)
  if (typeof decoded === 'string') store.corrupt.push(`${key}: ${decoded}`)
  else if (decoded) store.checkpoint = decoded
  return store
}

function commandIdOf(field: string): string {
  try {
    const pair = JSON.parse(field) as unknown
    return Array.isArray(pair) && typeof pair[1] === 'string' ? pair[1] : field
  } catch {
    return field
  }
}

function decodeSnapshot(text: string, window: string | undefined, tail: string | undefined): SnapshotEntry | string {
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(text) as Record<string, unknown>
  } catch {
    return 'not JSON'
  }
  if (typeof raw !== 'object' || raw === null) return 'not a JSON object'
  for (const name of ['version', 'offset', 'schemaVersion']) {
    if (!Number.isSafeInteger(raw[name])) return `${name} is not an integer`
  }
  if (typeof raw.aggregateId !== 'string') return 'aggregateId is not a string'
  let state: Record<string, unknown> | undefined
  if (typeof raw.state === 'string') {
    try {
      state = JSON.parse(raw.state) as Record<string, unknown>
    } catch {
      state = undefined
    }
  } else if (typeof raw.state === 'object' && raw.state !== null) {
    state = raw.state as Record<string, unknown>
  }
  if (!state) return 'state is not JSON text of an object'
  let entries: unknown[] = []
  // The window in fields of its own: all of `w:` ("separate"), or the last n entries of `w:` and `t:` ({split: n}).
  const split = typeof raw.recent === 'object' && raw.recent !== null ? (raw.recent as { split?: unknown }).split : undefined
  if (raw.recent === 'separate' || Number.isSafeInteger(split)) {
    if (window === undefined) return 'its window field is missing'
    const text = [window, split === undefined ? '' : (tail ?? '')].filter((part) => part !== '').join('\n')
    try {
      entries = text === '' ? [] : text.split('\n').map((line) => JSON.parse(line) as unknown)
    } catch {
      return 'its window is not one JSON entry per line'
    }
    if (typeof split === 'number') {
      if (split > entries.length) return `its window holds ${entries.length} entries, fewer than the ${split} recorded`
      entries = entries.slice(entries.length - split)
    }
  } else if (Array.isArray(raw.recent)) {
    entries = raw.recent
  }
  const recent = entries
    .map((r) => (Array.isArray(r) ? (r[0] as unknown) : undefined))
    .filter((r): r is string => typeof r === 'string')
  return {
    aggregateId: raw.aggregateId,
    version: raw.version as number,
    offset: raw.offset as number,
    schemaVersion: raw.schemaVersion as number,
    state,
    recent,
  }
}

function decodeCheckpoint(fields: Record<string, string>): CheckpointEntry | undefined | string {
  // An owner or ready mark alone (a partition taken, nothing saved yet) is no checkpoint.
  if (fields.offset === undefined && fields.position === undefined && fields.schema === undefined) return undefined
  const num = (name: string): number | undefined => {
    const n = fields[name] === undefined ? NaN : Number(fields[name])
    return Number.isSafeInteger(n) ? n : undefined
  }
  const offset = num('offset')
  const commandPosition = num('position')
  const schemaVersion = num('schema')
  if (offset === undefined || commandPosition === undefined || schemaVersion === undefined) {
    return `fields are not integers: ${JSON.stringify(fields)}`
  }
  return { offset, commandPosition, schemaVersion, ...(fields.owner !== undefined && { owner: fields.owner }) }
}

function decodeOutcome(text: string, fallbackCommandId: string, where: string): StoredOutcome | string {
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(text) as Record<string, unknown>
  } catch {
    return `${where}: outcome is not JSON`
  }
  if (typeof raw !== 'object' || raw === null) return `${where}: outcome is not an object`
  const commandId = typeof raw.commandId === 'string' ? raw.commandId : fallbackCommandId
  const aggregateId = typeof raw.aggregateId === 'string' ? raw.aggregateId : undefined
  const error = raw.error as { code?: unknown } | undefined
  const code = typeof error?.code === 'string' ? error.code : typeof raw.code === 'string' ? raw.code : undefined
  const status = raw.status === 'accepted' ? 'accepted' : raw.status === 'rejected' || code ? 'rejected' : undefined
  if (!status) return `${where}: outcome has no status`
  return {
    commandId,
    status,
    where,
    ...(aggregateId !== undefined && { aggregateId }),
    ...(Number.isSafeInteger(raw.version) && { version: raw.version as number }),
    ...(code !== undefined && { code }),
  }
}
