import { randomUUID } from 'node:crypto'
import { decodeEnvelope, isUndecodable } from './codec.js'
import {
  AggregateExistsError,
  AggregateNotFoundError,
  ClosedError,
  CommandLogTruncatedError,
  EskError,
  ErrorCode,
  FencedError,
  HandlerFailedError,
  SchemaAheadError,
  UnknownCommandError,
  VersionConflictError,
  errorToPayload,
  hasCode,
} from './errors.js'
import type { Logger } from './logger.js'
import type { Observers, PartitionState } from './observe.js'
import { commandKey, type CommandKey, type LoadedBatch, type PartitionHandle, type PartitionLease, type SnapshotStore, type OutcomeChannel, type Transport } from './ports.js'
import { FifoMap, LruMap } from './recent.js'
import type {
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
} from './records.js'
import type { CommandBinding } from './metadata.js'
import { messageOf, type AggregateRuntime, type EncodedEvent } from './runtime.js'
import type { DecodedRecord, Telemetry } from './telemetry.js'
import { sleep } from './util.js'

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
  /** Accepted command ids remembered per aggregate for de-duplication. */
  dedupWindow: number
  /** Longest a command handler may take; a slower one is refused and abandoned. */
  handlerTimeoutMs: number
  /** Aggregates held in memory between batches (0: none). */
  snapshotCacheSize: number
  /** Aggregates a replay holds in memory across the batches it reads (at least 1). */
  replayCacheSize: number
  /** Traces and metrics, when `@opentelemetry/api` is there. */
  telemetry?: Telemetry
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
  /** The aggregate's de-duplication window, as stored and then extended by this batch. */
  recent: RecentCommand[]
  /**
   * True once `recent` is this batch's own copy, extended in place by its next commands. The
   * stored window is shared (with the held snapshot, and a save that may still be encoding it)
   * and is never changed.
   */
  ownsRecent: boolean
  /** See {@link Held.ids}: kept with `recent`, from the same held entry or undefined. */
  ids: number[] | undefined
  changed: boolean
  /** The snapshot the batch started from, held or loaded: held again as it is if the batch changes nothing. */
  from: StoredSnapshot | undefined
  /** The snapshot this batch writes, once committed: held after the batch (the store may note its `windowMemo` on it). */
  written: StoredSnapshot | undefined
}

/** An accepted command of a batch whose events wait for their offsets: its window entry and outcome learn the last one. */
interface Placed {
  w: Working<unknown>
  entry: RecentCommand
  outcome: Outcome & { status: 'accepted' }
  /** Index in the batch's events of the command's last event. */
  last: number
}

/** A command whose handler was called: what {@link PartitionProcessor.conclude} needs of it. */
interface Started<T> {
  binding: CommandBinding
  live: { state: T; encoding: string }
  handled: object[] | Promise<object[]>
}

/** An aggregate held between batches: its snapshot as last saved (undefined: it does not exist) and its live instance. */
interface Held<T> {
  snapshot: StoredSnapshot | undefined
  live: { state: T; encoding: string } | undefined
  /**
   * The {@link idHash}es of the command ids of the snapshot's window, and maybe of commands it has
   * dropped since: a list only ever appended to, so a command whose hash it lacks is in no entry of
   * the window. It spares new commands (nearly all of them) a scan of the whole window, whose
   * entries lie all over the heap, for one of a few small integers side by side. Undefined until a
   * command of the aggregate needs it.
   */
  ids: number[] | undefined
}

/** How many hashes beyond `dedupWindow` a window's {@link Held.ids} may hold before it is built again from the window. */
const IDS_SLACK = 16

/** An aggregate during a replay. */
interface Replayed<T> {
  aggregateId: string
  /** The instance events are applied to; created on its first event. */
  state: T | undefined
  /** Its snapshot as loaded, before the replay. */
  stored: StoredSnapshot | undefined
  /** The encoding of its state as last saved (or loaded). */
  encoded: string | undefined
  version: number
  offset: number
  recent: RecentCommand[]
  /** Changed since the last save: listed in the replay's `dirty`. */
  dirty: boolean
  /** Counted in the replay's `touched`. */
  touched: boolean
  /** Its last snapshot this replay wrote (the store may note its `windowMemo` on it). */
  written: StoredSnapshot | undefined
}

/** Events a replay folds before it saves, at least (fewer only at its end, or to forget aggregates). */
const REPLAY_SAVE_EVENTS = 50_000
/**
 * A replay also waits until it folded this many events per aggregate it would save. Writing an
 * aggregate (encoding it, and the store's script) costs several times what folding an event does:
 * saving every changed aggregate after a few events each would make a replay several times slower.
 */
const REPLAY_EVENTS_PER_SAVED = 100
/**
 * And it waits this long since its start or its last save, ms. A save during a replay only spares
 * a replay that is stopped before its end from folding the same events again, and it rewrites every
 * aggregate changed since the last one: a replay that ends sooner than this writes each aggregate
 * once, at its end.
 */
const REPLAY_SAVE_INTERVAL_MS = 5_000
/**
 * Snapshots written by one store call during a replay, at most. A Redis script runs alone: this
 * bounds how long a replay keeps every other partition on the same Redis waiting (9 ms on the
 * benchmark machine).
 */
const REPLAY_SAVE_CHUNK = 1_000

/**
 * The replies of a committed batch, split by when their outcomes are recorded: `now`, by the log
 * or by an earlier save (accepted commands, and earlier outcomes answered again); `withSave`, by
 * this batch's save only (`unlogged`: refusals, commands with no events), so they go out after it.
 */
function splitReplies(replies: Reply[], unlogged: readonly Outcome[]): { now: Reply[]; withSave: Reply[] } {
  if (unlogged.length === 0) return { now: replies, withSave: [] }
  const pending = new Set(unlogged)
  const now: Reply[] = []
  const withSave: Reply[] = []
  for (const reply of replies) (pending.has(reply.outcome) ? withSave : now).push(reply)
  return { now, withSave }
}

/**
 * Each event's aggregate among those a replay already holds (undefined where not), and the
 * aggregates of the batch it does not hold yet, each once. The fold takes an event's aggregate from
 * the first list: one map lookup per event, where listing the missing ones and then folding took two.
 */
function resolveReplayed<R>(batch: readonly StoredEvent[], replayed: ReadonlyMap<string, R>): { met: Array<R | undefined>; missing: string[] } {
  const met = new Array<R | undefined>(batch.length)
  const missing: string[] = []
  let listed: Set<string> | undefined
  for (let i = 0; i < batch.length; i++) {
    const { aggregateId } = batch[i]!
    const r = replayed.get(aggregateId)
    if (r !== undefined) {
      met[i] = r
      continue
    }
    listed ??= new Set()
    if (listed.has(aggregateId)) continue
    listed.add(aggregateId)
    missing.push(aggregateId)
  }
  return { met, missing }
}

const INITIAL_CHECKPOINT: Checkpoint = { offset: 0, commandPosition: -1, schemaVersion: 0 }

/**
 * The single writer of one partition.
 *
 * Its life is a small state machine, reported through the `state` observation:
 * `recovering` (taking the store's ownership and replaying the events after the checkpoint, or all
 * of them on a rebuild), `ready` (taking commands), `repairing` (the store lost data or was taken
 * over under it: it takes the ownership back and replays before the next command), `fenced` (the
 * log has a newer writer: it writes nothing more and the transport decides whether to reopen it),
 * and `closed`.
 *
 * For each batch it loads the snapshots, with the store's ownership, in one round trip, runs the
 * handlers, commits the events and the command position atomically through the lease's writer, and
 * only then saves snapshots, checkpoint and outcomes (fenced by its owner token) and notifies
 * clients. The log is the truth: whenever the store cannot be trusted, the partition replays.
 */
export class PartitionProcessor<T extends object> implements PartitionHandle {
  private readonly name: string
  private checkpoint: Checkpoint = INITIAL_CHECKPOINT
  /** Owner token in the store; a new one for every recovery. */
  private token = ''
  private tail: Promise<void> = Promise.resolve()
  private current: PartitionState = 'opening'
  private readonly stop = new AbortController()
  /**
   * Aggregates as this processor last saved them, least recently used first, bounded by
   * `snapshotCacheSize`. The store is fenced and this is the partition's only writer, so they are
   * what the store holds, or the store lost them (a refused save then repairs the partition).
   * Emptied by every recovery.
   */
  private readonly held = new LruMap<string, Held<T>>()
  /**
   * The command keys of the store's unlogged outcomes, oldest first, when the store can tell them:
   * a batch needs the store's copy only for commands among them. Undefined: load every command.
   */
  private unlogged: { keys: FifoMap<string, true>; window: number } | undefined
  /**
   * The save of the last committed batch, while it runs: the next batch is handled meanwhile, but
   * loads from the store, commits and repairs only once it is over. Undefined when none runs.
   */
  private saving: Promise<void> | undefined
  /** Why the last batch's save failed for good (the partition was taken over or closed), if it did. */
  private saveFailure: unknown

  constructor(
    private readonly context: ProcessorContext<T>,
    private readonly lease: PartitionLease,
  ) {
    this.name = context.runtime.model.name
    lease.signal.addEventListener('abort', () => this.stop.abort(), { once: true })
  }

  /** The lifecycle state. */
  get state(): PartitionState {
    return this.current
  }

  /** The owner token this processor holds in the store ('' before its first recovery). */
  get owner(): string {
    return this.token
  }

  /** The highest command position its events and outcomes include (-1 before any). */
  get commandPosition(): number {
    return this.checkpoint.commandPosition
  }

  /** Takes the store's ownership and replays the partition into snapshots; resolves when it may take commands. */
  async open(): Promise<void> {
    this.transition('recovering')
    await this.recover(this.context.rebuild)
    const end = await this.lease.commandLogEnd?.()
    if (end !== undefined && end <= this.checkpoint.commandPosition) {
      const { partition } = this.lease
      const handled = this.checkpoint.commandPosition
      const error = new CommandLogTruncatedError(
        `the command log of ${this.name}/${partition} ends at position ${end}, but its events record commands up to ` +
          `position ${handled}: the command topic was recreated or truncated. Its commands are not processed (they ` +
          `would be skipped as already done): restore the topic, or see "A command topic was deleted or truncated" ` +
          `in docs/operations.md`,
        { aggregate: this.name, partition, end, handled },
      )
      this.transition('failed', error)
      throw error
    }
    this.transition('ready')
  }

  process(records: CommandRecord[]): Promise<void> {
    const run = this.tail.then(async () => {
      if (this.saveFailure !== undefined) throw this.saveFailure
      if (this.current === 'closed' || this.current === 'fenced' || this.stop.signal.aborted) {
        throw new ClosedError(`partition ${this.name}/${this.lease.partition}`)
      }
      await this.processBatch(records)
    })
    this.tail = run.catch(() => undefined)
    return run
  }

  async close(): Promise<void> {
    this.stop.abort()
    await this.tail
    await this.saving?.catch(() => undefined)
    this.transition('closed')
  }

  /** Waits for the last committed batch's save; throws if it failed for good. */
  private async saved(): Promise<void> {
    if (this.saving) await this.saving
    if (this.saveFailure !== undefined) throw this.saveFailure
  }

  private get schemaVersion(): number {
    return this.context.runtime.model.schemaVersion
  }

  private transition(state: PartitionState, error?: unknown): void {
    if (this.current === state && state !== 'repairing') return
    this.current = state
    this.context.observers.emit('state', {
      aggregate: this.name,
      partition: this.lease.partition,
      state,
      ...(error !== undefined && { error }),
    })
  }

  private async processBatch(records: CommandRecord[], repaired = false): Promise<void> {
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
    const decoded: DecodedRecord[] = []
    const envelopes: CommandEnvelope[] = []
    for (const record of fresh) {
      const command = decodeEnvelope(record.value)
      decoded.push({ record, command })
      if (!isUndecodable(command)) envelopes.push(command)
    }

    // Aggregates held from earlier batches are taken out, and put back once the batch is saved:
    // a batch that fails half way leaves nothing half-applied behind.
    const held = new Map<string, Held<T>>()
    const missing: string[] = []
    const known = this.unlogged
    const maybeUnlogged: CommandKey[] = []
    let listed: Set<string> | undefined
    for (const envelope of envelopes) {
      const { aggregateId, commandId } = envelope
      if (!known || known.keys.has(commandKey(envelope))) maybeUnlogged.push({ aggregateId, commandId })
      if (held.has(aggregateId)) continue
      const entry = this.held.take(aggregateId)
      if (entry) {
        held.set(aggregateId, entry)
      } else if (!listed?.has(aggregateId)) {
        ;(listed ??= new Set()).add(aggregateId)
        missing.push(aggregateId)
      }
    }
    let loaded: LoadedBatch
    if (missing.length === 0 && maybeUnlogged.length === 0) {
      // Everything the batch needs is here; the save that follows is fenced as always.
      loaded = { owned: true, claimed: true, snapshots: new Map(), unlogged: new Map(), checkpoint: undefined }
    } else {
      // The store holds the last batch's snapshots and outcomes once its save is over.
      await this.saved()
      try {
        loaded = await snapshots.load(stream, partition, this.token, missing, maybeUnlogged)
      } catch (error) {
        if (!hasCode(error, ErrorCode.Serialization) || repaired) throw error
        return this.rebuildCorrupt(records, error)
      }
    }
    const ahead = [...loaded.snapshots.values()].find((s) => s.schemaVersion > this.schemaVersion)
    if (ahead) throw this.schemaAhead(ahead.schemaVersion)
    // Another processor took the store after this one: it was fenced (or will be, by the log).
    // Taking the store back here, without a new fence in the log, could go on for ever between two.
    if (!loaded.owned && loaded.claimed) throw this.superseded()
    const working = this.workingSet(envelopes, loaded.snapshots, held)
    if (!loaded.owned || !working) {
      // Handling commands on missing snapshots would take existing aggregates for new ones; on a
      // snapshot of another schema the checkpoint and the snapshot disagree: trust neither.
      if (repaired) {
        throw new Error(
          `the snapshot store of ${this.name}/${partition} is still inconsistent right after a replay; ` +
            `check that Redis does not evict keys (maxmemory-policy noeviction)`,
        )
      }
      this.context.logger.warn(
        !loaded.owned
          ? 'the snapshot store lost this partition (flushed, evicted or restarted empty); replaying it from the log'
          : 'a snapshot has an older schema version; rebuilding the partition',
        { code: 'ESK_STORE_REPAIR', aggregate: this.name, partition },
      )
      await this.repair(!working)
      return this.processBatch(records, true)
    }

    const loadedAt = performance.now()
    const traced = this.context.telemetry?.batch(stream, partition, decoded)
    const events: EventToAppend[] = []
    const unlogged: Outcome[] = []
    const deadLetters: DeadLetter[] = []
    const replies: Reply[] = []
    const placed: Placed[] = []
    // Outcomes decided in this batch, so a duplicate inside the batch gets the same answer.
    const decided = new Map<string, Outcome>()
    // For telemetry: each record's outcome, undefined for a duplicate answered from an earlier one.
    const fates: Array<Outcome | undefined> | undefined = traced ? [] : undefined
    for (const { record, command } of decoded) {
      if (isUndecodable(command)) {
        this.context.logger.warn('refusing a command record that cannot be decoded', {
          code: command.error.code,
          aggregate: this.name,
          partition,
          position: record.position,
          error: command.error.message,
        })
        deadLetters.push({
          position: record.position,
          value: record.value,
          reason: errorToPayload(command.error),
          ...(command.aggregateId !== undefined && { aggregateId: command.aggregateId }),
          ...(command.commandId !== undefined && { commandId: command.commandId }),
        })
        if (command.commandId && command.aggregateId) {
          const key = commandKey({ aggregateId: command.aggregateId, commandId: command.commandId })
          let outcome = decided.get(key) ?? loaded.unlogged.get(key)
          if (!outcome) {
            outcome = { status: 'rejected', commandId: command.commandId, aggregateId: command.aggregateId, error: errorToPayload(command.error) }
            decided.set(key, outcome)
            unlogged.push(outcome)
          }
          if (command.replyTo) replies.push({ replyTo: command.replyTo, outcome })
        }
        fates?.push(undefined)
        continue
      }
      const key = commandKey(command)
      const w = working.get(command.aggregateId)!
      const previous = decided.get(key) ?? recorded(w, command) ?? loaded.unlogged.get(key)
      if (previous) {
        if (command.replyTo) replies.push({ replyTo: command.replyTo, outcome: previous })
        fates?.push(undefined)
        continue
      }
      let outcome: Outcome
      try {
        const executed = this.execute(command, record.position, w, events, placed)
        outcome = executed instanceof Promise ? await executed : executed
      } catch (error) {
        // Nothing of this batch is committed yet: rebuild, then take the whole batch again.
        traced?.failed(error)
        if (!(error instanceof CorruptSnapshot) || repaired) throw error
        return this.rebuildCorrupt(records, error)
      }
      decided.set(key, outcome)
      fates?.push(outcome)
      if (outcome.status === 'rejected' || outcome.events === 0) unlogged.push(outcome)
      if (outcome.status === 'rejected' && POISON.has(outcome.error.code)) {
        deadLetters.push({ position: record.position, value: record.value, reason: outcome.error, aggregateId: command.aggregateId, commandId: command.commandId })
      }
      if (command.replyTo) replies.push({ replyTo: command.replyTo, outcome })
    }

    // One batch at a time is committed and not yet saved: a save that failed repairs the partition
    // (from the log) before this batch commits.
    try {
      await this.saved()
    } catch (error) {
      traced?.failed(error)
      throw error
    }
    const handledAt = performance.now()
    const lastPosition = fresh[fresh.length - 1]!.position
    let offsets: number[]
    traced?.committing(events)
    try {
      offsets = await this.lease.writer.commit(events, lastPosition, deadLetters)
    } catch (error) {
      traced?.failed(error)
      if (hasCode(error, ErrorCode.Fenced)) {
        this.transition('fenced', error)
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
    // Each accepted command learns where its last event is, for read-your-writes on read models,
    // and so does its window entry (made in this batch, so no store has seen it yet); an aggregate's
    // offset is that of its last command's last event.
    for (const { w, entry, outcome, last } of placed) {
      const offset = offsets[last]!
      entry.offset = offset
      outcome.offset = offset
      w.offset = offset
    }
    const written: StoredSnapshot[] = []
    for (const [aggregateId, w] of working) {
      if (!w.changed) continue
      w.written = {
        aggregateId,
        version: w.version,
        schemaVersion: this.schemaVersion,
        offset: w.offset,
        state: w.encoded!,
        recent: w.recent,
        windowMemo: w.from?.windowMemo,
      }
      written.push(w.written)
    }
    const committedAt = performance.now()
    // Committed: the outcomes are final whatever happens to the save, and the aggregates as this
    // batch left them are the truth, so the next batch may be handled on them while this one is
    // saved. Clients hear of the outcomes only once they are recorded, so a retry after the reply
    // is always answered the same way: an accepted command's outcome is recorded by its events,
    // now in the log, so its reply goes out now, ahead of the save; an outcome this batch records
    // only in the store (a refusal, a command with no events) waits for the save. The next batch
    // loads refusals among them from the store only after this save (see `saved`).
    this.hold(working)
    this.noteUnlogged(unlogged)
    const { now, withSave } = splitReplies(replies, unlogged)
    const notified = now.length > 0 ? this.notify(now) : undefined
    const saving = (async () => {
      // Encoding the save takes a while: let the transport ask for the next batch first.
      await new Promise((resolve) => setImmediate(resolve))
      const published = await this.saveAfterCommit(written, unlogged, withSave)
      const savedAt = performance.now()
      if (traced) traced.done(fates!)
      if (withSave.length > 0 && !published) await this.notify(withSave)
      await notified
      if (this.context.observers.count('batch') > 0) {
        this.context.observers.emit('batch', {
          aggregate: this.name,
          partition,
          commands: records.length,
          events: events.length,
          rejected: unlogged.filter((o) => o.status === 'rejected').length,
          loadMs: loadedAt - started,
          handleMs: handledAt - loadedAt,
          commitMs: committedAt - handledAt,
          saveMs: savedAt - committedAt,
        })
      }
    })()
    this.saving = saving
    saving.then(
      () => {
        if (this.saving === saving) this.saving = undefined
      },
      (error: unknown) => {
        // Taken over, closed, or a newer schema: the state says so already, and the next batch
        // (or the transport's next call) gets this error.
        this.saveFailure = error
        traced?.failed(error)
        if (error instanceof ClosedError) return
        // The batch's commands were consumed: the transport gives the lease up now, rather than at
        // a next batch that may not come (the batch's own callers wait for their outcomes).
        this.lease.failed?.(error, this.checkpoint.commandPosition + 1)
      },
    )
  }

  /**
   * Saves what a commit changed. When the store refuses (lost, taken over) or fails, the partition
   * repairs itself from the log, which holds every accepted command, and then records again the
   * outcomes the log cannot show (refusals). Returns once the outcomes are recorded, or throws when
   * the partition closed first.
   */
  private async saveAfterCommit(snapshots: StoredSnapshot[], unlogged: Outcome[], replies: Reply[]): Promise<boolean> {
    const { stream, partition } = this.lease
    const publishes = this.context.snapshots.publishesReplies === true && replies.length > 0
    const write = { snapshots, checkpoint: this.checkpoint, unlogged, ...(publishes && { replies }) }
    try {
      await this.context.snapshots.save(stream, partition, this.token, write)
      return publishes
    } catch (error) {
      if (takenOver(error)) throw this.superseded()
      this.context.logger.warn('saving snapshots after a commit failed; replaying the partition from the log', {
        code: hasCode(error, ErrorCode.Fenced) ? 'ESK_STORE_REPAIR' : 'ESK_STORE_SAVE_FAILED',
        aggregate: this.name,
        partition,
        error,
      })
    }
    for (let attempt = 0; ; attempt++) {
      if (this.stop.signal.aborted) throw new ClosedError(`partition ${this.name}/${partition}`)
      try {
        await this.repair(false)
        if (unlogged.length > 0) {
          await this.context.snapshots.save(stream, partition, this.token, { snapshots: [], checkpoint: this.checkpoint, unlogged })
          this.noteUnlogged(unlogged)
        }
        return false
      } catch (error) {
        if (hasCode(error, ErrorCode.SchemaAhead) || takenOver(error)) throw error
        this.context.observers.emit('error', { error, aggregate: this.name, partition, during: 'repair' })
        await sleep(Math.min(50 * 2 ** attempt, 5_000), this.stop.signal)
      }
    }
  }

  /** Tells waiting clients their outcomes; best effort (a client that misses one reads the recorded outcome), so never throws. */
  private notify(replies: Reply[]): Promise<void> {
    return this.context.outcomes.publish(this.lease.stream, this.lease.partition, replies).catch((error: unknown) => {
      this.context.logger.warn('publishing replies failed; clients find the recorded outcomes by polling', {
        aggregate: this.name,
        partition: this.lease.partition,
        error,
      })
    })
  }

  /** Notes unlogged outcomes just recorded, as the store keeps them: first one wins, oldest go first. */
  private noteUnlogged(outcomes: Outcome[]): void {
    const known = this.unlogged
    if (!known) return
    for (const outcome of outcomes) known.keys.add(commandKey(outcome), true)
    known.keys.trim(known.window)
  }

  /** Keeps what a replay saved for the first batches, as far as `snapshotCacheSize` allows. */
  private holdReplayed(replayed: Map<string, Replayed<T>>): void {
    if (this.context.snapshotCacheSize === 0) return
    for (const [aggregateId, r] of replayed) {
      // Every change was saved before this: the snapshot last written, or else the one loaded, is
      // the aggregate as replayed, and the very object the store noted its `windowMemo` on.
      const snapshot = r.written ?? r.stored
      if (!snapshot) continue
      this.held.set(aggregateId, {
        snapshot,
        // Hydrated from the snapshot on first use, as a restarted processor would.
        live: undefined,
        ids: undefined,
      })
    }
    this.trimHeld()
  }

  /** Keeps a saved batch's aggregates for the next batches, dropping the least recently used. */
  private hold(working: Map<string, Working<T>>): void {
    if (this.context.snapshotCacheSize === 0) return
    // The batch took its aggregates out of `held`: set() puts each back as the most recently used.
    // The snapshot held is the very object saved, so what the store notes on it once saved (its
    // `windowMemo`) reaches the aggregate's next save.
    for (const [aggregateId, w] of working) {
      this.held.set(aggregateId, {
        snapshot: w.changed ? w.written : w.from,
        live: w.live,
        ids: w.exists ? w.ids : undefined,
      })
    }
    this.trimHeld()
  }

  /** Drops the least recently used held aggregates beyond `snapshotCacheSize`. */
  private trimHeld(): void {
    this.held.trim(this.context.snapshotCacheSize)
  }

  /** A snapshot that cannot be read is the store's fault, not the command's: rebuild the partition from the log. */
  private async rebuildCorrupt(records: CommandRecord[], error: unknown): Promise<void> {
    await this.saved()
    this.context.logger.warn('a stored snapshot cannot be read; rebuilding the partition from the log', {
      code: 'ESK_STORE_CORRUPT',
      aggregate: this.name,
      partition: this.lease.partition,
      error,
    })
    await this.repair(true)
    return this.processBatch(records, true)
  }

  private async repair(rebuild: boolean): Promise<void> {
    this.transition('repairing')
    await this.recover(rebuild)
    this.transition('ready')
  }

  /**
   * The batch's aggregates, from those held in memory or else their loaded snapshots; undefined if
   * a loaded snapshot has an older schema version.
   */
  private workingSet(
    envelopes: CommandEnvelope[],
    snapshots: Map<string, StoredSnapshot>,
    held: Map<string, Held<T>>,
  ): Map<string, Working<T>> | undefined {
    const working = new Map<string, Working<T>>()
    for (const { aggregateId } of envelopes) {
      if (working.has(aggregateId)) continue
      const entry = held.get(aggregateId)
      const snapshot = entry ? entry.snapshot : snapshots.get(aggregateId)
      if (snapshot && snapshot.schemaVersion !== this.schemaVersion) return undefined
      working.set(aggregateId, {
        exists: snapshot !== undefined,
        version: snapshot?.version ?? 0,
        encoded: snapshot?.state,
        live: entry?.live,
        offset: snapshot?.offset ?? -1,
        recent: snapshot?.recent ?? [],
        ownsRecent: false,
        ids: entry?.ids,
        changed: false,
        from: snapshot,
        written: undefined,
      })
    }
    return working
  }

  private schemaAhead(stored: number): SchemaAheadError {
    const error = new SchemaAheadError(this.name, this.lease.partition, stored, this.schemaVersion)
    this.transition('failed', error)
    return error
  }

  /** A fresh instance from the last good state, encoded by this code. */
  private instance(w: Working<T>): { state: T; encoding: string } {
    const { runtime } = this.context
    let state: T
    try {
      state = w.encoded !== undefined ? runtime.hydrate(w.encoded) : runtime.create()
    } catch (error) {
      throw new CorruptSnapshot(`a stored snapshot of ${this.name}/${this.lease.partition} cannot be read: ${messageOf(error)}`)
    }
    return { state, encoding: runtime.dehydrate(state) }
  }

  /**
   * Runs one command against the working state; returns its outcome and appends its events. A
   * synchronous handler's outcome is returned as it is, without a promise: most handlers are
   * synchronous, and a batch then runs its commands without a turn of the event loop between them.
   * Throws (only) a {@link CorruptSnapshot}.
   */
  private execute(
    envelope: CommandEnvelope,
    position: number,
    w: Working<T>,
    events: EventToAppend[],
    placed: Placed[],
  ): Outcome | Promise<Outcome> {
    let started: Started<T>
    try {
      started = this.start(envelope, w)
    } catch (error) {
      return this.refused(envelope, error)
    }
    const { handled } = started
    if (Array.isArray(handled)) return this.conclude(envelope, position, w, events, placed, started, handled)
    return handled.then(
      (produced) => this.conclude(envelope, position, w, events, placed, started, produced),
      (error: unknown) => {
        // The instance may be half-changed: the next command starts again from the last good state.
        w.live = undefined
        return this.refused(envelope, error)
      },
    )
  }

  /** Decodes and checks a command against its aggregate, and calls its handler. */
  private start(envelope: CommandEnvelope, w: Working<T>): Started<T> {
    const { runtime } = this.context
    const { aggregateId } = envelope
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
    let handled: object[] | Promise<object[]>
    try {
      handled = this.handleInTime(live.state, binding, command)
    } catch (error) {
      w.live = undefined
      throw error
    }
    return { binding, live, handled }
  }

  /** Checks what a handler returned, applies its events and places them in the batch. */
  private conclude(
    envelope: CommandEnvelope,
    position: number,
    w: Working<T>,
    events: EventToAppend[],
    placed: Placed[],
    { binding, live }: Started<T>,
    produced: object[],
  ): Outcome {
    const { runtime } = this.context
    const { commandId, aggregateId } = envelope
    try {
      const { state, encoding: before } = live
      let encodedEvents: EncodedEvent[]
      let next: { encoded: string; state: T }
      try {
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
        // Without events the state did not change (checked above): nothing to round-trip.
        const roundTripped = runtime.roundTripEvents(produced, binding)
        encodedEvents = roundTripped.encoded
        runtime.apply(state, roundTripped.decoded)
        next = produced.length > 0 ? runtime.roundTripState(state, binding) : { encoded: before, state }
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
      // Every entry has the same fields (offset set after the commit), so reading windows stays fast.
      const entry: RecentCommand = { commandId, version: w.version, events: produced.length, offset: undefined }
      if (!w.ownsRecent) {
        // The stored window is shared: the batch extends a copy, made on its first command.
        w.recent = w.recent.slice()
        w.ownsRecent = true
      }
      extendWindow(w.recent, entry, this.context.dedupWindow)
      if (w.ids) {
        // Built again from the window when next needed; never trimmed in place (see Held.ids).
        if (w.ids.length >= this.context.dedupWindow + IDS_SLACK) w.ids = undefined
        else w.ids.push(idHash(commandId))
      }
      w.changed = true
      const outcome = { status: 'accepted' as const, commandId, aggregateId, version: w.version, events: produced.length }
      placed.push({ w, entry, outcome, last: events.length - 1 })
      return outcome
    } catch (error) {
      return this.refused(envelope, error)
    }
  }

  /** The refusal of a command whose handling threw; a {@link CorruptSnapshot} is thrown on instead. */
  private refused(envelope: CommandEnvelope, error: unknown): Outcome {
    if (error instanceof CorruptSnapshot) throw error
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
        commandId: envelope.commandId,
        error: known.message,
      })
    }
    return { status: 'rejected', commandId: envelope.commandId, aggregateId: envelope.aggregateId, error: errorToPayload(known) }
  }

  /**
   * Runs a command handler, refusing it when it has not returned within `handlerTimeoutMs`: a
   * handler that never returns must not hold the partition. It cannot be stopped, so it is
   * abandoned, and the caller drops the instance it may still change. A synchronous handler has
   * returned when this does (its events come back as they are, with no timer).
   */
  private handleInTime(state: T, binding: CommandBinding, command: object): object[] | Promise<object[]> {
    const handled = this.context.runtime.handle(state, binding, command)
    return Array.isArray(handled) ? handled : this.awaitInTime(handled, binding)
  }

  private async awaitInTime(handled: Promise<object[]>, binding: CommandBinding): Promise<object[]> {
    const ms = this.context.handlerTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new HandlerFailedError(
              `handler ${this.name}.${binding.method} for ${binding.type} did not return within ${ms} ms; it was ` +
                `abandoned and the command refused. Keep slow work (network calls) out of command handlers, or raise handlerTimeoutMs`,
              { aggregate: this.name, commandType: binding.type, handlerTimeoutMs: ms },
            ),
          ),
        ms,
      )
    })
    try {
      return await Promise.race([handled, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Takes the store's ownership with a new token (so whatever an earlier owner still has in flight
   * is refused), then replays committed events after the checkpoint (from 0 on a rebuild) into
   * snapshots and their de-duplication windows, batch by batch, and marks the partition ready.
   * Afterwards commands at or below the highest position seen in the log are skipped, whatever the
   * transport's own committed position says.
   */
  private async recover(forceRebuild: boolean): Promise<void> {
    const { runtime, snapshots, transport, observers, dedupWindow } = this.context
    const stream = this.lease.stream
    const partition = this.lease.partition
    const started = Date.now()
    // Checked before taking the store: a partition of newer code is left to it, undisturbed.
    const stored = await snapshots.checkpoint(stream, partition)
    if (stored && stored.schemaVersion > this.schemaVersion) throw this.schemaAhead(stored.schemaVersion)
    // A partition closed meanwhile must not take the store from its next owner.
    if (this.stop.signal.aborted) throw new ClosedError(`partition ${this.name}/${partition}`)
    const token = randomUUID()
    this.held.clear()
    this.unlogged = undefined
    await snapshots.acquire(stream, partition, token)
    this.token = token
    let checkpoint = await snapshots.checkpoint(stream, partition)
    if (checkpoint && checkpoint.schemaVersion > this.schemaVersion) throw this.schemaAhead(checkpoint.schemaVersion)
    let rebuild = forceRebuild || !checkpoint || checkpoint.schemaVersion !== this.schemaVersion
    if (!rebuild && checkpoint && (await this.storeAheadOfLog(checkpoint))) {
      this.context.logger.warn('the stored checkpoint is beyond the end of the event log; rebuilding the partition from the log', {
        code: 'ESK_STORE_AHEAD',
        aggregate: this.name,
        partition,
        checkpoint: checkpoint.offset,
      })
      rebuild = true
    }
    if (rebuild || !checkpoint) {
      await snapshots.reset(stream, partition, token)
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
    // What this processor committed itself must be replayed even if the log does not show it yet.
    const committed = this.checkpoint.offset
    // Aggregates met so far, kept across batches (bounded), so a batch reads the store only for
    // aggregates it has not met, and the save of one batch overlaps the fold of the next.
    const replayed = new Map<string, Replayed<T>>()
    const bound = this.context.replayCacheSize
    // Aggregates changed since the last save, and events folded since then. A save waits for
    // REPLAY_SAVE_EVENTS events, for REPLAY_EVENTS_PER_SAVED events per aggregate it writes (so an
    // aggregate with many events is encoded and written once per save, not once per batch), and for
    // REPLAY_SAVE_INTERVAL_MS.
    // A flag on each aggregate and a list, not a set of ids: a replay marks an aggregate per event.
    const dirty: Replayed<T>[] = []
    let unsaved = 0
    let savedAt = Date.now()
    // On a rebuild the store was emptied: an aggregate not met yet has no snapshot to read, until
    // one met is forgotten (its saved snapshot must then be read back).
    let forgotten = false
    let saving: Promise<void> | undefined
    const settle = async (): Promise<void> => {
      const pending = saving
      saving = undefined
      await pending
    }
    // The checkpoint the store holds (as far as this replay knows): what chunks before a save's last carry.
    let storedCheckpoint = checkpoint
    /**
     * Writes snapshots in chunks of REPLAY_SAVE_CHUNK. Only the last chunk moves the checkpoint to
     * `at`, and only once the others are stored: a checkpoint may not pass an event whose
     * aggregate's snapshot is not written yet, or a replay from it would skip that event.
     */
    const write = async (written: StoredSnapshot[], at: Checkpoint): Promise<void> => {
      const last = Math.max(0, written.length - REPLAY_SAVE_CHUNK)
      const before: Array<Promise<void>> = []
      for (let from = 0; from < last; from += REPLAY_SAVE_CHUNK) {
        const chunk = written.slice(from, Math.min(from + REPLAY_SAVE_CHUNK, last))
        before.push(snapshots.save(stream, partition, token, { snapshots: chunk, checkpoint: storedCheckpoint, unlogged: [] }))
      }
      await Promise.all(before)
      await snapshots.save(stream, partition, token, { snapshots: written.slice(last), checkpoint: at, unlogged: [] })
      storedCheckpoint = at
    }
    /** Starts saving what changed, with the checkpoint after the last batch folded; awaits the previous save first. */
    const save = async (at: Checkpoint): Promise<void> => {
      const written: StoredSnapshot[] = []
      for (const r of dirty) {
        r.dirty = false
        r.encoded = runtime.dehydrate(r.state!)
        const { aggregateId, version, offset, encoded } = r
        const windowMemo = (r.written ?? r.stored)?.windowMemo
        r.written = { aggregateId, version, schemaVersion: this.schemaVersion, offset, state: encoded, recent: r.recent.slice(), windowMemo }
        written.push(r.written)
      }
      dirty.length = 0
      unsaved = 0
      savedAt = Date.now()
      await settle()
      saving = write(written, at)
      // Awaited by the next settle; a failure meanwhile must not surface as an unhandled rejection.
      saving.catch(() => undefined)
    }
    /** Starts over with a rebuild, once the save in flight (if any) is over. */
    const rebuildInstead = async (): Promise<void> => {
      await settle().catch(() => undefined)
      return this.recover(true)
    }
    for await (const batch of transport.readEvents(stream, partition, from, committed)) {
      if (this.stop.signal.aborted) throw new ClosedError(`partition ${this.name}/${partition}`)
      if (batch.length === 0) continue
      if (replayed.size > bound) {
        // Forgotten aggregates are read again from the store: only once their saves are in.
        if (dirty.length > 0) await save(checkpoint)
        await settle()
        for (const id of replayed.keys()) {
          if (replayed.size <= bound) break
          replayed.delete(id)
          forgotten = true
        }
      }
      const { met, missing } = resolveReplayed(batch, replayed)
      if (missing.length > 0) {
        let loaded: LoadedBatch | undefined
        if (!rebuild || forgotten) {
          try {
            loaded = await snapshots.load(stream, partition, token, missing, [])
          } catch (error) {
            if (!hasCode(error, ErrorCode.Serialization) || rebuild) throw error
            return rebuildInstead()
          }
          if (!loaded.owned) throw loaded.claimed ? this.superseded() : this.storeLost('while replaying')
        }
        for (const id of missing) {
          const snapshot = loaded?.snapshots.get(id)
          if (snapshot && snapshot.schemaVersion > this.schemaVersion) throw this.schemaAhead(snapshot.schemaVersion)
          if (snapshot && snapshot.schemaVersion !== this.schemaVersion) {
            if (!rebuild) return rebuildInstead()
            throw new Error(`snapshot of another schema version survived a reset of ${this.name}/${partition}`)
          }
          replayed.set(id, {
            aggregateId: id,
            state: undefined,
            stored: snapshot,
            encoded: snapshot?.state,
            version: snapshot?.version ?? 0,
            offset: snapshot?.offset ?? -1,
            recent: snapshot ? [...snapshot.recent] : [],
            dirty: false,
            touched: false,
            written: undefined,
          })
        }
      }
      let commandPosition: number = checkpoint.commandPosition
      for (let i = 0; i < batch.length; i++) {
        const event = batch[i]!
        const r = met[i] ?? replayed.get(event.aggregateId)!
        commandPosition = Math.max(commandPosition, event.commandPosition)
        // Already in the aggregate's snapshot.
        if (r.offset >= event.offset) continue
        if (!r.state) {
          try {
            r.state = r.stored ? runtime.hydrate(r.stored.state) : runtime.create()
          } catch (error) {
            if (rebuild) throw error
            return rebuildInstead()
          }
        }
        runtime.applyOne(r.state, runtime.decodeEvent(event))
        // A command's events are consecutive in the log: extend its entry, or start a new one.
        const last = r.recent[r.recent.length - 1]
        if (last?.commandId === event.commandId) {
          r.recent[r.recent.length - 1] = { commandId: event.commandId, version: event.version, events: last.events + 1, offset: event.offset }
        } else {
          extendWindow(r.recent, { commandId: event.commandId, version: event.version, events: 1, offset: event.offset }, dedupWindow)
        }
        r.version = event.version
        r.offset = event.offset
        if (!r.dirty) {
          r.dirty = true
          dirty.push(r)
        }
        // Once per aggregate met; an aggregate forgotten and met again is counted once by the set.
        if (!r.touched) {
          r.touched = true
          touched.add(r.aggregateId)
        }
      }
      checkpoint = {
        offset: batch[batch.length - 1]!.offset + 1,
        commandPosition,
        schemaVersion: this.schemaVersion,
      }
      unsaved += batch.length
      count += batch.length
      progress('batch')
      if (
        unsaved >= Math.max(REPLAY_SAVE_EVENTS, dirty.length * REPLAY_EVENTS_PER_SAVED) &&
        Date.now() - savedAt >= REPLAY_SAVE_INTERVAL_MS
      ) {
        await save(checkpoint)
      }
    }
    if (unsaved > 0) await save(checkpoint)
    await settle()
    await snapshots.save(stream, partition, token, { snapshots: [], checkpoint, unlogged: [], ready: true })
    if (snapshots.unloggedKeys && this.context.snapshotCacheSize > 0) {
      const { keys, window } = await snapshots.unloggedKeys(stream, partition)
      this.unlogged = { keys: new FifoMap(), window }
      for (const key of keys) this.unlogged.keys.add(key, true)
    }
    this.holdReplayed(replayed)
    this.checkpoint = checkpoint
    progress('end')
  }

  /**
   * True when the store claims events the log does not have (the event topic was recreated, or the
   * store belongs to another cluster): replaying from that checkpoint would read nothing and trust
   * snapshots of events that do not exist. A checkpoint only just ahead is waited for a moment: a
   * commit's markers reach the log a little after the commit returns.
   */
  private async storeAheadOfLog(checkpoint: Checkpoint): Promise<boolean> {
    const bounds = this.context.transport.eventLogBounds
    if (!bounds) return false
    for (let attempt = 0; attempt < 20; attempt++) {
      const end = (await bounds.call(this.context.transport, this.lease.stream))[this.lease.partition]?.end ?? 0
      if (checkpoint.offset <= end) return false
      await sleep(250, this.stop.signal)
      if (this.stop.signal.aborted) return false
    }
    return true
  }

  /** The store has another owner: this processor stops writing, as after a fence in the log. */
  private superseded(): FencedError {
    const error = new FencedError(
      `another processor took the snapshots of ${this.name}/${this.lease.partition}; this one writes nothing more ` +
        `(the transport opens the partition again, with a new fence, if it is still assigned here)`,
      { aggregate: this.name, partition: this.lease.partition, owner: 'other' },
    )
    this.transition('fenced', error)
    this.stop.abort()
    return error
  }

  private storeLost(when: string): Error {
    return new Error(`the snapshot store lost ${this.name}/${this.lease.partition} ${when}, or another processor took it`)
  }
}

/**
 * Refusals that say the command itself can never succeed as sent, whatever the aggregate's state:
 * the record goes to the dead-letter log. Business refusals (rejections, conflicts, validation) do not.
 */
const POISON = new Set<string>([ErrorCode.HandlerFailed, ErrorCode.UnknownCommand, ErrorCode.Serialization])

/** True for a store write refused because another processor owns the partition (not because it lost it). */
function takenOver(error: unknown): boolean {
  return hasCode(error, ErrorCode.Fenced) && (error as { details?: { owner?: unknown } }).details?.owner === 'other'
}

/** A stored snapshot that cannot be decoded: the partition is rebuilt instead of refusing commands. */
class CorruptSnapshot extends Error {}

/** The accepted outcome of a command remembered in its aggregate's window, if it is there. */
function recorded(w: Working<unknown>, command: CommandEnvelope): Outcome | undefined {
  const { recent } = w
  const { commandId } = command
  w.ids ??= recent.map((r) => idHash(r.commandId))
  if (!w.ids.includes(idHash(commandId))) return undefined
  let entry: RecentCommand | undefined
  for (let i = recent.length - 1; i >= 0; i--) {
    if (recent[i]!.commandId === commandId) {
      entry = recent[i]
      break
    }
  }
  if (!entry) return undefined
  return {
    status: 'accepted',
    commandId: entry.commandId,
    aggregateId: command.aggregateId,
    version: entry.version,
    events: entry.events,
    ...(entry.offset !== undefined && { offset: entry.offset }),
  }
}

/** A 30-bit FNV-1a hash of a command id: a small integer, so a list of them stays a packed array. */
function idHash(commandId: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < commandId.length; i++) hash = Math.imul(hash ^ commandId.charCodeAt(i), 0x01000193)
  return hash & 0x3fffffff
}

/**
 * Appends to a window this code owns, in place, keeping at most `size` entries (the newest). One
 * at a time (more only if the window was made smaller): shift() is cheap where splice() copies.
 */
function extendWindow(recent: RecentCommand[], entry: RecentCommand, size: number): void {
  recent.push(entry)
  while (recent.length > size) recent.shift()
}
