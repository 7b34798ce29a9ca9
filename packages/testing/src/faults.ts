import type { SnapshotStore, Store } from '@esk/core'

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
