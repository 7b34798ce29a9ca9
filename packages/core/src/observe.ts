import type { ProjectionObservation } from './projection/observe.js'

/** Progress of a partition's recovery (replay of the events after its checkpoint). */
export interface RecoveryProgress {
  aggregate: string
  partition: number
  /** `start` before reading, `batch` after each saved batch, `end` once the partition takes commands. */
  phase: 'start' | 'batch' | 'end'
  /** True when the partition is replayed from offset 0 (no checkpoint, schema change, or `rebuild`). */
  rebuild: boolean
  /** Offset the replay started from. */
  from: number
  /** Events replayed so far. */
  events: number
  /** Distinct aggregates whose snapshots were rewritten so far. */
  aggregates: number
  /** Milliseconds since `start`. */
  elapsedMs: number
}

/** A failure in background work (processing, recovery, notification). Never thrown to callers. */
export interface BackgroundError {
  error: unknown
  aggregate?: string
  partition?: number
  /** What was being done, e.g. `recovery`, `snapshot-save`, `publish`. */
  during: string
}

/** A partition this process started or stopped processing. */
export interface PartitionChange {
  aggregate: string
  partition: number
  change: 'assigned' | 'revoked'
}

/**
 * Where a partition is in its life:
 * - `opening`: the transport is taking it (fencing the previous writer);
 * - `recovering`: replaying the events after its checkpoint (all of them on a rebuild);
 * - `ready`: taking commands;
 * - `repairing`: the store lost data or was taken over under it; replaying before the next command;
 * - `fenced`: a newer writer owns it in the log; this process writes nothing more to it;
 * - `failed`: it cannot be recovered here (see `error`); the transport retries it;
 * - `closed`: given up (revoked, or the application stopped).
 */
export type PartitionState = 'opening' | 'recovering' | 'ready' | 'repairing' | 'fenced' | 'failed' | 'closed'

/** A partition of this process changed state. */
export interface PartitionStateChange {
  aggregate: string
  partition: number
  state: PartitionState
  /** Why, for `fenced` and `failed`. */
  error?: unknown
}

/** One committed batch of commands: what it did and how long each step took. */
export interface BatchProcessed {
  aggregate: string
  partition: number
  /** Commands in the batch (including duplicates and undecodable records). */
  commands: number
  /** Events committed. */
  events: number
  /** Commands refused. */
  rejected: number
  /** Milliseconds loading snapshots, running handlers, committing to the log, saving snapshots. */
  loadMs: number
  handleMs: number
  commitMs: number
  saveMs: number
}

/** Everything an application can observe, by name. */
export interface EskEventMap {
  recovery: RecoveryProgress
  error: BackgroundError
  partition: PartitionChange
  batch: BatchProcessed
  state: PartitionStateChange
  /** Read models: lane states, parked events, truncated logs, rebuild progress, generation swaps. */
  projection: ProjectionObservation
}

/** A listener of one observable event. */
export type Listener<E> = (event: E) => void

/**
 * A small typed event hub. Listeners run synchronously; one that throws is isolated so it cannot
 * break processing.
 */
export class Observers {
  private readonly listeners = new Map<keyof EskEventMap, Set<Listener<never>>>()

  /** `failed` hears of a listener that threw (the application's bug, which must not stop a partition). */
  constructor(private readonly failed: (name: string, error: unknown) => void = () => undefined) {}

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof EskEventMap>(name: K, listener: Listener<EskEventMap[K]>): () => void {
    let set = this.listeners.get(name)
    if (!set) this.listeners.set(name, (set = new Set()))
    set.add(listener as Listener<never>)
    return () => set.delete(listener as Listener<never>)
  }

  /** Number of listeners of an event. */
  count(name: keyof EskEventMap): number {
    return this.listeners.get(name)?.size ?? 0
  }

  /** Calls every listener of `name`. */
  emit<K extends keyof EskEventMap>(name: K, event: EskEventMap[K]): void {
    for (const listener of this.listeners.get(name) ?? []) {
      try {
        ;(listener as Listener<EskEventMap[K]>)(event)
      } catch (error) {
        this.failed(name, error)
      }
    }
  }
}
