import { ConfigurationError, FencedError, UnavailableError } from '@esk/core'
import {
  commandKey,
  newClientAddress,
  PendingOutcome,
  type Checkpoint,
  type CommandKey,
  type LoadedBatch,
  type InMemoryProjectionStore,
  type Outcome,
  type OutcomeChannel,
  type OutcomeWait,
  type Reply,
  type SnapshotStore,
  type SnapshotWrite,
  type UnloggedKeys,
  type Store,
  type StoredSnapshot,
  type StreamSpec,
} from '@esk/core/driver'
import type { MemoryBackend, MemoryPartitionState } from './backend.js'

/** Options of the in-memory store. */
export interface MemoryStoreOptions {
  /**
   * Outcomes that left nothing in the log (refusals, and acceptances without events) kept per
   * partition for de-duplication, newest first. Default 10000.
   */
  unloggedWindow?: number
}

/** Defaults of {@link MemoryStoreOptions}. */
export const MEMORY_STORE_DEFAULTS = { unloggedWindow: 10_000 } as const

/**
 * Snapshots, checkpoints and outcomes in memory, saved atomically and only forward, each write
 * fenced by the partition's owner token like the Redis store's scripts.
 */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly unloggedWindow: number

  constructor(
    private readonly backend: MemoryBackend,
    options: MemoryStoreOptions = {},
  ) {
    this.unloggedWindow = options.unloggedWindow ?? MEMORY_STORE_DEFAULTS.unloggedWindow
    if (!Number.isInteger(this.unloggedWindow) || this.unloggedWindow < 1) {
      throw new ConfigurationError(`unloggedWindow must be a positive integer, got ${String(options.unloggedWindow)}`)
    }
  }

  async acquire(stream: StreamSpec, partition: number, token: string): Promise<void> {
    this.backend.partitionState(stream.aggregate, partition).owner = token
  }

  async load(
    stream: StreamSpec,
    partition: number,
    token: string,
    aggregateIds: string[],
    commands: CommandKey[],
  ): Promise<LoadedBatch> {
    const state = this.backend.partitionState(stream.aggregate, partition)
    const snapshots = new Map<string, StoredSnapshot>()
    for (const id of aggregateIds) {
      const snapshot = state.snapshots.get(id)
      if (snapshot) snapshots.set(id, copy(snapshot))
    }
    const unlogged = new Map<string, Outcome>()
    for (const command of commands) {
      const key = commandKey(command)
      const outcome = state.unlogged.get(key)
      if (outcome) unlogged.set(key, outcome)
    }
    return { owned: state.owner === token, claimed: state.owner !== undefined, snapshots, unlogged, checkpoint: state.checkpoint && { ...state.checkpoint } }
  }

  async read(stream: StreamSpec, partition: number, aggregateId: string): Promise<StoredSnapshot | undefined> {
    const state = this.backend.partitionState(stream.aggregate, partition)
    if (!state.ready) throw notReady(stream, partition)
    const snapshot = state.snapshots.get(aggregateId)
    return snapshot && copy(snapshot)
  }

  async readOutcome(stream: StreamSpec, partition: number, command: CommandKey): Promise<Outcome | undefined> {
    const state = this.backend.partitionState(stream.aggregate, partition)
    const entry = state.snapshots.get(command.aggregateId)?.recent.find((r) => r.commandId === command.commandId)
    if (entry) return { status: 'accepted', aggregateId: command.aggregateId, ...entry }
    return state.unlogged.get(commandKey(command))
  }

  async checkpoint(stream: StreamSpec, partition: number): Promise<Checkpoint | undefined> {
    const checkpoint = this.backend.partitionState(stream.aggregate, partition).checkpoint
    return checkpoint && { ...checkpoint }
  }

  async save(stream: StreamSpec, partition: number, token: string, write: SnapshotWrite): Promise<void> {
    const state = this.owned(stream, partition, token)
    for (const snapshot of write.snapshots) {
      const current = state.snapshots.get(snapshot.aggregateId)
      if (!current || snapshot.offset >= current.offset) state.snapshots.set(snapshot.aggregateId, copy(snapshot))
    }
    const current = state.checkpoint
    state.checkpoint = {
      offset: Math.max(current?.offset ?? 0, write.checkpoint.offset),
      commandPosition: Math.max(current?.commandPosition ?? -1, write.checkpoint.commandPosition),
      schemaVersion: write.checkpoint.schemaVersion,
    }
    // First outcome wins; beyond the window the oldest go, once the write's are added (as the
    // Redis save script trims).
    for (const outcome of write.unlogged) state.unlogged.add(commandKey(outcome), outcome)
    state.unlogged.trim(this.unloggedWindow)
    if (write.ready) state.ready = true
  }

  async unloggedKeys(stream: StreamSpec, partition: number): Promise<UnloggedKeys> {
    return { keys: this.backend.partitionState(stream.aggregate, partition).unlogged.keys(), window: this.unloggedWindow }
  }

  async reset(stream: StreamSpec, partition: number, token: string): Promise<void> {
    const state = this.owned(stream, partition, token)
    state.snapshots.clear()
    state.unlogged.clear()
    state.checkpoint = undefined
    state.ready = false
  }

  async close(): Promise<void> {}

  private owned(stream: StreamSpec, partition: number, token: string): MemoryPartitionState {
    const state = this.backend.partitionState(stream.aggregate, partition)
    if (state.owner !== token) {
      throw new FencedError(
        `the snapshots of ${stream.aggregate}/${partition} are owned by another processor, or were flushed; ` +
          `this write is refused`,
        { aggregate: stream.aggregate, partition, owner: state.owner === undefined ? 'none' : 'other' },
      )
    }
    return state
  }
}

function copy(snapshot: StoredSnapshot): StoredSnapshot {
  return { ...snapshot, recent: snapshot.recent.map((r) => ({ ...r })) }
}

function notReady(stream: StreamSpec, partition: number): UnavailableError {
  return new UnavailableError(
    `the snapshots of ${stream.aggregate}/${partition} are being rebuilt from the log; retry shortly`,
    { aggregate: stream.aggregate, partition },
  )
}

/** Delivers outcomes to waiting callers in the same process. */
export class MemoryOutcomeChannel implements OutcomeChannel {
  readonly address = newClientAddress()
  private readonly waiters = new Map<string, Set<PendingOutcome>>()

  constructor(
    private readonly backend: MemoryBackend,
    private readonly snapshots: SnapshotStore,
  ) {
    backend.replyRoutes.set(this.address, (outcome) => {
      for (const wait of [...(this.waiters.get(commandKey(outcome)) ?? [])]) wait.settle(outcome)
    })
  }

  wait(stream: StreamSpec, partition: number, command: CommandKey): OutcomeWait {
    const key = commandKey(command)
    const wait = new PendingOutcome(() => this.forget(key, wait))
    let set = this.waiters.get(key)
    if (!set) this.waiters.set(key, (set = new Set()))
    set.add(wait)
    // An outcome recorded before we started waiting (a retry of a finished command) is final.
    void this.snapshots.readOutcome(stream, partition, command).then((outcome) => {
      if (outcome) wait.settle(outcome)
    })
    return wait
  }

  private forget(key: string, wait: PendingOutcome): void {
    const set = this.waiters.get(key)
    set?.delete(wait)
    if (set?.size === 0) this.waiters.delete(key)
  }

  async publish(_stream: StreamSpec, _partition: number, replies: Reply[]): Promise<void> {
    for (const { replyTo, outcome } of replies) this.backend.replyRoutes.get(replyTo)?.(outcome)
  }

  async close(): Promise<void> {
    this.backend.replyRoutes.delete(this.address)
  }
}

/** The in-memory store: snapshots, an outcome channel and read models' views over one backend. */
export class MemoryStore implements Store {
  readonly snapshots: MemorySnapshotStore
  readonly outcomes: MemoryOutcomeChannel
  /** Shared with every store on the same backend, as one Redis is. */
  readonly projections: InMemoryProjectionStore

  constructor(backend: MemoryBackend, options: MemoryStoreOptions = {}) {
    this.snapshots = new MemorySnapshotStore(backend, options)
    this.outcomes = new MemoryOutcomeChannel(backend, this.snapshots)
    this.projections = backend.projections
  }

  async close(): Promise<void> {
    await this.outcomes.close()
  }
}

