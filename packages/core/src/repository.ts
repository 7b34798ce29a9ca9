import { randomUUID } from 'node:crypto'
import { encodeEnvelope } from './codec.js'
import {
  AggregateNotFoundError,
  ClosedError,
  CommandTimeoutError,
  InvalidArgumentError,
  ReadTimeoutError,
  SnapshotStaleError,
  UnknownCommandError,
  errorFromPayload,
} from './errors.js'
import type { OutcomeChannel, SnapshotStore, StreamSpec, Transport } from './ports.js'
import type { CommandEnvelope } from './records.js'
import type { AggregateRuntime } from './runtime.js'
import { partitionFor, sleep } from './util.js'

/** Options of {@link Repository.save}. */
export interface SaveOptions {
  /** The new aggregate's id; a random UUID when omitted. */
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
  /** Wait until the snapshot has reached this version (read your own writes). */
  atLeastVersion?: number
  /** How long `atLeastVersion` may wait; defaults to the application's `readTimeoutMs`. */
  timeoutMs?: number
}

/** The result of an accepted command. */
export interface CommandResult {
  id: string
  /** The aggregate's version after the command. */
  version: number
  commandId: string
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

/**
 * Sends commands for one aggregate type and reads its snapshots. Every call sends the command to
 * the partition of its aggregate id, waits for the processor's outcome, and turns a rejection
 * into the typed error the processor raised.
 */
export class Repository<T extends object> {
  constructor(
    private readonly runtime: AggregateRuntime<T>,
    private readonly stream: StreamSpec,
    private readonly transport: Transport,
    private readonly snapshots: SnapshotStore,
    private readonly outcomes: OutcomeChannel,
    private readonly settings: RepositorySettings,
    private readonly assertOpen: () => void,
    private readonly closing: AbortSignal,
  ) {}

  /** Creates an aggregate with a creating command. Throws `ESK_AGGREGATE_EXISTS` if the id is taken. */
  async save(command: object, options: SaveOptions = {}): Promise<CommandResult> {
    const id = options.id ?? randomUUID()
    return this.send(id, command, 'create', options.commandId, undefined, options.timeoutMs)
  }

  /** Changes an existing aggregate. Throws `ESK_AGGREGATE_NOT_FOUND`, `ESK_VERSION_CONFLICT`, or the handler's rejection. */
  async update(id: string, command: object, options: UpdateOptions = {}): Promise<CommandResult> {
    return this.send(id, command, 'update', options.commandId, options.expectedVersion, options.timeoutMs)
  }

  /** Reads an aggregate's snapshot, or undefined when it does not exist (yet). */
  async find(id: string, options: FindOptions = {}): Promise<Found<T> | undefined> {
    this.assertOpen()
    checkId(id)
    const partition = partitionFor(id, this.stream.partitions)
    if (options.atLeastVersion === undefined) return this.read(id, partition)
    const timeoutMs = options.timeoutMs ?? this.settings.readTimeoutMs
    const deadline = Date.now() + timeoutMs
    let seen: number | undefined
    for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
      const found = await this.read(id, partition).catch((error: unknown) => {
        // A stale snapshot is being rebuilt; keep waiting like any other lag.
        if ((error as { code?: string }).code === 'ESK_SNAPSHOT_STALE') return undefined
        throw error
      })
      seen = found?.version ?? seen
      if (found && found.version >= options.atLeastVersion) return found
      if (this.closing.aborted) throw new ClosedError('this esk application')
      if (Date.now() >= deadline) {
        throw new ReadTimeoutError(this.runtime.model.name, id, options.atLeastVersion, seen, timeoutMs)
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
    const snapshot = await this.snapshots.read(this.stream, partition, id)
    if (!snapshot) return undefined
    const model = this.runtime.model
    if (snapshot.schemaVersion !== model.schemaVersion) {
      throw new SnapshotStaleError(model.name, id, snapshot.schemaVersion, model.schemaVersion)
    }
    return { id, version: snapshot.version, state: this.runtime.hydrate(snapshot.state) }
  }

  private async send(
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
    const timeout = new AbortController()
    const timer = setTimeout(() => timeout.abort(), timeoutMs)
    const onClose = (): void => timeout.abort()
    this.closing.addEventListener('abort', onClose, { once: true })
    try {
      const waiting = this.outcomes.wait(this.stream, partition, commandId, timeout.signal)
      try {
        await this.transport.send(this.stream, partition, id, encodeEnvelope(envelope))
      } catch (error) {
        timeout.abort()
        await waiting.catch(() => undefined)
        throw error
      }
      const outcome = await waiting
      if (!outcome && this.closing.aborted) {
        throw new ClosedError(
          'this esk application',
          `the application closed before the outcome of command ${commandId} on ${name} '${id}' arrived; ` +
            `it may still be applied: retry with the same commandId (it is never applied twice)`,
          { aggregate: name, id, commandId },
        )
      }
      if (!outcome) throw new CommandTimeoutError(name, id, commandId, timeoutMs)
      if (outcome.status === 'rejected') throw errorFromPayload(outcome.error)
      return { id, version: outcome.version, commandId }
    } finally {
      clearTimeout(timer)
      this.closing.removeEventListener('abort', onClose)
    }
  }
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH) {
    throw new InvalidArgumentError(`aggregate id must be a string of 1 to ${MAX_ID_LENGTH} characters`)
  }
}
