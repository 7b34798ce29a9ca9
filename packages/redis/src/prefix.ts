import { InvalidArgumentError } from '@esk/core'
import type { Redis } from 'ioredis'

/** Options of {@link deleteKeysWithPrefix}. */
export interface DeleteKeysOptions {
  /** Keys SCAN looks at per step, so no single command blocks the server for long. Default 500. */
  batchSize?: number
}

/**
 * Deletes every key that starts with `prefix` (SCAN + UNLINK, step by step), as `FLUSHALL` would
 * for that prefix only; returns how many were deleted. Meant for tests and operations on one
 * server; on a cluster, run it against each primary.
 */
export async function deleteKeysWithPrefix(
  client: Redis,
  prefix: string,
  options: DeleteKeysOptions = {},
): Promise<number> {
  if (typeof prefix !== 'string' || prefix.length === 0) {
    throw new InvalidArgumentError(
      'deleteKeysWithPrefix: prefix must be a non-empty string; an empty one would delete every key',
    )
  }
  const batchSize = options.batchSize ?? 500
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
    throw new InvalidArgumentError(`deleteKeysWithPrefix: batchSize must be a positive integer, got ${String(batchSize)}`)
  }
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`
  let cursor = '0'
  let deleted = 0
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', batchSize)
    if (keys.length > 0) deleted += await client.unlink(...keys)
    cursor = next
  } while (cursor !== '0')
  return deleted
}
