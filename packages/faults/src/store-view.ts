import type { Redis } from 'ioredis'

/*
 * Everything the checker reads from Redis, in one module, so that a change of esk's key layout is
 * adapted here only. Two layouts are understood:
 *
 * - "outcome keys" (until issue 6): per partition `<prefix>{<aggregate>:<p>}:snapshots` HASH id ->
 *   JSON {aggregateId, version, schemaVersion, offset, state}, `:offsets` HASH id -> offset,
 *   `:checkpoint` HASH offset/commandPosition/schemaVersion, and one STRING key per command,
 *   `:outcome:<commandId>`, holding the outcome JSON;
 * - "windowed" (after issue 6): the same snapshot, offsets and checkpoint keys, the checkpoint with
 *   an `owner` field, each snapshot with a `recent` window of accepted command ids, and refusals in
 *   `:refusals` HASH (+ `:refusal-order` LIST).
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
  /** Command ids of the dedup window kept with the snapshot (windowed layout), empty otherwise. */
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
  /** Snapshot offsets from the offsets hash. */
  offsets: Map<string, number>
  checkpoint?: CheckpointEntry
  outcomes: StoredOutcome[]
  /** Values that could not be decoded, each with where and why. */
  corrupt: string[]
}

/** The store as the checker saw it. */
export interface StoreView {
  layout: 'outcome-keys' | 'windowed' | 'empty'
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
  return {
    base,
    snapshots: `${base}snapshots`,
    offsets: `${base}offsets`,
    checkpoint: `${base}checkpoint`,
    refusals: `${base}refusals`,
    outcomePattern: `${base.replace(/[*?[\]\\]/g, '\\$&')}outcome:*`,
  }
}

/** Reads every partition's snapshots, offsets, checkpoint and stored outcomes. */
export async function readStore(redis: Redis, location: StoreLocation): Promise<StoreView> {
  const partitions: PartitionStore[] = []
  let outcomeKeys = 0
  let windowed = false
  for (let p = 0; p < location.partitions; p++) {
    const keys = partitionKeys(location, p)
    const [snapshots, offsets, checkpoint, refusals] = await Promise.all([
      redis.hgetall(keys.snapshots),
      redis.hgetall(keys.offsets),
      redis.hgetall(keys.checkpoint),
      redis.hgetall(keys.refusals),
    ])
    const store: PartitionStore = { snapshots: new Map(), offsets: new Map(), outcomes: [], corrupt: [] }
    for (const [id, text] of Object.entries(snapshots)) {
      const decoded = decodeSnapshot(text)
      if (typeof decoded === 'string') store.corrupt.push(`${keys.snapshots} field ${id}: ${decoded}`)
      else {
        store.snapshots.set(id, decoded)
        if (decoded.recent.length > 0) windowed = true
      }
    }
    for (const [id, text] of Object.entries(offsets)) {
      const n = Number(text)
      if (Number.isSafeInteger(n)) store.offsets.set(id, n)
      else store.corrupt.push(`${keys.offsets} field ${id}: '${text}' is not an integer`)
    }
    const decodedCheckpoint = decodeCheckpoint(checkpoint)
    if (typeof decodedCheckpoint === 'string') store.corrupt.push(`${keys.checkpoint}: ${decodedCheckpoint}`)
    else if (decodedCheckpoint) {
      store.checkpoint = decodedCheckpoint
      if (decodedCheckpoint.owner !== undefined) windowed = true
    }
    for (const [field, text] of Object.entries(refusals)) {
      windowed = true
      const outcome = decodeOutcome(text, field, `${keys.refusals} field ${field}`)
      if (typeof outcome === 'string') store.corrupt.push(outcome)
      else store.outcomes.push(outcome)
    }
    for (const key of await scanKeys(redis, keys.outcomePattern)) {
      outcomeKeys += 1
      const text = await redis.get(key)
      if (text === null) continue // expired meanwhile
      const outcome = decodeOutcome(text, key.slice(`${keys.base}outcome:`.length), key)
      if (typeof outcome === 'string') store.corrupt.push(outcome)
      else store.outcomes.push(outcome)
    }
    partitions.push(store)
  }
  const layout = windowed ? 'windowed' : outcomeKeys > 0 ? 'outcome-keys' : partitions.some((s) => s.snapshots.size > 0) ? 'outcome-keys' : 'empty'
  return { layout, partitions }
}

/** A checkpoint and the snapshot offsets of one partition, read in one MULTI while the load runs. */
export interface CheckpointSample {
  at: number
  partition: number
  checkpoint?: CheckpointEntry
  /** aggregate id -> snapshot offset */
  offsets: Record<string, number>
}

/**
 * Reads each partition's checkpoint and snapshot offsets atomically (one MULTI per partition), so
 * the checker can tell whether a checkpoint ever claimed events whose snapshots were missing.
 */
export async function sampleCheckpoints(redis: Redis, location: StoreLocation): Promise<CheckpointSample[]> {
  const samples: CheckpointSample[] = []
  for (let p = 0; p < location.partitions; p++) {
    const keys = partitionKeys(location, p)
    const replies = await redis.multi().hgetall(keys.checkpoint).hgetall(keys.offsets).exec()
    if (!replies) continue
    const [[e1, checkpoint], [e2, offsets]] = replies as [[Error | null, Record<string, string>], [Error | null, Record<string, string>]]
    if (e1 || e2) continue
    const decoded = decodeCheckpoint(checkpoint)
    const sample: CheckpointSample = { at: Date.now(), partition: p, offsets: {} }
    if (decoded && typeof decoded !== 'string') sample.checkpoint = decoded
    for (const [id, text] of Object.entries(offsets)) {
      const n = Number(text)
      if (Number.isSafeInteger(n)) sample.offsets[id] = n
    }
    samples.push(sample)
  }
  return samples
}

async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  for (let i = 0; i < 100_000; i++) {
    const [nextCursor, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.push(...batch)
    cursor = nextCursor
    if (cursor === '0') break
  }
  return keys
}

function decodeSnapshot(text: string): SnapshotEntry | string {
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
  const recent = Array.isArray(raw.recent)
    ? raw.recent
        .map((r) => (typeof r === 'string' ? r : typeof r === 'object' && r !== null ? (r as { commandId?: unknown }).commandId : undefined))
        .filter((r): r is string => typeof r === 'string')
    : []
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
  if (Object.keys(fields).length === 0) return undefined
  const num = (name: string): number | undefined => {
    const n = fields[name] === undefined ? NaN : Number(fields[name])
    return Number.isSafeInteger(n) ? n : undefined
  }
  const offset = num('offset')
  const commandPosition = num('commandPosition')
  const schemaVersion = num('schemaVersion')
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
