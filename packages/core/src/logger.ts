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
