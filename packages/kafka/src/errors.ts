/** Protocol errors that mean another producer with our transactional id has taken over. */
const FENCED_TYPES = new Set(['INVALID_PRODUCER_EPOCH', 'PRODUCER_FENCED', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED'])

/** The protocol error type of a kafkajs error, looking through the retry wrappers kafkajs adds. */
export function kafkaErrorType(error: unknown): string | undefined {
  for (let e = error as { type?: unknown; cause?: unknown; originalError?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if (typeof e.type === 'string') return e.type
    e = (e.cause ?? e.originalError) as typeof e
  }
  return undefined
}

/** True when the error means this writer was fenced by a newer one and must stop writing. */
export function isFenced(error: unknown): boolean {
  const type = kafkaErrorType(error)
  if (type && FENCED_TYPES.has(type)) return true
  // kafkajs reports a fenced epoch on some paths only in the message.
  return /fenced|producer epoch/i.test(String((error as Error | undefined)?.message ?? ''))
}

/** True for the transient error the coordinator returns while the previous transaction completes. */
export function isConcurrentTransactions(error: unknown): boolean {
  return kafkaErrorType(error) === 'CONCURRENT_TRANSACTIONS'
}

/** Group errors that mean a rebalance is under way or this member must join again. */
const GROUP_CHANGE_TYPES = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID'])

/** True when a heartbeat error means the group is rebalancing or no longer counts this member. */
export function isGroupChange(error: unknown): boolean {
  const type = kafkaErrorType(error)
  return type !== undefined && GROUP_CHANGE_TYPES.has(type)
}
