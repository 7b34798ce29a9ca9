import 'reflect-metadata'

export { Aggregate, Command, CommandHandler, Event, EventHandler, aggregateModel, eventTypeOf, commandMetaOf } from './metadata.js'
export type {
  AggregateModel,
  AggregateOptions,
  Class,
  CommandBinding,
  CommandHandlerOptions,
  CommandOptions,
  EventBinding,
} from './metadata.js'

export {
  AggregateExistsError,
  AggregateNotFoundError,
  ClosedError,
  CommandLogTruncatedError,
  CommandRejected,
  EventsTruncatedError,
  ProjectionFailedError,
  CommandTimeoutError,
  ConfigurationError,
  ErrorCode,
  EskError,
  FencedError,
  HandlerFailedError,
  InvalidArgumentError,
  InvalidCommandError,
  ReadTimeoutError,
  SchemaAheadError,
  SerializationError,
  SnapshotStaleError,
  UnavailableError,
  UnknownCommandError,
  VersionConflictError,
  errorFromPayload,
  errorToPayload,
  hasCode,
} from './errors.js'
export type { ErrorDetails, ErrorPayload } from './errors.js'

export { createEsk, ESK_DEFAULTS, newClientAddress } from './esk.js'
export type { AggregateRegistration, Driver, Esk, EskListeners, EskOptions, EskStatus, PartitionStatus } from './esk.js'

export { Repository } from './repository.js'
export type { CommandResult, FindOptions, Found, SaveOptions, UpdateOptions } from './repository.js'

export { AggregateRuntime, messageOf } from './runtime.js'
export type { EncodedEvent } from './runtime.js'

export { describeDifference, firstDifference, roundTrip } from './roundtrip.js'
export type { RoundTripDifference, RoundTripResult } from './roundtrip.js'

export { PartitionProcessor } from './processor.js'
export type { ProcessorContext } from './processor.js'

export type { TelemetryOption } from './telemetry.js'

export { decodeEnvelope, encodeEnvelope, isUndecodable } from './codec.js'
export type { UndecodableCommand } from './codec.js'

export { commandKey } from './ports.js'
export type {
  CommandKey,
  LoadedBatch,
  OutcomeChannel,
  PartitionHandle,
  PartitionHost,
  PartitionLease,
  PartitionWriter,
  SnapshotStore,
  SnapshotWrite,
  Store,
  StreamSpec,
  Transport,
  TransportDestinations,
} from './ports.js'
export type {
  Checkpoint,
  CommandEnvelope,
  CommandRecord,
  DeadLetter,
  EventToAppend,
  Outcome,
  RecentCommand,
  RecordHeaders,
  Reply,
  StoredEvent,
  StoredSnapshot,
} from './records.js'

export {
  On,
  Projection,
  READ_MODEL_DEFAULTS,
  defineProjection,
  defineSubscription,
  externalProjection,
  on,
  readModelSpec,
} from './projection/model.js'
export type {
  AnyHandlerBinding,
  DeliveredEvent,
  EventMeta,
  ExternalBatch,
  ExternalDefinition,
  ExternalProjectionOptions,
  FailurePolicy,
  HandlerBinding,
  HandlerEntry,
  ProjectionDefinition,
  ProjectionHandler,
  ProjectionOptions,
  ProjectionScope,
  ReadModel,
  ReadModelOptions,
  ReadModelRegistration,
  ReadModelSpec,
  SubscriptionDefinition,
  SubscriptionHandler,
} from './projection/model.js'
export { MAX_KEY_LENGTH, StagedView, ViewReadFailed, compareScored, viewReader } from './projection/view.js'
export type {
  HashReader,
  HashWriter,
  Mark,
  RangeOptions,
  ReadSource,
  ScoreRangeOptions,
  ScoredMember,
  SortedSetReader,
  SortedSetWriter,
  ViewReader,
  ViewStore,
} from './projection/view.js'
export { InMemoryProjectionStore, generationUnavailable } from './projection/memory-store.js'
export type { MemoryGeneration, MemoryProjection, ViewDump } from './projection/memory-store.js'
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
  Lane,
  LogBounds,
  ProjectionDeadLetter,
  ProjectionMeta,
  ProjectionStore,
  ProjectionWrite,
  ViewChange,
  ViewGuard,
  ViewRead,
  ViewReadResult,
} from './projection/ports.js'
export { ReadModelRunner } from './projection/runner.js'
export type {
  EventPosition,
  ReadSideContext,
  LaneStatus,
  ProjectionStatus,
  ProjectionView,
  RebuildReport,
  WaitOptions,
} from './projection/runner.js'
export type { LaneState, ProjectionObservation } from './projection/observe.js'

export { Observers } from './observe.js'
export type {
  BackgroundError,
  BatchProcessed,
  EskEventMap,
  Listener,
  PartitionChange,
  PartitionState,
  PartitionStateChange,
  RecoveryProgress,
} from './observe.js'

export { LogCode, consoleLogger } from './logger.js'
export type { Logger, LogLevel } from './logger.js'

export { partitionFor, sleep } from './util.js'
