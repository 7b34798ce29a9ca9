/**
 * `@esk/core/driver`: what drivers, tools and esk's own packages build on, and applications do not
 * need: the ports a driver implements and the records that cross them, the processor and the
 * aggregate runtime, the command codec, the read-side runner and its ports, and small helpers.
 * These change with esk's internals; the application surface is `@esk/core`.
 *
 * @packageDocumentation
 */
import 'reflect-metadata'

export { aggregateModel, commandMetaOf, eventTypeOf } from './metadata.js'
export type { AggregateModel, CommandBinding, EventBinding } from './metadata.js'

export { errorFromPayload, errorToPayload } from './errors.js'
export type { ErrorPayload } from './errors.js'

export { newClientAddress } from './esk.js'

export { AggregateRuntime, messageOf } from './runtime.js'
export type { EncodedEvent } from './runtime.js'

export { PartitionProcessor } from './processor.js'
export type { ProcessorContext } from './processor.js'

export { decodeEnvelope, encodeEnvelope, isUndecodable } from './codec.js'
export type { UndecodableCommand } from './codec.js'

export { commandKey } from './ports.js'
export { PendingOutcome } from './pending-outcome.js'
export { DelayQueue } from './delay-queue.js'
export { FifoMap, LruMap, RecentMap } from './recent.js'
export type {
  CommandKey,
  CommandLogPosition,
  TransportDestinations,
  LoadedBatch,
  OutcomeChannel,
  OutcomeWait,
  PartitionHandle,
  PartitionHost,
  PartitionLease,
  PartitionWriter,
  SnapshotStore,
  SnapshotWrite,
  UnloggedKeys,
  Store,
  StreamSpec,
  Transport,
} from './ports.js'
export type {
  Checkpoint,
  CommandEnvelope,
  CommandRecord,
  DeadLetter,
  EventToAppend,
  Outcome,
  RecentCommand,
  Reply,
  StoredEvent,
  StoredSnapshot,
  RecordHeaders,
} from './records.js'

export { readModelSpec } from './projection/model.js'
export type { HandlerEntry, ReadModelSpec } from './projection/model.js'
export { StagedView, compareScored, viewReader } from './projection/view.js'
export type { Mark, ReadSource } from './projection/view.js'
export { InMemoryProjectionStore, generationUnavailable } from './projection/memory-store.js'
export type { MemoryGeneration, MemoryProjection } from './projection/memory-store.js'
export { laneOf } from './projection/ports.js'
export type {
  ApplyResult,
  CreateMode,
  EventFeed,
  EventFeedHandle,
  EventFeedHost,
  EventFeedLease,
  EventFeedSpec,
  GenerationInfo,
  LogBounds,
  ProjectionMeta,
  ProjectionStore,
  ProjectionWrite,
  ViewChange,
  ViewGuard,
  ViewRead,
  ViewReadResult,
} from './projection/ports.js'
export { ReadModelRunner } from './projection/runner.js'
export type { ReadSideContext } from './projection/runner.js'

export { Observers } from './observe.js'

export { partitionFor, sleep } from './util.js'
