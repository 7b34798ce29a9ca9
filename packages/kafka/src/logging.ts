import type { Logger } from '@esk/core'
import type { LogEntry, logCreator } from 'kafkajs'
import { logLevel } from './kafkajs.js'

// Protocol errors kafkajs logs at ERROR level although it retries them, and esk expects them:
// a transaction started while the previous one completes, a group rebalancing, a coordinator
// loading after start. Left at ERROR they would drown real failures.
const EXPECTED = [
  /concurrent operation on the same transaction/i,
  // Warned for any idempotent producer with bounded retries. esk's transactional writers bound
  // them on purpose: a send that gives up aborts its whole transaction, so nothing half-written
  // becomes visible, and the batch is delivered again.
  /Limiting retries for the idempotent producer/i,
  /group is rebalancing/i,
  /coordinator is loading/i,
  /coordinator is not available/i,
  /not the correct coordinator/i,
]

/** Code of the line that sums up the repeats of a kafkajs log condition. */
export const LOG_REPEATED_CODE = 'ESK_KAFKA_LOG_REPEATED'

/** Options of {@link kafkaLogCreator}. */
export interface KafkaLogOptions {
  /**
   * Window of the repeat limiter, ms: the first line of each condition (level, namespace and
   * message without their variable parts) goes through, its repeats within the window are
   * counted, and one line per condition and window says how many there were. 0 passes every line.
   * Default 10000.
   */
  repeatIntervalMs?: number
  /** The clock, ms (for tests). Default `Date.now`. */
  now?: () => number
}

/**
 * Routes kafkajs's log entries to an esk {@link Logger}, with expected retried errors at debug
 * level, through a repeat limiter (see {@link KafkaLogOptions.repeatIntervalMs}): during a broker
 * outage kafkajs logs the same connection error many times a second from every client.
 */
export function kafkaLogCreator(logger: Logger, options: KafkaLogOptions = {}): logCreator {
  const route = (entry: LogEntry, suffix?: string, extra?: Record<string, unknown>): void => {
    const { namespace, level, log } = entry
    const { message, ...fields } = log
    const text = `${namespace ? `kafkajs ${namespace}: ${message}` : `kafkajs: ${message}`}${suffix ?? ''}`
    const detail = { ...extra, ...fields, error: fields.error } as Record<string, unknown>
    const expected = EXPECTED.some((p) => p.test(String(fields.error ?? message)))
    if (expected) logger.debug(text, detail)
    else if (level === logLevel.ERROR || level === logLevel.NOTHING) logger.error(text, detail)
    else if (level === logLevel.WARN) logger.warn(text, detail)
    else if (level === logLevel.INFO) logger.info(text, detail)
    else logger.debug(text, detail)
  }
  const intervalMs = options.repeatIntervalMs ?? 10_000
  if (intervalMs <= 0) return () => (entry) => route(entry)
  // One limiter for every kafkajs client of the transport, so their repeats add up.
  const limiter = new RepeatLimiter(intervalMs, options.now ?? Date.now, (entry, repeats) =>
    route(entry, ` (and ${repeats} more like it in the last ${formatSeconds(intervalMs)})`, {
      code: LOG_REPEATED_CODE,
      repeats,
    }),
  )
  return () => (entry) => {
    if (limiter.admit(entry)) route(entry)
  }
}

interface Condition {
  /** When its window opened, ms. */
  since: number
  /** Lines held back in this window. */
  repeats: number
  /** The latest line held back, to sum them up with. */
  last: LogEntry
}

/**
 * Lets the first line of each condition through per window and counts the rest; a condition that
 * repeated gets one summary line when its window closes (on its next line, or on a timer set
 * while any condition holds repeats back).
 */
export class RepeatLimiter {
  private readonly conditions = new Map<string, Condition>()
  private sweeper: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
    private readonly summarize: (entry: LogEntry, repeats: number) => void,
  ) {}

  /** True when `entry` should be logged now; false when it is counted as a repeat. */
  admit(entry: LogEntry): boolean {
    const key = conditionOf(entry)
    const now = this.now()
    const condition = this.conditions.get(key)
    if (condition && now - condition.since < this.intervalMs) {
      condition.repeats += 1
      condition.last = entry
      this.sweepLater()
      return false
    }
    if (condition && condition.repeats > 0) this.summarize(condition.last, condition.repeats)
    this.conditions.set(key, { since: now, repeats: 0, last: entry })
    return true
  }

  /** Sums up every condition whose window has closed, and forgets those that were quiet. */
  sweep(): void {
    if (this.sweeper) clearTimeout(this.sweeper)
    this.sweeper = undefined
    const now = this.now()
    for (const [key, condition] of this.conditions) {
      if (now - condition.since < this.intervalMs) continue
      if (condition.repeats > 0) this.summarize(condition.last, condition.repeats)
      this.conditions.delete(key)
    }
    this.sweepLater()
  }

  /** Number of conditions in an open window (for tests). */
  get size(): number {
    return this.conditions.size
  }

  /** Sweeps when the first window holding repeats closes, if none is planned yet. */
  private sweepLater(): void {
    if (this.sweeper) return
    let first: number | undefined
    for (const c of this.conditions.values()) if (c.repeats > 0 && (first === undefined || c.since < first)) first = c.since
    if (first === undefined) return
    this.sweeper = setTimeout(() => this.sweep(), Math.max(0, first + this.intervalMs - this.now()))
    // Never keeps the process alive.
    this.sweeper.unref?.()
  }
}

/**
 * What makes two kafkajs lines "the same condition": the level, the namespace and the message and
 * error with their variable parts (numbers, addresses, ids, quoted values) taken out.
 */
export function conditionOf(entry: LogEntry): string {
  const error = typeof entry.log.error === 'string' ? entry.log.error : ''
  return `${entry.level}|${entry.namespace}|${invariant(String(entry.log.message))}|${invariant(error)}`
}

function invariant(text: string): string {
  return text
    .replace(/"[^"]*"|'[^']*'/g, '?')
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, '?')
    .replace(/\[[^\]]*\]/g, '?')
    .replace(/[\w.-]*\d[\w.-]*(:\d+)?/g, '?')
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`
}
