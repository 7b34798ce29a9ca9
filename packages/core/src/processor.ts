import { decodeEnvelope, isUndecodable } from './codec.js'
import {
  AggregateExistsError,
  AggregateNotFoundError,
  ClosedError,
  EskError,
  ErrorCode,
  HandlerFailedError,
  UnknownCommandError,
  VersionConflictError,
  errorToPayload,
  hasCode,
} from './errors.js'
import type { Logger } from './logger.js'
import type { Observers } from './observe.js'
import type { PartitionHandle, PartitionLease, SnapshotStore, OutcomeChannel, Transport } from './ports.js'
import type {
  Checkpoint,
  CommandEnvelope,
  CommandRecord,
  EventToAppend,
  Outcome,
  Reply,
  StoredSnapshot,
} from './records.js'
import { messageOf, type AggregateRuntime, type EncodedEvent } from './runtime.js'
import { sleep, unique } from './util.js'

/** What a partition processor needs around it. */
export interface ProcessorContext<T extends object> {
  runtime: AggregateRuntime<T>
  transport: Transport
  snapshots: SnapshotStore
  outcomes: OutcomeChannel
  observers: Observers
  logger: Logger
  /** Replay from offset 0 on open, whatever the checkpoint says. */
  rebuild: boolean
  /** Largest encoded event accepted, bytes; a command producing a larger one is refused. */
  maxEventBytes: number
}

/** An aggregate as a batch sees it: the last good encoded state, and the live instance. */
interface Working<T> {
  exists: boolean
  version: number
  /** Encoded state after the last accepted command (the snapshot to write). */
  encoded: string | undefined
  /**
   * The instance commands run on, with this code's encoding of it. The purity check compares
   * against that encoding, never against stored text, which an older class may have written.
   */
  live: { state: T; encoding: string } | undefined
  /** Offset of the last event included, once known. */
  offset: number
  changed: boolean
}

/**
 * The single writer of one partition. On open it recovers: replays the events written after the
 * checkpoint into snapshots (all of them on a rebuild). Then, for each batch of commands, it loads
 * the snapshots in one round trip, runs the handlers, commits the events and the command position
 * atomically through the lease's writer, and only then saves snapshots, checkpoint and outcomes,
 * and notifies clients. The log is the truth: if saving fails, the partition repairs itself by
 * replaying from its checkpoint before it takes the next batch.
 */
export class PartitionProcessor<T extends object> implements PartitionHandle {
  private readonly name: string
  private checkpoint: Checkpoint = { offset: 0, commandPosition: -1, schemaVersion: 0 }
  private tail: Promise<void> = Promise.resolve()
  private repair: Promise<void> | undefined
  private closed = false
  private readonly stop = new AbortController()

  constructor(
    private readonly context: ProcessorContext<T>,
    private readonly lease: PartitionLease,
  ) {
    this.name = context.runtime.model.name
    lease.signal.addEventListener('abort', () => this.stop.abort(), { once: true })
  }

  /** Replays the partition into snapshots; resolves when it may take commands. */
  async open(): Promise<void> {
    await this.recover(this.context.rebuild)
  }

  process(records: CommandRecord[]): Promise<void> {
    const run = this.tail.then(async () => {
      if (this.closed || this.stop.signal.aborted) throw new ClosedError(`partition ${this.name}/${this.lease.partition}`)
      if (this.repair) await this.repair
      await this.processBatch(records)
    })
    this.tail = run.catch(() => undefined)
    return run
  }

  async close(): Promise<void> {
    this.closed = true
    this.stop.abort()
    await this.tail
    await this.repair?.catch(() => undefined)
  }

  private get schemaVersion(): number {
    return this.context.runtime.model.schemaVersion
  }

  private async processBatch(records: CommandRecord[], replayed = false): Promise<void> {
    const { snapshots } = this.context
    const stream = this.lease.stream
    const partition = this.lease.partition
    const fresh = records.filter((r) => r.position > this.checkpoint.commandPosition)
    if (fresh.length < records.length) {
      this.context.logger.debug('skipping commands already recorded in the event log', {
        aggregate: this.name,
        partition,
        skipped: records.length - fresh.length,
      })
    }
    if (fresh.length === 0) return
    const started = performance.now()
    const decoded = fresh.map((record) => ({ record, command: decodeEnvelope(record.value) }))
    const envelopes = decoded.flatMap((d) => (isUndecodable(d.command) ? [] : [d.command]))

    const loaded = await snapshots.load(
      stream,
      partition,
      unique(envelopes.map((e) => e.aggregateId)),
      unique(envelopes.map((e) => e.commandId)),
    )
    const working = this.workingSet(envelopes, loaded.snapshots)
    const lost = this.storeFellBehind(loaded.checkpoint)
    if (lost || !working) {
      // Handling commands on missing snapshots would take existing aggregates for new ones; on a
      // snapshot of another schema the checkpoint and the snapshot disagree: trust neither.
      if (replayed) {
        throw new Error(
          `the snapshot store of ${this.name}/${partition} is still inconsistent right after a replay; ` +
            `check that Redis does not evict keys (maxmemory-policy noeviction or volatile-*)`,
        )
      }
      this.context.observers.emit('error', {
        error: new Error(
          lost
            ? `the snapshot store lost the state of ${this.name}/${partition}; replaying it from the log`
            : `a snapshot of ${this.name}/${partition} has another schema version; rebuilding the partition`,
        ),
        aggregate: this.name,
        partition,
        during: 'store-check',
      })
      await this.recover(!working)
      return this.processBatch(records, true)
    }

    const loadedAt = performance.now()
    const events: EventToAppend[] = []
    const outcomes: Outcome[] = []
    const replies: Reply[] = []
    const known = loaded.outcomes
    for (const { record, command } of decoded) {
      if (isUndecodable(command)) {
        this.context.observers.emit('error', {
          error: command.error,
          aggregate: this.name,
          partition,
          during: `decoding command at position ${record.position}`,
        })
        if (command.commandId && command.aggregateId) {
          const outcome: Outcome = {
            status: 'rejected',
            commandId: command.commandId,
            aggregateId: command.aggregateId,
            error: errorToPayload(command.error),
          }
          outcomes.push(outcome)
          if (command.replyTo) replies.push({ replyTo: command.replyTo, outcome })
        }
        continue
      }
      const previous = known.get(command.commandId)
      if (previous) {
        if (command.replyTo) replies.push({ replyTo: command.replyTo, outcome: previous })
        continue
      }
      const outcome = await this.execute(command, record.position, working.get(command.aggregateId)!, events)
      known.set(command.commandId, outcome)
      outcomes.push(outcome)
      if (command.replyTo) replies.push({ replyTo: command.replyTo, outcome })
    }

    const handledAt = performance.now()
    const lastPosition = fresh[fresh.length - 1]!.position
    let offsets: number[]
    try {
      offsets = await this.lease.writer.commit(events, lastPosition)
    } catch (error) {
      if (hasCode(error, ErrorCode.Fenced)) {
        this.closed = true
        this.stop.abort()
      }
      throw error
    }
    if (offsets.length !== events.length) {
      throw new Error(`writer returned ${offsets.length} offsets for ${events.length} events`)
    }
    this.checkpoint = {
      offset: offsets.length > 0 ? offsets[offsets.length - 1]! + 1 : this.checkpoint.offset,
      commandPosition: lastPosition,
      schemaVersion: this.schemaVersion,
    }
    offsets.forEach((offset, i) => {
      working.get(events[i]!.aggregateId)!.offset = offset
    })
    const written: StoredSnapshot[] = []
    for (const [aggregateId, w] of working) {
      if (!w.changed) continue
      written.push({
        aggregateId,
        version: w.version,
        schemaVersion: this.schemaVersion,
        offset: w.offset,
        state: w.encoded!,
      })
    }
    const committedAt = performance.now()
    // Committed: the outcomes are final whatever happens to the snapshot save below.
    await this.saveOrRepair({ snapshots: written, checkpoint: this.checkpoint, outcomes })
    const savedAt = performance.now()
    if (replies.length > 0) {
      await this.context.outcomes.publish(stream, partition, replies).catch((error: unknown) => {
        this.context.observers.emit('error', { error, aggregate: this.name, partition, during: 'publish' })
      })
    }
    if (this.context.observers.count('batch') > 0) {
      this.context.observers.emit('batch', {
        aggregate: this.name,
        partition,
        commands: records.length,
        events: events.length,
        rejected: outcomes.filter((o) => o.status === 'rejected').length,
        loadMs: loadedAt - started,
        handleMs: handledAt - loadedAt,
        commitMs: committedAt - handledAt,
        saveMs: savedAt - committedAt,
      })
    }
  }

  /** True when the stored checkpoint is missing or older than the last one this processor saved. */
  private storeFellBehind(stored: Checkpoint | undefined): boolean {
    const mine = this.checkpoint
    if (mine.offset === 0 && mine.commandPosition < 0) return false
    return !stored || stored.offset < mine.offset || stored.commandPosition < mine.commandPosition
  }

  /** The batch's aggregates from their snapshots; undefined if a snapshot has another schema version. */
  private workingSet(envelopes: CommandEnvelope[], snapshots: Map<string, StoredSnapshot>): Map<string, Working<T>> | undefined {
    const working = new Map<string, Working<T>>()
    for (const { aggregateId } of envelopes) {
      if (working.has(aggregateId)) continue
      const snapshot = snapshots.get(aggregateId)
      if (snapshot && snapshot.schemaVersion !== this.schemaVersion) return undefined
      working.set(aggregateId, {
        exists: snapshot !== undefined,
        version: snapshot?.version ?? 0,
        encoded: snapshot?.state,
        live: undefined,
        offset: snapshot?.offset ?? -1,
        changed: false,
      })
    }
    return working
  }

  /** A fresh instance from the last good state, encoded by this code. */
  private instance(w: Working<T>): { state: T; encoding: string } {
    const { runtime } = this.context
    const state = w.encoded !== undefined ? runtime.hydrate(w.encoded) : runtime.create()
    return { state, encoding: runtime.dehydrate(state) }
  }

  /** Runs one command against the working state; returns its outcome and appends its events. */
  private async execute(
    envelope: CommandEnvelope,
    position: number,
    w: Working<T>,
    events: EventToAppend[],
  ): Promise<Outcome> {
    const { runtime } = this.context
    const { commandId, aggregateId } = envelope
    try {
      const { binding, command } = runtime.decodeCommand(envelope.type, envelope.payload)
      if (envelope.kind === 'create') {
        if (!binding.creates) {
          throw new UnknownCommandError(
            `${binding.type} does not create a ${this.name}; send it with update()`,
            { aggregate: this.name, commandType: binding.type },
          )
        }
        if (w.exists) throw new AggregateExistsError(this.name, aggregateId)
      } else {
        if (binding.creates) {
          throw new UnknownCommandError(`${binding.type} creates a ${this.name}; send it with save()`, {
            aggregate: this.name,
            commandType: binding.type,
          })
        }
        if (!w.exists) throw new AggregateNotFoundError(this.name, aggregateId)
      }
      if (envelope.expectedVersion !== undefined && envelope.expectedVersion !== w.version) {
        throw new VersionConflictError(this.name, aggregateId, envelope.expectedVersion, w.version)
      }

      const live = w.live ?? this.instance(w)
      const { state, encoding: before } = live
      let produced: object[]
      let encodedEvents: EncodedEvent[]
      let next: { encoded: string; state: T }
      try {
        produced = await runtime.handle(state, binding, command)
        if (runtime.dehydrate(state) !== before) {
          throw new HandlerFailedError(
            `handler ${this.name}.${binding.method} changed the aggregate's fields; command handlers must only ` +
              `return events, and event handlers change state`,
            { aggregate: this.name, commandType: binding.type },
          )
        }
        if (envelope.kind === 'create' && produced.length === 0) {
          throw new HandlerFailedError(
            `creating handler ${this.name}.${binding.method} returned no events; return at least one event`,
            { aggregate: this.name, commandType: binding.type },
          )
        }
        // Live state is built from the events as replay decodes them, and must survive its snapshot.
        const roundTripped = runtime.roundTripEvents(produced, binding)
        encodedEvents = roundTripped.encoded
        runtime.apply(state, roundTripped.decoded)
        next = runtime.roundTripState(state, binding)
      } catch (error) {
        // The instance may be half-changed: the next command starts again from the last good state.
        w.live = undefined
        throw error
      }
      if (produced.length === 0) {
        w.live = live
        return { status: 'accepted', commandId, aggregateId, version: w.version, events: 0 }
      }
      // A record the log cannot take would fail every retry of the batch and block the partition.
      const tooLarge = encodedEvents.find((e) => Buffer.byteLength(e.payload) > this.context.maxEventBytes)
      if (tooLarge) {
        w.live = undefined
        throw new HandlerFailedError(
          `handler ${this.name}.${binding.method} produced a ${tooLarge.type} of ${Buffer.byteLength(tooLarge.payload)} bytes, ` +
            `over maxEventBytes (${this.context.maxEventBytes}); keep large data elsewhere and record a reference`,
          { aggregate: this.name, commandType: binding.type, eventType: tooLarge.type },
        )
      }
      for (const { type, payload } of encodedEvents) {
        w.version += 1
        events.push({ aggregateId, type, version: w.version, commandId, commandPosition: position, payload })
      }
      w.live = { state: next.state, encoding: next.encoded }
      w.exists = true
      w.encoded = next.encoded
      w.changed = true
      return { status: 'accepted', commandId, aggregateId, version: w.version, events: produced.length }
    } catch (error) {
      const known =
        error instanceof EskError || hasCode(error, ErrorCode.CommandRejected)
          ? (error as EskError)
          : new HandlerFailedError(`processing ${envelope.type} failed: ${messageOf(error)}`, {
              aggregate: this.name,
            })
      if (known.code === ErrorCode.HandlerFailed) {
        this.context.logger.warn('command handler failed', {
          aggregate: this.name,
          partition: this.lease.partition,
          commandId,
          error: known.message,
        })
      }
      return { status: 'rejected', commandId, aggregateId, error: errorToPayload(known) }
    }
  }

  /** Saves after a commit; when that fails, the partition repairs itself from the log. */
  private async saveOrRepair(write: Parameters<SnapshotStore['save']>[2]): Promise<void> {
    try {
      await this.context.snapshots.save(this.lease.stream, this.lease.partition, write)
    } catch (error) {
      this.context.observers.emit('error', {
        error,
        aggregate: this.name,
        partition: this.lease.partition,
        during: 'snapshot-save',
      })
      this.repair ??= this.repairLoop()
    }
  }

  /** Replays from the stored checkpoint until it succeeds or the partition closes. */
  private async repairLoop(): Promise<void> {
    for (let attempt = 0; !this.stop.signal.aborted; attempt++) {
      await sleep(Math.min(50 * 2 ** attempt, 5_000), this.stop.signal)
      try {
        await this.recover(false)
        this.repair = undefined
        return
      } catch (error) {
        this.context.observers.emit('error', {
          error,
          aggregate: this.name,
          partition: this.lease.partition,
          during: 'repair',
        })
      }
    }
  }

  /**
   * Replays committed events after the checkpoint (from 0 on a rebuild) into snapshots, outcomes
   * and the checkpoint, batch by batch. Afterwards commands at or below the highest position seen
   * in the log are skipped, whatever the transport's own committed position says.
   */
  private async recover(forceRebuild: boolean): Promise<void> {
    const { runtime, snapshots, transport, observers } = this.context
    const stream = this.lease.stream
    const partition = this.lease.partition
    const started = Date.now()
    let checkpoint = await snapshots.checkpoint(stream, partition)
    const rebuild = forceRebuild || !checkpoint || checkpoint.schemaVersion !== this.schemaVersion
    if (rebuild || !checkpoint) {
      await snapshots.reset(stream, partition)
      checkpoint = { offset: 0, commandPosition: -1, schemaVersion: this.schemaVersion }
    }
    const from = checkpoint.offset
    let count = 0
    const touched = new Set<string>()
    const progress = (phase: 'start' | 'batch' | 'end'): void =>
      observers.emit('recovery', {
        aggregate: this.name,
        partition,
        phase,
        rebuild,
        from,
        events: count,
        aggregates: touched.size,
        elapsedMs: Date.now() - started,
      })
    progress('start')
    // A command's events may straddle two batches: remember where the last one began.
    let current: { commandId: string; firstVersion: number } | undefined
    // What this processor committed itself must be replayed even if the log does not show it yet.
    const committed = this.checkpoint.offset
    for await (const batch of transport.readEvents(stream, partition, from, committed)) {
      if (this.stop.signal.aborted) return
      if (batch.length === 0) continue
      const loaded = await snapshots.load(stream, partition, unique(batch.map((e) => e.aggregateId)), [])
      const working = new Map<string, { state: T | undefined; snapshot: StoredSnapshot | undefined; changed: boolean }>()
      const outcomes = new Map<string, Outcome>()
      let commandPosition: number = checkpoint.commandPosition
      for (const event of batch) {
        let w = working.get(event.aggregateId)
        if (!w) {
          const snapshot = loaded.snapshots.get(event.aggregateId)
          if (snapshot && snapshot.schemaVersion !== this.schemaVersion) {
            if (!rebuild) return this.recover(true)
            throw new Error(`snapshot of another schema version survived a reset of ${this.name}/${partition}`)
          }
          w = { state: undefined, snapshot, changed: false }
          working.set(event.aggregateId, w)
        }
        commandPosition = Math.max(commandPosition, event.commandPosition)
        if (current?.commandId !== event.commandId) current = { commandId: event.commandId, firstVersion: event.version }
        outcomes.set(event.commandId, {
          status: 'accepted',
          commandId: event.commandId,
          aggregateId: event.aggregateId,
          version: event.version,
          events: event.version - current.firstVersion + 1,
        })
        if (w.snapshot && w.snapshot.offset >= event.offset) continue
        w.state ??= w.snapshot ? runtime.hydrate(w.snapshot.state) : runtime.create()
        runtime.apply(w.state, [runtime.decodeEvent(event)])
        w.snapshot = {
          aggregateId: event.aggregateId,
          version: event.version,
          schemaVersion: this.schemaVersion,
          offset: event.offset,
          state: '',
        }
        w.changed = true
        touched.add(event.aggregateId)
      }
      const written: StoredSnapshot[] = []
      for (const w of working.values()) {
        if (w.changed) written.push({ ...w.snapshot!, state: runtime.dehydrate(w.state!) })
      }
      checkpoint = {
        offset: batch[batch.length - 1]!.offset + 1,
        commandPosition,
        schemaVersion: this.schemaVersion,
      }
      await snapshots.save(stream, partition, { snapshots: written, checkpoint, outcomes: [...outcomes.values()] })
      count += batch.length
      progress('batch')
    }
    this.checkpoint = checkpoint
    progress('end')
  }
}
