/** Log levels, most verbose first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

/** Where esk writes its logs. Fields are structured context (aggregate, partition, offsets). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 }

/**
 * A logger writing one line per entry to the console, from `level` up. The default level comes
 * from the `ESK_LOG_LEVEL` environment variable, else `warn`.
 */
export function consoleLogger(level: LogLevel = levelFromEnv()): Logger {
  const write =
    (at: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (ORDER[at] < ORDER[level]) return
      const line = `[esk] ${at} ${message}${fields ? ' ' + safeJson(fields) : ''}`
      if (at === 'error' || at === 'warn') console.error(line)
      else console.log(line)
    }
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

function levelFromEnv(): LogLevel {
  const value = process.env.ESK_LOG_LEVEL
  return value && value in ORDER ? (value as LogLevel) : 'warn'
}

function safeJson(fields: Record<string, unknown>): string {
  try {
    return JSON.stringify(fields, (_key, value: unknown) =>
      value instanceof Error ? { name: value.name, message: value.message } : value,
    )
  } catch {
    return '[unserialisable fields]'
  }
}

/**
 * Codes of the log lines esk writes at warn level for conditions it heals by itself; each is in
 * the `code` field of the line. See "Log codes" in docs/operations.md.
 */
export const LogCode = {
  /** A newer owner fenced a partition's writer or store; it is reopened here if still assigned. */
  PartitionFenced: 'ESK_PARTITION_FENCED',
  /** A partition or read-model lane was closed under work in flight (revoked in a rebalance, or stopping). */
  PartitionClosed: 'ESK_PARTITION_CLOSED',
  /** The consumer group is rebalancing, or this member must join it again. */
  Rebalance: 'ESK_REBALANCE',
} as const

/** Protocol errors of a consumer group changing (as Kafka clients name them). */
const GROUP_CHANGES = new Set(['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID'])

/**
 * The code and text of a background failure that heals by itself (logged at warn), or undefined
 * for one an operator must look at (logged at error).
 */
export function selfHealing(error: unknown): { code: string; text: string } | undefined {
  const code = (error as { code?: unknown } | undefined)?.code
  if (code === 'ESK_FENCED') {
    return { code: LogCode.PartitionFenced, text: 'a newer owner fenced this partition here; it writes nothing more, and is reopened if it is still assigned here' }
  }
  if (code === 'ESK_CLOSED') {
    return { code: LogCode.PartitionClosed, text: 'a partition was closed with work in flight (revoked or stopping); its new owner takes over from the log' }
  }
  for (let e = error as { type?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if (typeof e.type === 'string' && GROUP_CHANGES.has(e.type)) {
      return { code: LogCode.Rebalance, text: 'the consumer group is rebalancing; partitions are handed out again' }
    }
    e = e.cause as typeof e
  }
  return undefined
}
