/**
 * Stable error codes. Check `error.code`, never `instanceof`: two installed copies of this package
 * would each have their own classes, but the codes stay the same.
 */
export const ErrorCode = {
  Configuration: 'ESK_CONFIGURATION',
  InvalidArgument: 'ESK_INVALID_ARGUMENT',
  AggregateExists: 'ESK_AGGREGATE_EXISTS',
  AggregateNotFound: 'ESK_AGGREGATE_NOT_FOUND',
  VersionConflict: 'ESK_VERSION_CONFLICT',
  UnknownCommand: 'ESK_UNKNOWN_COMMAND',
  InvalidCommand: 'ESK_INVALID_COMMAND',
  CommandRejected: 'ESK_COMMAND_REJECTED',
  HandlerFailed: 'ESK_HANDLER_FAILED',
  CommandTimeout: 'ESK_COMMAND_TIMEOUT',
  ReadTimeout: 'ESK_READ_TIMEOUT',
  SnapshotStale: 'ESK_SNAPSHOT_STALE',
  Serialization: 'ESK_SERIALIZATION',
  Fenced: 'ESK_FENCED',
  Closed: 'ESK_CLOSED',
  Unavailable: 'ESK_UNAVAILABLE',
  SchemaAhead: 'ESK_SCHEMA_AHEAD',
  CommandLogTruncated: 'ESK_COMMAND_LOG_TRUNCATED',
  EventsTruncated: 'ESK_EVENTS_TRUNCATED',
  ProjectionFailed: 'ESK_PROJECTION_FAILED',
} as const

/** One of the {@link ErrorCode} values. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Details that travel with an error; must be JSON-serialisable because rejections cross processes. */
export type ErrorDetails = Record<string, unknown>

/** Base class of every error esk raises: a stable `code`, a message that says what to do, and details. */
export class EskError extends Error {
  /** Stable machine-readable code; see {@link ErrorCode}. */
  readonly code: ErrorCode
  /** Structured context (ids, versions, offending values). */
  readonly details: ErrorDetails

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.details = details
  }
}

/** Invalid options or aggregate declarations; raised at start-up, never while processing. */
export class ConfigurationError extends EskError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.Configuration, message, details)
  }
}

/** A call got an argument it cannot use (an empty id, a negative expected version). */
export class InvalidArgumentError extends EskError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.InvalidArgument, message, details)
  }
}

/** `save` was called for an aggregate id that already exists. */
export class AggregateExistsError extends EskError {
  constructor(aggregate: string, id: string) {
    super(
      ErrorCode.AggregateExists,
      `${aggregate} '${id}' already exists; use update() to change it, or save() without an id to create a new one`,
      { aggregate, id },
    )
  }
}

/** `update` or `get` named an aggregate id that does not exist. */
export class AggregateNotFoundError extends EskError {
  constructor(aggregate: string, id: string) {
    super(
      ErrorCode.AggregateNotFound,
      `${aggregate} '${id}' does not exist; create it with save() first, or check the id`,
      { aggregate, id },
    )
  }
}

/** `expectedVersion` did not match the aggregate's current version (optimistic concurrency). */
export class VersionConflictError extends EskError {
  constructor(aggregate: string, id: string, expected: number, actual: number) {
    super(
      ErrorCode.VersionConflict,
      `${aggregate} '${id}' is at version ${actual}, not the expected ${expected}; ` +
        `reload it with find() and decide again`,
      { aggregate, id, expected, actual },
    )
  }
}

/** The command type is not handled by this aggregate, or was sent through the wrong method. */
export class UnknownCommandError extends EskError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.UnknownCommand, message, details)
  }
}

/** The command failed its declared validation or could not be decoded. */
export class InvalidCommandError extends EskError {
  /** What was wrong, one entry per problem. */
  readonly problems: string[]

  constructor(commandType: string, problems: string[], details: ErrorDetails = {}) {
    super(
      ErrorCode.InvalidCommand,
      `command ${commandType} is invalid: ${problems.join('; ')}; fix the command and send it again`,
      { ...details, commandType, problems },
    )
    this.problems = problems
  }
}

/**
 * Thrown by a command handler to refuse a command for a business reason. `reason` is the
 * application's own code (for example `INSUFFICIENT_FUNDS`), kept as it is across processes.
 */
export class CommandRejected extends EskError {
  /** The application's own reason code, if it gave one. */
  readonly reason: string | undefined

  constructor(message: string, options: { reason?: string; details?: ErrorDetails } = {}) {
    super(ErrorCode.CommandRejected, message, { ...options.details, reason: options.reason })
    this.reason = options.reason
  }
}

/** A command or event handler threw something other than {@link CommandRejected}. */
export class HandlerFailedError extends EskError {
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.HandlerFailed, message, details, { cause })
  }
}

/** No outcome arrived in time. The command may still be applied; retrying with the same command id is safe. */
export class CommandTimeoutError extends EskError {
  constructor(aggregate: string, id: string, commandId: string, timeoutMs: number) {
    super(
      ErrorCode.CommandTimeout,
      `no outcome for command ${commandId} on ${aggregate} '${id}' within ${timeoutMs} ms; ` +
        `it may still be applied: retry with the same commandId (it is never applied twice), ` +
        `or raise commandTimeoutMs if processors are slow`,
      { aggregate, id, commandId, timeoutMs },
    )
  }
}

/** `find(id, { atLeastVersion })` did not see that version in time. */
export class ReadTimeoutError extends EskError {
  constructor(aggregate: string, id: string, atLeastVersion: number, seen: number | undefined, timeoutMs: number) {
    super(
      ErrorCode.ReadTimeout,
      `${aggregate} '${id}' did not reach version ${atLeastVersion} within ${timeoutMs} ms ` +
        `(last seen: ${seen ?? 'none'}); check that a processor owns its partition, or wait longer`,
      { aggregate, id, atLeastVersion, seen, timeoutMs },
    )
  }
}

/** The stored snapshot was written by another schema version and its partition has not been rebuilt yet. */
export class SnapshotStaleError extends EskError {
  constructor(aggregate: string, id: string, stored: number, current: number) {
    super(
      ErrorCode.SnapshotStale,
      `${aggregate} '${id}' has a snapshot of schema version ${stored}, this code expects ${current}; ` +
        `its partition is rebuilt when a processor of version ${current} takes it: retry shortly`,
      { aggregate, id, stored, current },
    )
  }
}

/** A value could not be encoded or decoded (unknown type name, malformed payload). */
export class SerializationError extends EskError {
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.Serialization, message, details, { cause })
  }
}

/** Another processor took over the partition; this writer must stop and write nothing more. */
export class FencedError extends EskError {
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.Fenced, message, details, { cause })
  }
}

/**
 * A command log partition no longer matches the command positions recorded in the event log (its
 * topic was deleted and recreated, or lost records). Its partition is not processed: new commands
 * would be taken for ones already handled and skipped.
 */
export class CommandLogTruncatedError extends EskError {
  constructor(message: string, details?: ErrorDetails) {
    super(ErrorCode.CommandLogTruncated, message, details)
  }
}

/** The application, repository or driver was closed. */
export class ClosedError extends EskError {
  constructor(what: string, message = `${what} is closed; create a new application with createEsk()`, details?: ErrorDetails) {
    super(ErrorCode.Closed, message, details)
  }
}

/**
 * Retriable: the log or the store could not be reached, or a partition is being rebuilt. For a
 * command, `details` carries the `commandId` and the aggregate `id` to retry with: a retry with the
 * same commandId is never applied twice.
 */
export class UnavailableError extends EskError {
  /** Always true: the same call may succeed later. */
  readonly retriable = true
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.Unavailable, message, details, { cause })
  }
}

/**
 * A partition's snapshots were written by a newer schema version of the aggregate than this code
 * knows. The partition is left alone (an older process must not rebuild what a newer one wrote);
 * it is reported and retried until newer code takes it over.
 */
export class SchemaAheadError extends EskError {
  constructor(aggregate: string, partition: number, stored: number, current: number) {
    super(
      ErrorCode.SchemaAhead,
      `${aggregate}/${partition} was written by schema version ${stored}, this code has ${current}; ` +
        `it is not processed here (rebuilding it would undo the newer code's work): finish the deploy ` +
        `of the newer version, or roll every process back and rebuild`,
      { aggregate, partition, stored, current },
    )
  }
}

/**
 * A projection's stored position is no longer in the event log: the events after it were deleted
 * (the log starts above it) or the topic was recreated (the log ends below it). Applying what is left
 * would silently skip events, so the partition stops (or, with `onTruncated: 'rebuild'`, the
 * projection is rebuilt from what the log holds).
 */
export class EventsTruncatedError extends EskError {
  constructor(projection: string, aggregate: string, partition: number, stored: number, start: number, end: number) {
    super(
      ErrorCode.EventsTruncated,
      `projection '${projection}' stopped at offset ${stored} of ${aggregate}/${partition}, but that log now holds offsets ` +
        `${start} to ${end - 1 < start ? 'none' : end - 1}: ${stored < start ? 'the events after its position were deleted' : 'the log was recreated'}. ` +
        `It is not applied further (events would be skipped). Restore the log, or reset or rebuild the projection ` +
        `from what the log holds (onTruncated: 'rebuild' does it automatically)`,
      { projection, aggregate, partition, stored, start, end },
    )
  }
}

/**
 * A projection's handler kept failing on an event (or its store refused the event's changes), and
 * the projection's `onFailure` is `stop`: its partition waits on that event, retried with backoff.
 */
export class ProjectionFailedError extends EskError {
  constructor(message: string, details?: ErrorDetails, cause?: unknown) {
    super(ErrorCode.ProjectionFailed, message, details, { cause })
  }
}

/** The JSON form of an error that crosses processes inside an outcome. */
export interface ErrorPayload {
  code: string
  message: string
  details?: ErrorDetails
}

/** True when `value` is an esk error with the given code (works across package copies). */
export function hasCode(value: unknown, code: ErrorCode): value is EskError {
  return typeof value === 'object' && value !== null && (value as { code?: unknown }).code === code
}

/** Rebuilds a typed error from its JSON form, so a client sees the same class the processor raised. */
export function errorFromPayload(payload: ErrorPayload): EskError {
  const details = payload.details ?? {}
  let error: EskError
  switch (payload.code) {
    case ErrorCode.CommandRejected:
      error = new CommandRejected(payload.message, {
        reason: typeof details.reason === 'string' ? details.reason : undefined,
        details,
      })
      break
    case ErrorCode.InvalidCommand:
      error = new InvalidCommandError(String(details.commandType ?? 'unknown'), toStrings(details.problems), details)
      break
    case ErrorCode.HandlerFailed:
      error = new HandlerFailedError(payload.message, details)
      break
    case ErrorCode.UnknownCommand:
      error = new UnknownCommandError(payload.message, details)
      break
    case ErrorCode.AggregateExists:
      error = new AggregateExistsError(String(details.aggregate), String(details.id))
      break
    case ErrorCode.AggregateNotFound:
      error = new AggregateNotFoundError(String(details.aggregate), String(details.id))
      break
    case ErrorCode.VersionConflict:
      error = new VersionConflictError(
        String(details.aggregate),
        String(details.id),
        Number(details.expected),
        Number(details.actual),
      )
      break
    case ErrorCode.Configuration:
      error = new ConfigurationError(payload.message, details)
      break
    case ErrorCode.InvalidArgument:
      error = new InvalidArgumentError(payload.message, details)
      break
    case ErrorCode.CommandTimeout:
      error = new CommandTimeoutError(
        String(details.aggregate),
        String(details.id),
        String(details.commandId),
        Number(details.timeoutMs),
      )
      break
    case ErrorCode.ReadTimeout:
      error = new ReadTimeoutError(
        String(details.aggregate),
        String(details.id),
        Number(details.atLeastVersion),
        typeof details.seen === 'number' ? details.seen : undefined,
        Number(details.timeoutMs),
      )
      break
    case ErrorCode.SnapshotStale:
      error = new SnapshotStaleError(
        String(details.aggregate),
        String(details.id),
        Number(details.stored),
        Number(details.current),
      )
      break
    case ErrorCode.Serialization:
      error = new SerializationError(payload.message, details)
      break
    case ErrorCode.Fenced:
      error = new FencedError(payload.message, details)
      break
    case ErrorCode.Closed:
      error = new ClosedError('', payload.message, details)
      break
    case ErrorCode.Unavailable:
      error = new UnavailableError(payload.message, details)
      break
    case ErrorCode.EventsTruncated:
      error = new EventsTruncatedError(
        String(details.projection),
        String(details.aggregate),
        Number(details.partition),
        Number(details.stored),
        Number(details.start),
        Number(details.end),
      )
      break
    case ErrorCode.ProjectionFailed:
      error = new ProjectionFailedError(payload.message, details)
      break
    case ErrorCode.SchemaAhead:
      error = new SchemaAheadError(
        String(details.aggregate),
        Number(details.partition),
        Number(details.stored),
        Number(details.current),
      )
      break
    case ErrorCode.CommandLogTruncated:
      error = new CommandLogTruncatedError(payload.message, details)
      break
    default:
      // A code this version does not know (a newer processor): keep its words, report a failure.
      error = new EskError(ErrorCode.HandlerFailed, payload.message, details)
  }
  // Keep the processor's wording: it may carry context the constructor cannot rebuild.
  error.message = payload.message
  return error
}

/** The JSON form of an error, for an outcome. */
export function errorToPayload(error: EskError): ErrorPayload {
  return { code: error.code, message: error.message, details: error.details }
}

function toStrings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [String(value)]
}
