import { createHash, randomUUID } from 'node:crypto'
import { encodeEnvelope } from './codec.js'
import {
  AggregateNotFoundError,
  ClosedError,
  CommandTimeoutError,
  InvalidArgumentError,
  ReadTimeoutError,
  EskError,
  SnapshotStaleError,
  UnavailableError,
  UnknownCommandError,
  errorFromPayload,
  hasCode,
  ErrorCode,
} from './errors.js'
import { DelayQueue } from './delay-queue.js'
import { RecentMap } from './recent.js'
import { messageOf } from './runtime.js'
import type { OutcomeChannel, OutcomeWait, SnapshotStore, StreamSpec, Transport } from './ports.js'
import type { EventPosition } from './projection/runner.js'
import type { CommandEnvelope, RecordHeaders } from './records.js'
import type { AggregateRuntime } from './runtime.js'
import type { Telemetry } from './telemetry.js'
import { partitionFor, sleep } from './util.js'

/** Options of {@link Repository.save}. */
export interface SaveOptions {
  /**
   * The new aggregate's id. When omitted: derived from `commandId` if one is given (so a retry
   * with the same commandId addresses the same aggregate and is never applied twice), else a
   * random UUID.
   */
  id?: string
  /** Idempotency key; a random UUID when omitted. Reuse it when retrying the same intent. */
  commandId?: string
  /** How long to wait for the outcome; defaults to the application's `commandTimeoutMs`. */
  timeoutMs?: number
}

/** Options of {@link Repository.update}. */
export interface UpdateOptions {
  /** Reject the command unless the aggregate is at exactly this version. */
  expectedVersion?: number
  /** Idempotency key; a random UUID when omitted. Reuse it when retrying the same intent. */
  commandId?: string
  /** How long to wait for the outcome; defaults to the application's `commandTimeoutMs`. */
  timeoutMs?: number
}

/** Options of {@link Repository.find}. */
export interface FindOptions {
  /**
   * Wait until the snapshot has reached this version (read your own writes). Defaults to the
   * version this repository's own last accepted command on the aggregate reached, when it
   * remembers one (at least the last 10,000 aggregates it wrote); otherwise a plain read.
   */
  atLeastVersion?: number
  /** How long a find may wait for a version; defaults to the application's `readTimeoutMs`. */
  timeoutMs?: number
}

/** The result of an accepted command. */
export interface CommandResult {
  id: string
  /** The aggregate's version after the command. */
  version: number
  commandId: string
  /**
   * Where the command's last event is in the event log, when it recorded events: pass the result
   * to a projection's `waitFor` to read your own writes there.
   */
  position?: EventPosition
}

/** An aggregate read from its snapshot. */
export interface Found<T> {
  id: string
  version: number
  state: T
}

/** Settings a repository takes from its application. */
export interface RepositorySettings {
  commandTimeoutMs: number
  readTimeoutMs: number
}

const MAX_ID_LENGTH = 256

/** Aggregates whose version a repository remembers from its own accepted commands, at least (at most twice as many). */
const REMEMBERED_WRITES = 10_000

/**
 * Sends commands for one aggregate type and reads its snapshots. Every call sends the command to
 * the partition of its aggregate id, waits for the processor's outcome, and turns a rejection
 * into the typed error the processor raised.
 */
export class Repository<T extends object> {
  /**
   * The waits of the calls waiting for an outcome, stopped together when the application closes.
   * One listener on the closing signal for all of them: a listener per call would make
   * each call cost as much as the calls already waiting (an event target checks its listeners for
   * duplicates), which under overload, with tens of thousands waiting, stalls the client.
   */
  private readonly waiting = new Set<OutcomeWait>()
  /** The deadlines of the calls made with the default `commandTimeoutMs`. */
  private readonly deadlines: DelayQueue<OutcomeWait>
  /**
   * The version each aggregate reached by this repository's own accepted commands, for at least
   * the last {@link REMEMBERED_WRITES} aggregates written. An accepted command is answered once
   * its events are committed, which can be before its snapshot is saved: a plain `find` of such an
   * aggregate waits until the snapshot shows the write.
   */
  private readonly ownWrites = new RecentMap<string, number>(REMEMBERED_WRITES)

  constructor(
    private readonly runtime: AggregateRuntime<T>,
    private readonly stream: StreamSpec,
    private readonly transport: Transport,
    private readonly snapshots: SnapshotStore,
    private readonly outcomes: OutcomeChannel,
    private readonly settings: RepositorySettings,
    private readonly assertOpen: () => void,
    private readonly closing: AbortSignal,
    private readonly telemetry?: Telemetry,
  ) {
    this.deadlines = new DelayQueue(settings.commandTimeoutMs, stopWaiting)
    closing.addEventListener(
      'abort',
      () => {
        for (const waiting of this.waiting) waiting.stop()
      },
      { once: true },
    )
  }

  /** Creates an aggregate with a creating command. Throws `ESK_AGGREGATE_EXISTS` if the id is taken. */
  save(command: object, options: SaveOptions = {}): Promise<CommandResult> {
    // Not async, nor is update(): every call comes here, and each async layer is one more promise
    // alive for as long as the call waits. What they throw becomes a rejection all the same.
    try {
      const id = options.id ?? (options.commandId !== undefined ? idFromCommandId(this.runtime.model.name, options.commandId) : randomUUID())
      return this.send(id, command, 'create', options.commandId, undefined, options.timeoutMs)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Changes an existing aggregate. Throws `ESK_AGGREGATE_NOT_FOUND`, `ESK_VERSION_CONFLICT`, or the handler's rejection. */
  update(id: string, command: object, options: UpdateOptions = {}): Promise<CommandResult> {
    try {
      return this.send(id, command, 'update', options.commandId, options.expectedVersion, options.timeoutMs)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Reads an aggregate's snapshot, or undefined when it does not exist (yet). Without
   * `atLeastVersion`, it waits for the version this repository's own last accepted command on the
   * aggregate reached, if it remembers one (read your own writes).
   */
  async find(id: string, options: FindOptions = {}): Promise<Found<T> | undefined> {
    this.assertOpen()
    checkId(id)
    const partition = partitionFor(id, this.stream.partitions)
    const atLeastVersion = options.atLeastVersion ?? this.ownWrites.get(id)
    if (atLeastVersion === undefined) return this.read(id, partition)
    const timeoutMs = options.timeoutMs ?? this.settings.readTimeoutMs
    const deadline = Date.now() + timeoutMs
    let seen: number | undefined
    for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
      const found = await this.read(id, partition).catch((error: unknown) => {
        // A stale snapshot or a partition being rebuilt: keep waiting like any other lag.
        if (hasCode(error, ErrorCode.SnapshotStale) || hasCode(error, ErrorCode.Unavailable)) return undefined
        throw error
      })
      seen = found?.version ?? seen
      if (found && found.version >= atLeastVersion) return found
      if (this.closing.aborted) throw new ClosedError('this esk application')
      if (Date.now() >= deadline) {
        throw new ReadTimeoutError(this.runtime.model.name, id, atLeastVersion, seen, timeoutMs)
      }
      await sleep(Math.min(pause, Math.max(1, deadline - Date.now())))
    }
  }

  /** Like {@link find}, but throws `ESK_AGGREGATE_NOT_FOUND` instead of returning undefined. */
  async get(id: string, options: FindOptions = {}): Promise<Found<T>> {
    const found = await this.find(id, options)
    if (!found) throw new AggregateNotFoundError(this.runtime.model.name, id)
    return found
  }

  private async read(id: string, partition: number): Promise<Found<T> | undefined> {
    let snapshot: Awaited<ReturnType<SnapshotStore['read']>>
    try {
      snapshot = await this.snapshots.read(this.stream, partition, id)
    } catch (error) {
      if (error instanceof EskError) throw error
      throw new UnavailableError(
        `reading ${this.runtime.model.name} '${id}' failed: ${messageOf(error)}; the snapshot store is unreachable, retry later`,
        { aggregate: this.runtime.model.name, id },
        error,
      )
    }
    if (!snapshot) return undefined
    const model = this.runtime.model
    if (snapshot.schemaVersion !== model.schemaVersion) {
      throw new SnapshotStaleError(model.name, id, snapshot.schemaVersion, model.schemaVersion)
    }
    return { id, version: snapshot.version, state: this.runtime.hydrate(snapshot.state) }
  }

  /** Checks and sends a command; throws synchronously what it refuses before sending (see `save`). */
  private send(
    id: string,
    command: object,
    kind: CommandEnvelope['kind'],
    commandId: string = randomUUID(),
    expectedVersion: number | undefined,
    timeoutMs = this.settings.commandTimeoutMs,
  ): Promise<CommandResult> {
    this.assertOpen()
    checkId(id)
    if (commandId.length === 0 || commandId.length > MAX_ID_LENGTH) {
      throw new InvalidArgumentError(`commandId must have 1 to ${MAX_ID_LENGTH} characters`)
    }
    if (expectedVersion !== undefined && !(Number.isInteger(expectedVersion) && expectedVersion >= 0)) {
      throw new InvalidArgumentError(`expectedVersion must be a non-negative integer, got ${String(expectedVersion)}`)
    }
    const binding = this.runtime.bindingOf(command)
    const name = this.runtime.model.name
    if (kind === 'create' && !binding.creates) {
      throw new UnknownCommandError(`${binding.type} does not create a ${name}; send it with update(id, command)`, {
        aggregate: name,
        commandType: binding.type,
      })
    }
    if (kind === 'update' && binding.creates) {
      throw new UnknownCommandError(`${binding.type} creates a ${name}; send it with save(command)`, {
        aggregate: name,
        commandType: binding.type,
      })
    }
    // Fail fast on the client; the processor validates again (other producers exist).
    this.runtime.validate(binding, command)

    const envelope: CommandEnvelope = {
      commandId,
      type: binding.type,
      aggregateId: id,
      kind,
      ...(expectedVersion !== undefined && { expectedVersion }),
      payload: this.runtime.encodeCommand(command),
      replyTo: this.outcomes.address,
      sentAt: Date.now(),
    }
    const partition = partitionFor(id, this.stream.partitions)
    const traced = this.telemetry?.command(this.stream, partition, envelope)
    if (traced) return traced.settle(this.deliver(envelope, partition, timeoutMs, traced.headers))
    return this.deliver(envelope, partition, timeoutMs)
  }

  /** Sends an envelope and waits for its outcome. */
  private async deliver(envelope: CommandEnvelope, partition: number, timeoutMs: number, headers?: RecordHeaders): Promise<CommandResult> {
    const { aggregateId: id, commandId } = envelope
    const waiting = this.outcomes.wait(this.stream, partition, { aggregateId: id, commandId })
    // Calls with the default timeout share one timer (see DelayQueue); others get their own.
    const deadline = timeoutMs === this.deadlines.delayMs ? this.deadlines.add(waiting) : setTimeout(stopWaiting, timeoutMs, waiting)
    this.waiting.add(waiting)
    if (this.closing.aborted) waiting.stop()
    try {
      // The send is bounded by the same deadline: during an outage the log's client retries for
      // longer than a caller wants to wait. An outcome may also come before the send's ack. A send
      // that fails ends the wait, unless the outcome (or the deadline) came first; one that fails
      // after that is ignored. No Promise.race: every call comes here, and a race costs two promises.
      let unsent: EskError | undefined
      this.transport.send(this.stream, partition, id, encodeEnvelope(envelope), headers).catch((error: unknown) => {
        unsent = this.unsent(envelope, error)
        waiting.stop()
      })
      const outcome = await waiting.outcome
      if (!outcome) throw unsent ?? this.notAnswered({ aggregate: this.runtime.model.name, id, commandId }, timeoutMs)
      if (outcome.status === 'rejected') throw errorFromPayload(outcome.error)
      this.remember(id, outcome.version)
      return {
        id,
        version: outcome.version,
        commandId,
        ...(outcome.offset !== undefined && { position: { aggregate: this.runtime.model.name, partition, offset: outcome.offset } }),
      }
    } finally {
      if (typeof deadline === 'number') this.deadlines.cancel(deadline)
      else clearTimeout(deadline)
      waiting.stop()
      this.waiting.delete(waiting)
    }
  }

  /** Notes the version an accepted command of this repository reached (see `ownWrites`). */
  private remember(id: string, version: number): void {
    const known = this.ownWrites.get(id)
    if (known === undefined || known < version) this.ownWrites.set(id, version)
  }

  /** The error for a command the command log did not take. */
  private unsent(envelope: CommandEnvelope, error: unknown): EskError {
    if (error instanceof EskError) return error
    const { aggregateId: id, commandId, kind } = envelope
    const name = this.runtime.model.name
    return new UnavailableError(
      `sending command ${commandId} to ${name} '${id}' failed: ${messageOf(error)}; the command log is ` +
        `unreachable. Retry with the same commandId${kind === 'create' ? ' and id' : ''}: it is never applied twice`,
      { aggregate: name, id, commandId },
      error,
    )
  }

  /** The error for a command whose outcome did not arrive: the application closed, or the deadline passed. */
  private notAnswered(retry: { aggregate: string; id: string; commandId: string }, timeoutMs: number): EskError {
    if (this.closing.aborted) {
      return new ClosedError(
        'this esk application',
        `the application closed before the outcome of command ${retry.commandId} on ${retry.aggregate} '${retry.id}' arrived; ` +
          `it may still be applied: retry with the same commandId (it is never applied twice)`,
        retry,
      )
    }
    return new CommandTimeoutError(retry.aggregate, retry.id, retry.commandId, timeoutMs)
  }
}

/**
 * The aggregate id a `save` without an id gets when it names its commandId: a UUID-shaped digest
 * of the aggregate type and the commandId, the same in every process.
 */
export function idFromCommandId(aggregate: string, commandId: string): string {
  const hex = createHash('sha256').update(`${aggregate}\u0000${commandId}`).digest('hex')
  // Version 8 (custom) UUID layout: the version and variant bits say it was derived.
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

function stopWaiting(waiting: OutcomeWait): void {
  waiting.stop()
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) {
    throw new InvalidArgumentError(`aggregate id must be a string of 1 to ${MAX_ID_LENGTH} characters`)
  }
}
