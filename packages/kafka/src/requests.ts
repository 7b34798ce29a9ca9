/** Payload bytes per produce request, below the broker's default message.max.bytes (1 MiB). */
export const MAX_REQUEST_BYTES = 768 * 1024

/**
 * How many leading items go into one produce request: at most `maxCount`, with sizes adding up
 * to at most `limit` bytes. A first item larger than `limit` goes alone rather than never.
 */
export function fitting<T>(items: readonly T[], size: (item: T) => number, limit: number, maxCount = Infinity): number {
  let bytes = 0
  let count = 0
  while (count < items.length && count < maxCount) {
    const next = size(items[count]!)
    if (count > 0 && bytes + next > limit) break
    bytes += next
    count += 1
  }
  return count
}

/** Splits items into consecutive runs that each fit one request (see {@link fitting}). */
export function chunksByBytes<T>(items: readonly T[], size: (item: T) => number, limit: number): T[][] {
  const chunks: T[][] = []
  for (let start = 0; start < items.length; ) {
    const count = fitting(items.slice(start), size, limit)
    chunks.push(items.slice(start, start + count))
    start += count
  }
  return chunks
}
