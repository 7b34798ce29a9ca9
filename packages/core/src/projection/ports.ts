import type { ErrorPayload } from '../errors.js'
import type { StoredEvent } from '../records.js'
import type { StreamSpec } from '../ports.js'

/*
 * The ports of the read side. A projection store keeps, per generation of a projection, the view's
 * data and, beside it, the position reached in each partition ("lane") of the event logs it reads.
 * Both change in one atomic step, so a batch of events is applied exactly once whatever crashes.
 */

/** The name of a lane (one partition of one aggregate type's event log) inside a projection store. */
export function laneOf(aggregate: string, partition: number): string {
  return `${aggregate}:${partition}`
}

/** One partition of one aggregate type's event log, as a projection reads it. */
export interface Lane {
  aggregate: string
  partition: number
}

/** A change to a view, as a handler staged it. Values are JSON text; scores and amounts are finite numbers. */
export type ViewChange =
  | { op: 'set'; key: string; value: string }
  | { op: 'del'; key: string }
  | { op: 'incr'; key: string; by: number }
  | { op: 'hset'; key: string; field: string; value: string }
  | { op: 'hdel'; key: string; field: string }
  | { op: 'hincr'; key: string; field: string; by: number }
  | { op: 'hclear'; key: string }
  | { op: 'zadd'; key: string; member: string; score: number }
  | { op: 'zrem'; key: string; member: string }
  | { op: 'zincr'; key: string; member: string; by: number }
  | { op: 'zclear'; key: string }

/**
 * A value a handler read from the store, as it was read (raw text, or null when absent). The write
 * is refused with `conflict` when the value changed since: another partition wrote it in between,
 * and the batch is handled again on the new value.
 */
export type ViewGuard =
  | { read: 'get'; key: string; value: string | null }
  | { read: 'hget'; key: string; field: string; value: string | null }
  | { read: 'zscore'; key: string; member: string; value: string | null }

/** A read of a view. Strings and hash values come back as raw JSON text, scores as raw text too. */
export type ViewRead =
  | { read: 'get'; key: string }
  | { read: 'hget'; key: string; field: string }
  | { read: 'hgetall'; key: string }
  | { read: 'hlen'; key: string }
  | { read: 'zscore'; key: string; member: string }
  | { read: 'zrange'; key: string; start: number; stop: number; reverse: boolean }
  | { read: 'zrangebyscore'; key: string; min: number; max: number; reverse: boolean; offset: number; count: number }
  | { read: 'zcard'; key: string }

/**
 * What each {@link ViewRead} returns: `get`, `hget`, `zscore` a string or null; `hgetall` a list of
 * [field, value]; `zrange`/`zrangebyscore` a list of [member, score]; `hlen`/`zcard` a number.
 */
export type ViewReadResult = string | null | number | Array<[string, string]> | Array<[string, number]>

/** An event a projection could not handle, parked with the reason instead of stopping its partition. */
export interface ProjectionDeadLetter {
  aggregate: string
  partition: number
  offset: number
  /** Persisted event type name. */
  type: string
  aggregateId: string
  version: number
  /** The event's JSON text, as it is in the log. */
  payload: string
  /** Why it was parked (the last attempt's error). */
  error: ErrorPayload
  /** Attempts made before it was parked. */
  attempts: number
  /** When it was parked, ms since the epoch. */
  parkedAt: number
}

/** One applied step of a lane: the view's changes and the lane's new position, together. */
export interface ProjectionWrite {
  /** The lane's stored position this write continues from; undefined when none is stored yet. */
  from: number | undefined
  /** The lane's position after this write: the offset of the next event to read. */
  to: number
  changes: ViewChange[]
  guards: ViewGuard[]
  deadLetters: ProjectionDeadLetter[]
}

/**
 * The result of {@link ProjectionStore.apply}: applied; refused because a guarded value changed
 * (`guard` is its index; nothing was written); or refused because a change cannot apply to what is
 * stored (`change` is its index: an increment of a value that is not a number; nothing was written).
 */
export type ApplyResult =
  | { status: 'applied' }
  | { status: 'conflict'; guard: number }
  | { status: 'invalid'; change: number; reason: string }

/** A generation of a projection: one complete copy of its view and positions, built by one version of its code. */
export interface GenerationInfo {
  /** Unique within the projection, increasing. */
  id: number
  /** The projection version whose handlers build it. */
  version: number
  /** True for the generation readers are served from. */
  live: boolean
  /** Why it exists: the first build, a build for a new version, a rebuild beside the live one, or a reset. */
  purpose: 'initial' | 'upgrade' | 'rebuild' | 'reset'
  /** When it was created, ms since the epoch. */
  createdAt: number
}

/** How {@link ProjectionStore.create} makes a generation. */
export type CreateMode =
  /** The live generation if there is one (of any version), else a new one made live at once. */
  | 'initial'
  /** The generation being built for this version beside an older live one, created if none is. */
  | 'upgrade'
  /** A new generation built beside the live one (same version), swapped in by the caller. */
  | 'rebuild'
  /** A new, empty generation made live at once; the previous live one and its data are dropped. */
  | 'reset'

/** The generations of a projection. */
export interface ProjectionMeta {
  live: GenerationInfo | undefined
  generations: GenerationInfo[]
}

/**
 * Where projections keep their views and positions. Every write to a lane of a generation is fenced:
 * it carries the owner token taken with {@link acquire} and the position it continues from, and is
 * refused with `ESK_FENCED` when either is not the stored one, or the generation was dropped.
 */
export interface ProjectionStore {
  /** The projection's generations; `live` is undefined when none was ever built. */
  describe(projection: string): Promise<ProjectionMeta>
  /**
   * Creates (or finds, see {@link CreateMode}) a generation, atomically. A `reset` given `replacing`
   * happens only while that generation is live; otherwise the live one is returned unchanged.
   */
  create(projection: string, version: number, mode: CreateMode, replacing?: number): Promise<GenerationInfo>
  /**
   * Makes `to` the live generation if `from` is still the live one (or none is); drops `from` and
   * its data. Returns false, changing nothing, when the live generation is another.
   */
  swap(projection: string, from: number | undefined, to: number): Promise<boolean>
  /** Drops a generation that is not live, and its data. */
  drop(projection: string, generation: number): Promise<void>
  /**
   * Makes `token` the only writer of a lane of a generation and returns the lane's stored position
   * (undefined when none is stored). Throws `ESK_FENCED` when the generation no longer exists.
   */
  acquire(projection: string, generation: number, lane: string, token: string): Promise<number | undefined>
  /** The stored position of every lane of a generation. */
  positions(projection: string, generation: number): Promise<Map<string, number>>
  /** Applies a lane's changes, dead letters and new position in one atomic step (see {@link ApplyResult}). */
  apply(projection: string, generation: number, lane: string, token: string, write: ProjectionWrite): Promise<ApplyResult>
  /**
   * Reads a generation, or the live one: all reads see one state. Throws `ESK_UNAVAILABLE` when the
   * generation does not exist (dropped, or nothing was built yet).
   */
  read(projection: string, generation: number | 'live', reads: ViewRead[]): Promise<ViewReadResult[]>
  /** The events parked in a generation, oldest first. */
  deadLetters(projection: string, generation: number): Promise<ProjectionDeadLetter[]>
  /** Releases connections this store opened. */
  close(): Promise<void>
}

/** The offsets a partition of an event log holds now: `start` is its first, `end` the next to be written. */
export interface LogBounds {
  start: number
  end: number
}

/** What a projection asks the transport for: the events of these streams, partition by partition. */
export interface EventFeedSpec {
  /**
   * The consumer's identity. Feeds of one group split the partitions between them (each partition
   * to one at a time); a group used by one feed only receives every partition.
   */
  group: string
  streams: readonly StreamSpec[]
  /** The group is used once (a global projection's, a rebuild's): the transport may delete it when the feed stops. */
  ephemeral?: boolean
}

/** A partition handed to a feed, until `signal` aborts. */
export interface EventFeedLease {
  readonly stream: StreamSpec
  readonly partition: number
  readonly signal: AbortSignal
}

/** The consuming side of one partition of a feed, created by core. */
export interface EventFeedHandle {
  /** The offset to read from: the stored position. The transport starts there (and never from its own offsets). */
  readonly position: number
  /**
   * Applies events read from `position` on, in log order. `next` is the offset after the last record
   * read, which may be past the last event (the log's own records, such as transaction markers,
   * take offsets too); an empty list with a larger `next` only moves the position. Resolves once
   * stored; rejects to have the transport close the handle and open the partition again.
   */
  deliver(events: StoredEvent[], next: number): Promise<void>
  /** Stops: waits for the delivery in flight, applies nothing after. */
  close(): Promise<void>
}

/** What core offers a transport for a feed. */
export interface EventFeedHost {
  /** Opens a partition: takes its lane in the store and returns where to read from. Retried by the transport when it throws. */
  open(lease: EventFeedLease): Promise<EventFeedHandle>
  /** Reports a background failure (never thrown to a caller). */
  reportError(error: unknown, context: { stream: string; partition?: number }): void
}

/** A running feed. */
export interface EventFeed {
  /** Closes every open partition and opens it again (each handle reads its stored position anew). */
  reopen(): Promise<void>
  /** Stops reading: closes every partition and leaves the group. */
  stop(): Promise<void>
}
