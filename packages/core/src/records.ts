import type { ErrorPayload } from './errors.js'

/** A command as it travels on the command log (encoded as JSON). */
export interface CommandEnvelope {
  /** Unique per intent; a retry with the same id is never applied twice. */
  commandId: string
  /** Persisted command type name. */
  type: string
  aggregateId: string
  /** `create` comes from `save()`, `update` from `update()`. */
  kind: 'create' | 'update'
  /** Optimistic concurrency: reject unless the aggregate is at exactly this version. */
  expectedVersion?: number
  /** The command's fields, as produced by the serializer. */
  payload: unknown
  /** Reply address of the client that waits for the outcome. */
  replyTo?: string
  /** Milliseconds since the epoch when the client sent it. */
  sentAt: number
}

/**
 * Headers a record carries beside its value: the W3C trace context (`traceparent`, `tracestate`)
 * of the command that led to it, when telemetry is on. Kafka keeps them as record headers.
 */
export type RecordHeaders = Readonly<Record<string, string>>

/** A command read back from the command log: its position there and its raw text. */
export interface CommandRecord {
  /** Position in the command log partition (the Kafka offset). */
  position: number
  /** The encoded envelope; may be anything a producer wrote, so it is decoded defensively. */
  value: string
  /** Trace context its sender put beside it, if any. */
  headers?: RecordHeaders
}

/** An event the processor asks the event log to append. */
export interface EventToAppend {
  aggregateId: string
  /** Persisted event type name. */
  type: string
  /** Aggregate version after this event (1 for the first event of an aggregate). */
  version: number
  commandId: string
  /** Position of the command that produced it, so recovery knows which commands are done. */
  commandPosition: number
  /** The event's fields as JSON text. */
  payload: string
  /** Trace context of the command's processing, so read models continue its trace (set when telemetry is on). */
  headers?: RecordHeaders
}

/**
 * A command record that can never succeed (it cannot be decoded, names an unknown command type,
 * or its handler failed), kept with the reason in a dead-letter log in the same atomic step as
 * its position, so an operator can inspect it and send it again once fixed.
 */
export interface DeadLetter {
  /** Position of the record in the command log partition. */
  position: number
  /** The record exactly as it was read. */
  value: string
  /** Why it was refused. */
  reason: ErrorPayload
  /** What could be read of it. */
  aggregateId?: string
  commandId?: string
}

/** An event read back from the event log, with its offset. */
export interface StoredEvent extends EventToAppend {
  offset: number
  /** When the log recorded it, ms since the epoch, where the log keeps that (read models see it in their metadata). */
  timestamp?: number
}

/** An aggregate's state as stored by a snapshot store. */
export interface StoredSnapshot {
  aggregateId: string
  /** Number of events folded into this state. */
  version: number
  /** The aggregate's schema version when this was written. */
  schemaVersion: number
  /** Offset in the event log partition of the last event included. */
  offset: number
  /** The state's fields as JSON text. */
  state: string
  /**
   * The aggregate's most recent accepted commands that recorded events, oldest first, at most the
   * application's `dedupWindow`. A retry of one of them is answered from here and never applied
   * again. Derived from the log: a replay rebuilds exactly this list.
   */
  recent: RecentCommand[]
  /**
   * What the store that loaded or saved this snapshot keeps about how it encoded `recent`, so the
   * next save of the aggregate can build on it (the Redis store: the window's text). A store may
   * set it on the snapshots `load` returns and on those `save` was given, once they are saved;
   * the processor holds it with the snapshot and passes it back with the aggregate's next write,
   * and never reads it. A store must check that it still describes `recent` before using it.
   */
  windowMemo?: unknown
}

/** An accepted command remembered in its aggregate's snapshot for de-duplication. */
export interface RecentCommand {
  commandId: string
  /** Aggregate version after the command. */
  version: number
  /** Number of events it recorded (at least 1). */
  events: number
  /** Offset of its last event in the partition's event log, once known (absent in windows written before it was kept). */
  offset?: number
}

/**
 * How far the snapshots of a partition have caught up with its event log, and how far the command
 * log has been consumed into it. Only ever moves forward.
 */
export interface Checkpoint {
  /** The next event offset to replay from. */
  offset: number
  /** Highest command position whose events are included (-1 for none). */
  commandPosition: number
  /** Schema version of the snapshots written under this checkpoint. */
  schemaVersion: number
}

/** The result of a command, recorded for de-duplication and sent back to the client. */
export type Outcome =
  | {
      status: 'accepted'
      commandId: string
      aggregateId: string
      /** Aggregate version after the command. */
      version: number
      /** Number of events the command recorded. */
      events: number
      /** Offset of its last event in the partition's event log; absent when it recorded none. */
      offset?: number
    }
  | {
      status: 'rejected'
      commandId: string
      aggregateId: string
      error: ErrorPayload
    }

/** An outcome together with where its client waits for it. */
export interface Reply {
  replyTo: string
  outcome: Outcome
}
