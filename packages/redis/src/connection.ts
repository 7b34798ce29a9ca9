import { Redis } from 'ioredis'
import type { ConnectionPlan } from './options.js'

/** Creates the connection of an `own` plan (URL first: ioredis lets it win over host/port). */
export function createConnection(plan: Extract<ConnectionPlan, { kind: 'own' }>): Redis {
  return plan.url === undefined ? new Redis(plan.redisOptions) : new Redis(plan.url, plan.redisOptions)
}

/**
 * Closes a connection we created: QUIT lets replies in flight arrive first; when that cannot
 * complete (Redis unreachable, offline queue off), the socket is dropped instead.
 */
export async function closeConnection(connection: Redis): Promise<void> {
  if (connection.status === 'end') return
  if (connection.status === 'wait') {
    // Never connected (lazyConnect): QUIT would open a connection just to close it.
    connection.disconnect()
    return
  }
  try {
    await connection.quit()
  } catch {
    // QUIT failed only because the connection is already unusable: drop it without waiting.
    connection.disconnect()
  }
}
