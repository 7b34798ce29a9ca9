import {
  newClientAddress,
  type Checkpoint,
  type LoadedBatch,
  type Outcome,
  type OutcomeChannel,
  type Reply,
  type SnapshotStore,
  type SnapshotWrite,
  type Store,
  type StoredSnapshot,
  type StreamSpec,
} from '@esk/core'
import type { MemoryBackend } from './backend.js'

/** Options of the in-memory store. */
export interface MemoryStoreOptions {
  /** How long outcomes are kept for de-duplication. Default 24 hours. */
  outcomeRetentionMs?: number
}

/** Snapshots, checkpoints and outcomes in memory, saved atomically and only forward. */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly retentionMs: number

  constructor(
    private readonly backend: MemoryBackend,
    options: MemoryStoreOptions = {},
  ) {
    this.retentionMs = options.outcomeRetentionMs ?? 24 * 60 * 60 * 1000
  }

  async load(stream: StreamSpec, partition: number, aggregateIds: string[], commandIds: string[]): Promise<LoadedBatch> {
    const state = this.backend.partitionState(stream.aggregate, partition)
    const snapshots = new Map<string, StoredSnapshot>()
    for (const id of aggregateIds) {
      const snapshot = state.snapshots.get(id)
      if (snapshot) snapshots.set(id, { ...snapshot })
    }
    const outcomes = new Map<string, Outcome>()
    for (const id of commandIds) {
      const outcome = this.liveOutcome(stream, partition, id)
      if (outcome) outcomes.set(id, outcome)
    }
    return { snapshots, outcomes, checkpoint: state.checkpoint && { ...state.checkpoint } }
  }

  async read(stream: StreamSpec, partition: number, aggregateId: string): Promise<StoredSnapshot | undefined> {
    const snapshot = this.backend.partitionState(stream.aggregate, partition).snapshots.get(aggregateId)
    return snapshot && { ...snapshot }
  }

  async readOutcome(stream: StreamSpec, partition: number, commandId: string): Promise<Outcome | undefined> {
    return this.liveOutcome(stream, partition, commandId)
  }

  async checkpoint(stream: StreamSpec, partition: number): Promise<Checkpoint | undefined> {
    const checkpoint = this.backend.partitionState(stream.aggregate, partition).checkpoint
    return checkpoint && { ...checkpoint }
  }

  async save(stream: StreamSpec, partition: number, write: SnapshotWrite): Promise<void> {
    const state = this.backend.partitionState(stream.aggregate, partition)
    for (const snapshot of write.snapshots) {
      const current = state.snapshots.get(snapshot.aggregateId)
      if (!current || snapshot.offset >= current.offset) state.snapshots.set(snapshot.aggregateId, { ...snapshot })
    }
    const current = state.checkpoint
    state.checkpoint = {
      offset: Math.max(current?.offset ?? 0, write.checkpoint.offset),
      commandPosition: Math.max(current?.commandPosition ?? -1, write.checkpoint.commandPosition),
      schemaVersion: write.checkpoint.schemaVersion,
    }
    const expiresAt = Date.now() + this.retentionMs
    for (const outcome of write.outcomes) state.outcomes.set(outcome.commandId, { outcome, expiresAt })
  }

  async reset(stream: StreamSpec, partition: number): Promise<void> {
    const state = this.backend.partitionState(stream.aggregate, partition)
    state.snapshots.clear()
    state.checkpoint = undefined
  }

  async close(): Promise<void> {}

  private liveOutcome(stream: StreamSpec, partition: number, commandId: string): Outcome | undefined {
    const outcomes = this.backend.partitionState(stream.aggregate, partition).outcomes
    const entry = outcomes.get(commandId)
    if (!entry) return undefined
    if (entry.expiresAt <= Date.now()) {
      outcomes.delete(commandId)
      return undefined
    }
    return entry.outcome
  }
}

/** Delivers outcomes to waiting callers in the same process. */
export class MemoryOutcomeChannel implements OutcomeChannel {
  readonly address = newClientAddress()
  private readonly waiters = new Map<string, Set<(outcome: Outcome) => void>>()

  constructor(
    private readonly backend: MemoryBackend,
    private readonly snapshots: SnapshotStore,
  ) {
    backend.replyRoutes.set(this.address, (outcome) => {
      for (const deliver of [...(this.waiters.get(outcome.commandId) ?? [])]) deliver(outcome)
    })
  }

  async wait(stream: StreamSpec, partition: number, commandId: string, signal: AbortSignal): Promise<Outcome | undefined> {
    return new Promise<Outcome | undefined>((resolve) => {
      let set = this.waiters.get(commandId)
      if (!set) this.waiters.set(commandId, (set = new Set()))
      const done = (outcome: Outcome | undefined): void => {
        set.delete(deliver)
        if (set.size === 0) this.waiters.delete(commandId)
        signal.removeEventListener('abort', abort)
        resolve(outcome)
      }
      const deliver = (outcome: Outcome): void => done(outcome)
      const abort = (): void => done(undefined)
      set.add(deliver)
      if (signal.aborted) return abort()
      signal.addEventListener('abort', abort, { once: true })
      // An outcome recorded before we started waiting (a retry of a finished command) is final.
      void this.snapshots.readOutcome(stream, partition, commandId).then((outcome) => {
        if (outcome) done(outcome)
      })
    })
  }

  async publish(_stream: StreamSpec, _partition: number, replies: Reply[]): Promise<void> {
    for (const { replyTo, outcome } of replies) this.backend.replyRoutes.get(replyTo)?.(outcome)
  }

  async close(): Promise<void> {
    this.backend.replyRoutes.delete(this.address)
  }
}

/** The in-memory store: snapshots and an outcome channel over one backend. */
export class MemoryStore implements Store {
  readonly snapshots: MemorySnapshotStore
  readonly outcomes: MemoryOutcomeChannel

  constructor(backend: MemoryBackend, options: MemoryStoreOptions = {}) {
    this.snapshots = new MemorySnapshotStore(backend, options)
    this.outcomes = new MemoryOutcomeChannel(backend, this.snapshots)
  }

  async close(): Promise<void> {
    await this.outcomes.close()
  }
}
