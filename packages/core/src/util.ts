/** Resolves after `ms`, or early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * The partition of an aggregate id: FNV-1a over its UTF-8 bytes, modulo the count. Clients and
 * processors compute it the same way, so commands are sent to an explicit partition and the
 * transport's own partitioner never decides.
 */
export function partitionFor(aggregateId: string, partitions: number): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(aggregateId, 'utf8')) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash % partitions
}
