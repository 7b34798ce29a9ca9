import type {
  Checkpoint,
  CommandRecord,
  DeadLetter,
  EventToAppend,
  Outcome,
  RecordHeaders,
  Reply,
  StoredEvent,
  StoredSnapshot,
} from './records.js'
import type { EventFeed, EventFeedHost, EventFeedSpec, LogBounds, ProjectionStore } from './projection/ports.js'

/**
 * The logs of one aggregate type. The command log and the event log have the same number of
 * partitions, and an aggregate's commands and events live in the partition of the same number.
 */
export interface StreamSpec {
  /** Aggregate type name as declared with `@Aggregate`. */
  readonly aggregate: string
  /** Partition count of both logs. */
  readonly partitions: number
}

/**
 * Writes one owned partition: appends events and advances the command position in one atomic
 * step. There is no compare-and-swap on append: exclusivity comes from fencing, not from the log.
 */
export interface PartitionWriter {
  /**
   * Appends `events` to the event log partition, `deadLetters` to the dead-letter log, and marks
   * every command up to and including `commandPosition` as consumed, atomically. Returns the offsets given to the events, in order.
   * Throws a `FencedError` (code `ESK_FENCED`) when another owner has taken the partition; the
   * writer must then be dropped.
   */
  commit(events: EventToAppend[], commandPosition: number, deadLetters?: DeadLetter[]): Promise<number[]>
}

/** A partition the transport has handed to this process, exclusively, until `signal` aborts. */
export interface PartitionLease {
  readonly stream: StreamSpec
  readonly partition: number
  readonly writer: PartitionWriter
  /** Aborted when the partition is taken away or the transport stops. */
  readonly signal: AbortSignal
  /**
   * The position the partition's command log will give its next command (its end). Core compares
   * it with the highest position its events record: a log that ends below that was recreated or
   * truncated, and its commands would otherwise be skipped as done.
   */
  commandLogEnd?(): Promise<number>
  /**
   * Told when the partition failed for good after `process` resolved: the save of its last
   * committed batch, which runs while the next batch is handled, found the store taken over. The
   * transport gives the lease up as if `process` had rejected with `error`, and delivers commands
   * again from position `next` (the one after the last committed) to the lease that replaces it.
   * Without it, the failure surfaces at the next `process` call.
   */
  failed?(error: unknown, next: number): void
}

/** The processing side of one partition, created by core for the transport. */
export interface PartitionHandle {
  /**
   * Processes commands in log order. Resolves once their events are committed; the transport may
   * then fetch the next batch. Rejects when the partition must be given up (fenced, closed) or
   * re-delivered from the last committed position (commit failed).
   */
  process(records: CommandRecord[]): Promise<void>
  /** Stops the partition: waits for the batch in flight, writes nothing after. */
  close(): Promise<void>
}

/** What core offers a transport: turns a lease into a recovered, ready partition. */
export interface PartitionHost {
  /** Recovers the partition (replays events after its checkpoint) and returns it ready for commands. */
  open(lease: PartitionLease): Promise<PartitionHandle>
  /** Reports a failure the transport met in the background (it never throws to the caller). */
  reportError(error: unknown, context: { stream: string; partition?: number }): void
}

/**
 * A command and event log: the source of truth. It can append and read partitions in order, and
 * nothing else: no read by aggregate id, no conditional append.
 */
export interface Transport {
  /** Creates the logs of these streams, or checks that existing ones match. */
  provision(streams: readonly StreamSpec[]): Promise<void>
  /**
   * Appends an encoded command to a partition of the command log, with `headers` (trace context)
   * beside it when given; they come back in its {@link CommandRecord}.
   */
  send(stream: StreamSpec, partition: number, key: string, value: string, headers?: RecordHeaders): Promise<void>
  /**
   * Reads committed events of a partition from `from` to the end of the log as it stands when
   * the call starts, in batches, and at least up to `until` (exclusive): a writer knows what it
   * committed before the log may show it (Kafka's last stable offset moves only once the
   * transaction markers are written), so it waits until those offsets are readable.
   */
  readEvents(stream: StreamSpec, partition: number, from: number, until?: number): AsyncIterable<StoredEvent[]>
  /**
   * Starts taking partitions of these streams. For each partition it owns it calls `host.open`
   * and feeds the handle command batches; it gives partitions up (closing their handles) when
   * ownership moves or on `stop`.
   */
  startProcessing(streams: readonly StreamSpec[], host: PartitionHost): Promise<void>
  /** Stops processing (if started): closes every partition, leaves groups. */
  stopProcessing(): Promise<void>
  /**
   * Feeds the events of these streams to a read model, partition by partition, each from the
   * position its handle gives (never from the transport's own offsets). Resolves once the first
   * partitions are open. Needed by projections and subscriptions.
   */
  subscribeEvents?(spec: EventFeedSpec, host: EventFeedHost): Promise<EventFeed>
  /** The first and next offsets of every partition of a stream's event log, now (committed events only). */
  eventLogBounds?(stream: StreamSpec): Promise<LogBounds[]>
  /**
   * Where every partition of a stream's command log stands now: its end (the position its next
   * command gets) and the position processing has committed (the next command to process). Their
   * difference is the number of commands waiting. Used by `status({ lag: true })` and readiness.
   */
  commandLogPositions?(stream: StreamSpec): Promise<CommandLogPosition[]>
  /** What telemetry calls this transport and its logs (`messaging.system`, topic and group names). */
  destinations?(stream: StreamSpec): TransportDestinations
  /** Releases every connection. */
  close(): Promise<void>
}

/** Where one partition of a command log stands (see {@link Transport.commandLogPositions}). */
export interface CommandLogPosition {
  /** The position the partition's next command will get. */
  end: number
  /** The next position processing will take, as committed with the events (0 when nothing was committed). */
  committed: number
}

/** Names of a stream's logs as the transport knows them, for telemetry attributes. */
export interface TransportDestinations {
  /** `messaging.system`: `kafka`, or the embedded driver's name. */
  system: string
  /** Name of the command log (the Kafka topic). */
  commands: string
  /** Name of the event log. */
  events: string
  /** Consumer group of the stream's processors, where there is one. */
  group?: string
}

/** A command as the store knows it: its aggregate and its id (the pair is its identity). */
export interface CommandKey {
  aggregateId: string
  commandId: string
}

/** What a snapshot store hands back for one batch: snapshots, unlogged outcomes, and the checkpoint. */
export interface LoadedBatch {
  /**
   * False when the partition's owner in the store is no longer the token the load was made with:
   * another processor took the partition, or the store lost it (flushed, evicted, restarted
   * empty). Nothing else in the batch may then be trusted.
   */
  owned: boolean
  /**
   * True when some token owns the partition's keys. Not owned but claimed: another processor took
   * the partition after this one (it was fenced). Neither: the store lost the partition's data.
   */
  claimed: boolean
  snapshots: Map<string, StoredSnapshot>
  /** Recorded outcomes that left nothing in the log (refusals, no-op acceptances), by {@link commandKey}. */
  unlogged: Map<string, Outcome>
  /** The partition's checkpoint as stored now. */
  checkpoint: Checkpoint | undefined
}

/** What a processor writes after a commit, in one atomic step. */
export interface SnapshotWrite {
  snapshots: StoredSnapshot[]
  checkpoint: Checkpoint
  /** Outcomes that left nothing in the log: kept in a bounded per-partition window. */
  unlogged: Outcome[]
  /** Marks the partition as recovered: `find` trusts its snapshots from then on. */
  ready?: boolean
  /**
   * Replies to publish to waiting clients in the same step, once the write is recorded; only
   * given to a store whose {@link SnapshotStore.publishesReplies} is true.
   */
  replies?: Reply[]
}

/** The unlogged outcomes a partition's store holds: their command keys, oldest first, and how many it keeps. */
export interface UnloggedKeys {
  keys: string[]
  window: number
}

/**
 * A cache of aggregate states derived from the event log, with a checkpoint per partition.
 * It can always be dropped and rebuilt from the events.
 *
 * Every write to a partition is fenced: it carries the owner token its processor took with
 * {@link acquire} after the log fenced the previous owner, and is refused, atomically, when the
 * store's owner is any other token or none at all (the store lost the partition's data). A refused
 * write throws `ESK_FENCED`, with `details.owner` `'other'` or `'none'` saying which.
 */
export interface SnapshotStore {
  /**
   * Makes `token` the owner of the partition's keys. Called after the log's fence, before a
   * recovery; every write of an earlier owner is refused from then on.
   */
  acquire(stream: StreamSpec, partition: number, token: string): Promise<void>
  /** Reads snapshots, unlogged outcomes, the checkpoint and the ownership of one partition in one round trip. */
  load(stream: StreamSpec, partition: number, token: string, aggregateIds: string[], commands: CommandKey[]): Promise<LoadedBatch>
  /**
   * Reads one snapshot (for `find`). Throws `ESK_UNAVAILABLE` (retriable) while the partition is
   * not recovered: its snapshots are being rebuilt and a missing one proves nothing.
   */
  read(stream: StreamSpec, partition: number, aggregateId: string): Promise<StoredSnapshot | undefined>
  /** Reads the recorded outcome of a command: from its aggregate's recent commands, or the unlogged ones. */
  readOutcome(stream: StreamSpec, partition: number, command: CommandKey): Promise<Outcome | undefined>
  /**
   * Reads the recorded outcomes of many commands of one partition at once (one round trip where
   * the store can), by {@link commandKey}; those with none recorded are absent. Optional: outcome
   * channels fall back to {@link readOutcome} per command.
   */
  readOutcomes?(stream: StreamSpec, partition: number, commands: readonly CommandKey[]): Promise<Map<string, Outcome>>
  /** The partition's checkpoint, or undefined when nothing was ever saved (or the store was flushed). */
  checkpoint(stream: StreamSpec, partition: number): Promise<Checkpoint | undefined>
  /**
   * Saves atomically and only forward, if `token` owns the partition (else `ESK_FENCED`): a
   * snapshot whose offset is lower than the stored one is ignored, and the checkpoint never moves back.
   */
  save(stream: StreamSpec, partition: number, token: string, write: SnapshotWrite): Promise<void>
  /**
   * Drops every snapshot, the checkpoint and the unlogged outcomes of a partition, before a rebuild
   * from offset 0, if `token` owns it (else `ESK_FENCED`). The partition is not ready until a
   * save with `ready` follows.
   */
  reset(stream: StreamSpec, partition: number, token: string): Promise<void>
  /**
   * The command keys of the partition's unlogged outcomes, oldest first, and the window the store
   * keeps them in. A processor that knows them can skip loading for commands that are not among
   * them. Optional: without it every batch is loaded.
   */
  unloggedKeys?(stream: StreamSpec, partition: number): Promise<UnloggedKeys>
  /**
   * True when {@link save} publishes the write's `replies` itself, after recording the write and in
   * the same step (one round trip instead of two). Otherwise the processor publishes them through
   * the outcome channel once the save returns.
   */
  readonly publishesReplies?: boolean
  /** Releases connections this store opened. */
  close(): Promise<void>
}

/**
 * The key of a command in maps of outcomes: its aggregate id and command id, as a JSON pair, so no
 * two different pairs share a key whatever characters the ids hold.
 */
export function commandKey(command: CommandKey): string {
  return JSON.stringify([command.aggregateId, command.commandId])
}

/**
 * One command's outcome being waited for (see {@link OutcomeChannel.wait}). A plain object with a
 * method rather than an AbortSignal: a client makes one per call, and a signal with its listeners
 * cost more than the rest of the wait.
 */
export interface OutcomeWait {
  /**
   * The outcome, or undefined when {@link stop} came first. Rejects with `ESK_CLOSED` when the
   * channel closes first, or `ESK_SERIALIZATION` when the recorded outcome is corrupt; a rejection
   * nobody awaits yet is not an unhandled one.
   */
  readonly outcome: Promise<Outcome | undefined>
  /** Stops waiting: {@link outcome} resolves undefined unless it has settled. Idempotent. */
  stop(): void
}

/** Carries outcomes from processors to the clients waiting for them. */
export interface OutcomeChannel {
  /** This client's reply address, put into every command it sends. */
  readonly address: string
  /**
   * Starts waiting for the outcome of a command; call it before the command is sent. The caller
   * ends the wait with {@link OutcomeWait.stop} (its deadline, or giving up). Implementations also
   * look at the durable outcome in the store, so an outcome whose notification was lost is still
   * found.
   */
  wait(stream: StreamSpec, partition: number, command: CommandKey): OutcomeWait
  /** Best-effort notification of waiting clients; the durable copy is in the snapshot store. */
  publish(stream: StreamSpec, partition: number, replies: Reply[]): Promise<void>
  /** Releases connections this channel opened. */
  close(): Promise<void>
}

/** The storage side of a driver: snapshots, checkpoints and outcomes. */
export interface Store {
  readonly snapshots: SnapshotStore
  readonly outcomes: OutcomeChannel
  /** Views and positions of local projections and subscriptions, if this store keeps them. */
  readonly projections?: ProjectionStore
  close(): Promise<void>
}
