import type { ProjectionStore, SnapshotStore, Store } from '@esk/core/driver'

/** A store whose first `count` snapshot saves fail, with a `failed()` counter. */
export interface FailingStore extends Store {
  /** Saves that failed so far. */
  failed(): number
}

/**
 * Wraps a real store so that its first `count` saves that carry snapshots after a commit throw,
 * as a Redis outage right after a Kafka commit would (saves that end a recovery, `ready`, go
 * through). Everything else goes to the real store. Works with any driver's store.
 */
export function failingSaves(store: Store, count: number): FailingStore {
  let failed = 0
  const snapshots: SnapshotStore = Object.create(store.snapshots) as SnapshotStore
  snapshots.save = async (stream, partition, token, write) => {
    if (failed < count && write.snapshots.length > 0 && !write.ready) {
      failed += 1
      throw new Error(`injected snapshot save failure ${failed} of ${count}`)
    }
    return store.snapshots.save(stream, partition, token, write)
  }
  return {
    snapshots,
    outcomes: store.outcomes,
    close: () => store.close(),
    failed: () => failed,
  }
}

/** A store whose projection writes fail as planned, with a count of the failures injected. */
export interface FailingApplies extends Store {
  /** Writes failed so far. */
  failed(): number
}

/**
 * Wraps a real store so that projection writes fail as a crash in the middle of a batch would leave
 * them: the first `before` writes throw without reaching the store (the process died before
 * writing), the next `after` reach the store and then throw (it died before hearing the answer).
 * Everything else goes to the real store. Works with any driver's store that keeps projections.
 */
export function failingApplies(store: Store, plan: { before?: number; after?: number }): FailingApplies {
  const projections = store.projections
  if (!projections) throw new Error('this store keeps no projections')
  let failed = 0
  const before = plan.before ?? 0
  const after = plan.after ?? 0
  const wrapped: ProjectionStore = Object.create(projections) as ProjectionStore
  wrapped.apply = async (projection, generation, lane, token, write) => {
    if (failed < before) {
      failed += 1
      throw new Error(`injected projection write failure ${failed} (before the write)`)
    }
    const result = await projections.apply(projection, generation, lane, token, write)
    if (failed < before + after && result.status === 'applied') {
      failed += 1
      throw new Error(`injected projection write failure ${failed} (after the write)`)
    }
    return result
  }
  return {
    snapshots: store.snapshots,
    outcomes: store.outcomes,
    projections: wrapped,
    close: () => store.close(),
    failed: () => failed,
  }
}
