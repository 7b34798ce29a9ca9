import { ConfigurationError } from '@esk/core'
import type { Logger } from '@esk/core'
import type { KafkaConfig, logLevel } from 'kafkajs'

/** Options of {@link kafkaTransport}. Every field has a default except where noted. */
export interface KafkaTransportOptions {
  /** Bootstrap brokers. Default `['127.0.0.1:9092']` (the local stack), or `ESK_KAFKA_BROKERS` (comma-separated). */
  brokers?: string[]
  /** Client id sent to the brokers. Default `esk`. */
  clientId?: string
  /**
   * Passed through to kafkajs's `Kafka` constructor: `ssl`, `sasl`, `connectionTimeout`,
   * `requestTimeout`, `retry`, ... `brokers` and `clientId` above take precedence.
   */
  kafka?: Omit<KafkaConfig, 'brokers' | 'clientId'>
  /** Prefix of topic and consumer group names. Default `esk.`. */
  topicPrefix?: string
  /** Replication factor of topics esk creates; -1 takes the broker's default. Default -1. */
  replicationFactor?: number
  /** Retention of the command topics in ms (commands are not the truth). Default 7 days. */
  commandRetentionMs?: number
  /**
   * Largest encoded command accepted by `send`, bytes; larger ones are refused with
   * `ESK_INVALID_ARGUMENT` before reaching Kafka. Keep it below the broker's `message.max.bytes`.
   * Default 512 KiB.
   */
  maxCommandBytes?: number
  /**
   * Most commands a client holds waiting to be sent; past it `save`/`update` fail at once with
   * `ESK_UNAVAILABLE` instead of queueing during an outage. Default 10000.
   */
  maxQueuedCommands?: number
  /** Most commands processed in one Kafka transaction. Default 500. */
  maxBatchSize?: number
  /** Transaction timeout asked of the coordinator, ms. Default 30000. */
  transactionTimeoutMs?: number
  /** Consumer group session timeout, ms. Default 10000. */
  sessionTimeoutMs?: number
  /** Consumer group heartbeat interval, ms. Default 1000. */
  heartbeatIntervalMs?: number
  /**
   * Longest a fetch waits for new commands, ms; new commands are returned at once whatever this
   * is. It also bounds how long a partition that has just become ready (taken over, recovered,
   * repaired) waits for its first fetch: kafkajs sleeps this long when every partition of the
   * consumer is paused, and a resumed partition joins the fetch after the one in flight. Lower
   * also reacts faster to rebalances (the group heartbeats between fetches), for more empty
   * fetches while idle. Default 100.
   */
  maxWaitTimeMs?: number
  /** First retry delay after CONCURRENT_TRANSACTIONS, ms (kafkajs's own default is 300). Default 5. */
  transactionRetryMs?: number
  /** Partitions consumed concurrently by one processor. Default 16. */
  partitionsConsumedConcurrently?: number
  /** Most verbose kafkajs level passed on to `logger`. Default `logLevel.WARN`. */
  logLevel?: logLevel
  /** Where kafkajs's logs go. Default: the console logger (level from `ESK_LOG_LEVEL`). */
  logger?: Logger
  /**
   * Window of the kafkajs log limiter, ms: the first line of each condition goes through, and its
   * repeats within the window become one summary line (code `ESK_KAFKA_LOG_REPEATED`), so a broker
   * outage does not flood the logs. 0 logs every line. Default 10000.
   */
  logRepeatIntervalMs?: number
}

/** Defaults of {@link KafkaTransportOptions}, in one place. */
export const KAFKA_DEFAULTS = {
  brokers: ['127.0.0.1:9092'],
  clientId: 'esk',
  topicPrefix: 'esk.',
  replicationFactor: -1,
  commandRetentionMs: 7 * 24 * 60 * 60 * 1000,
  maxCommandBytes: 512 * 1024,
  maxQueuedCommands: 10_000,
  maxBatchSize: 500,
  transactionTimeoutMs: 30_000,
  sessionTimeoutMs: 10_000,
  heartbeatIntervalMs: 1_000,
  maxWaitTimeMs: 100,
  transactionRetryMs: 5,
  partitionsConsumedConcurrently: 16,
  logRepeatIntervalMs: 10_000,
} as const

/** Options after defaults, validated. */
export type ResolvedKafkaOptions = Required<Omit<KafkaTransportOptions, 'kafka' | 'logLevel' | 'logger'>> &
  Pick<KafkaTransportOptions, 'kafka' | 'logLevel' | 'logger'>

const PREFIX_PATTERN = /^[A-Za-z0-9._-]{0,100}$/

/** Applies defaults and rejects invalid values with a message naming the option. */
export function resolveOptions(options: KafkaTransportOptions): ResolvedKafkaOptions {
  const fromEnv = process.env.ESK_KAFKA_BROKERS?.split(',').map((b) => b.trim()).filter(Boolean)
  const resolved: ResolvedKafkaOptions = {
    ...KAFKA_DEFAULTS,
    brokers: fromEnv?.length ? fromEnv : [...KAFKA_DEFAULTS.brokers],
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as ResolvedKafkaOptions
  if (!Array.isArray(resolved.brokers) || resolved.brokers.length === 0) {
    throw new ConfigurationError('kafkaTransport: brokers must list at least one host:port')
  }
  if (!PREFIX_PATTERN.test(resolved.topicPrefix)) {
    throw new ConfigurationError(
      `kafkaTransport: topicPrefix '${resolved.topicPrefix}' may only use letters, digits, '.', '_' and '-'`,
    )
  }
  const positive = [
    'maxCommandBytes',
    'maxQueuedCommands',
    'maxBatchSize',
    'transactionTimeoutMs',
    'sessionTimeoutMs',
    'heartbeatIntervalMs',
    'maxWaitTimeMs',
    'commandRetentionMs',
    'partitionsConsumedConcurrently',
  ] as const
  for (const name of positive) {
    const value = resolved[name]
    if (!Number.isInteger(value) || value < 1) {
      throw new ConfigurationError(`kafkaTransport: ${name} must be a positive integer, got ${String(value)}`)
    }
  }
  if (!Number.isInteger(resolved.logRepeatIntervalMs) || resolved.logRepeatIntervalMs < 0) {
    throw new ConfigurationError('kafkaTransport: logRepeatIntervalMs must be a non-negative integer (0 logs every line)')
  }
  if (!Number.isInteger(resolved.transactionRetryMs) || resolved.transactionRetryMs < 0) {
    throw new ConfigurationError('kafkaTransport: transactionRetryMs must be a non-negative integer')
  }
  if (resolved.heartbeatIntervalMs * 3 > resolved.sessionTimeoutMs) {
    throw new ConfigurationError(
      `kafkaTransport: heartbeatIntervalMs (${resolved.heartbeatIntervalMs}) must be at most a third of ` +
        `sessionTimeoutMs (${resolved.sessionTimeoutMs}); lower the interval or raise the timeout`,
    )
  }
  if (resolved.replicationFactor !== -1 && !(Number.isInteger(resolved.replicationFactor) && resolved.replicationFactor >= 1)) {
    throw new ConfigurationError('kafkaTransport: replicationFactor must be -1 (broker default) or a positive integer')
  }
  return resolved
}

/** Names of the topics and group of one aggregate type. */
export interface StreamNames {
  commands: string
  events: string
  /** Poison command records with their reasons, partition by partition like the commands. */
  deadLetters: string
  group: string
}

/**
 * Topic and group names of an aggregate type: `<prefix><aggregate>.commands|events|dead-letters`,
 * group `<prefix><aggregate>.processor`.
 */
export function streamNames(prefix: string, aggregate: string): StreamNames {
  return {
    commands: `${prefix}${aggregate}.commands`,
    events: `${prefix}${aggregate}.events`,
    deadLetters: `${prefix}${aggregate}.dead-letters`,
    group: `${prefix}${aggregate}.processor`,
  }
}
