import type { MemoryFeedGroup } from './feed.js'
import {
  FifoMap,
  InMemoryProjectionStore,
  type Checkpoint,
  type DeadLetter,
  type Outcome,
  type RecordHeaders,
  type StoredEvent,
  type StoredSnapshot,
} from '@esk/core/driver'

/** The logs of one partition. */
export interface MemoryPartitionLog {
  commands: string[]
  /** Headers (trace context) sent beside commands, by position; most commands have none. */
  commandHeaders: Map<number, RecordHeaders>
  events: StoredEvent[]
  /** Next command position to process, as committed together with events. */
  committed: number
  /** Ownership generation; a writer of an older epoch is fenced. */
  epoch: number
  /** Records refused as poison, with their reasons, committed with their positions. */
  deadLetters: DeadLetter[]
  /** Resolvers of processors waiting for new commands. */
  waiting: Array<() => void>
  /** First event offset still held: events below it were deleted (see {@link MemoryBackend.truncateEvents}). */
  start: number
  /** Resolvers of read models waiting for new events. */
  eventWaiting: Array<() => void>
}

/** The snapshots, checkpoint, ownership and unlogged outcomes of one partition. */
export interface MemoryPartitionState {
  snapshots: Map<string, StoredSnapshot>
  checkpoint: Checkpoint | undefined
  /** Token of the processor that owns the partition's keys; undefined once flushed. */
  owner: string | undefined
  /** True once a recovery finished; false after a reset. */
  ready: boolean
  /** Outcomes that left nothing in the log, by command key, oldest first. */
  unlogged: FifoMap<string, Outcome>
}

/**
 * Everything the embedded driver stores, kept outside any application so that a new application
 * on the same backend sees what an earlier one wrote, as a restarted process would with Kafka and
 * Redis. Create one and pass it to several `memoryDriver({ backend })` calls to simulate restarts.
 */
export class MemoryBackend {
  /** Logs by stream name: one entry per partition. */
  readonly logs = new Map<string, MemoryPartitionLog[]>()
  /** Snapshot state by `stream/partition`. */
  readonly state = new Map<string, MemoryPartitionState>()
  /** Outcome delivery by client reply address, across every application on this backend. */
  readonly replyRoutes = new Map<string, (outcome: Outcome) => void>()
  /** Views and positions of local read models, kept like Redis keeps them: across applications. */
  readonly projections = new InMemoryProjectionStore()
  /** Members of read models' consumer groups, by group name (see the transport's `subscribeEvents`). */
  readonly feedGroups = new Map<string, MemoryFeedGroup>()

  /** The logs of a stream's partition; the stream must be provisioned. */
  log(stream: string, partition: number): MemoryPartitionLog {
    const log = this.logs.get(stream)?.[partition]
    if (!log) throw new Error(`stream '${stream}' partition ${partition} is not provisioned`)
    return log
  }

  /** The snapshot state of a partition, created empty on first use. */
  partitionState(stream: string, partition: number): MemoryPartitionState {
    const key = `${stream}/${partition}`
    let state = this.state.get(key)
    if (!state) {
      state = { snapshots: new Map(), checkpoint: undefined, owner: undefined, ready: false, unlogged: new FifoMap() }
      this.state.set(key, state)
    }
    return state
  }

  /** Drops every snapshot, checkpoint and outcome, as `FLUSHALL` would on Redis. The logs stay. */
  flushSnapshots(): void {
    this.state.clear()
  }

  /** Drops every view and position of local read models, as `FLUSHALL` would on Redis. */
  flushProjections(): void {
    this.projections.projections.clear()
  }

  /**
   * Deletes the events of a partition below `before`, as Kafka's `deleteRecords` (or retention) would:
   * reading from below it fails, and read models whose position is below it see a truncated log.
   */
  truncateEvents(stream: string, partition: number, before: number): void {
    const log = this.log(stream, partition)
    log.start = Math.max(log.start, Math.min(before, log.events.length))
  }
}
