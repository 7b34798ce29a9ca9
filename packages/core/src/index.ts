/**
 * esk's application surface: decorators, `createEsk`, the repository, errors, read models and the
 * types of their options and results. What drivers and tools build on (ports, records, the
 * processor, the runtime, the codec) is in `@esk/core/driver`.
 *
 * @packageDocumentation
 */
import 'reflect-metadata'

export { Aggregate, Command, CommandHandler, Event, EventHandler } from './metadata.js'
export type { AggregateOptions, Class, CommandHandlerOptions, CommandOptions } from './metadata.js'

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
  hasCode,
} from './errors.js'
export type { ErrorDetails } from './errors.js'

export { createEsk, ESK_DEFAULTS } from './esk.js'
export type {
  AggregateRegistration,
  Driver,
  Esk,
  EskListeners,
  EskOptions,
  EskStatus,
  PartitionStatus,
  ProjectionLag,
  Readiness,
  ReadinessOptions,
} from './esk.js'

export { Repository } from './repository.js'
export type { CommandResult, FindOptions, Found, SaveOptions, UpdateOptions } from './repository.js'

export { describeDifference, firstDifference, roundTrip } from './roundtrip.js'
export type { RoundTripDifference, RoundTripResult } from './roundtrip.js'

export type { TelemetryOption } from './telemetry.js'

export {
  On,
  Projection,
  READ_MODEL_DEFAULTS,
  defineProjection,
  defineSubscription,
  externalProjection,
  on,
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
  ProjectionDefinition,
  ProjectionHandler,
  ProjectionOptions,
  ProjectionScope,
  ReadModel,
  ReadModelOptions,
  ReadModelRegistration,
  SubscriptionDefinition,
  SubscriptionHandler,
} from './projection/model.js'
export { MAX_KEY_LENGTH, ViewReadFailed } from './projection/view.js'
export type {
  HashReader,
  HashWriter,
  RangeOptions,
  ScoreRangeOptions,
  ScoredMember,
  SortedSetReader,
  SortedSetWriter,
  ViewReader,
  ViewStore,
} from './projection/view.js'
export type { ViewDump } from './projection/memory-store.js'
export type { Lane, ProjectionDeadLetter } from './projection/ports.js'
export type {
  EventPosition,
  LaneStatus,
  ProjectionStatus,
  ProjectionView,
  RebuildReport,
  WaitOptions,
} from './projection/runner.js'
export type { LaneState, ProjectionObservation } from './projection/observe.js'

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
