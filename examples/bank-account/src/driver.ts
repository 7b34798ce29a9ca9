import { parseArgs } from 'node:util'
import { ErrorCode, hasCode, type Driver } from '@esk/core'
import { kafkaTransport, resolveKafkaOptions, type KafkaTransportOptions } from '@esk/kafka'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { redisStore } from '@esk/redis'

/**
 * Builds a fresh driver for each application start. Every driver it returns must reach the same
 * data, so that a restarted application sees what an earlier one wrote.
 */
export type DriverFactory = () => Driver | Promise<Driver>

/** A {@link DriverFactory} that also says which driver it builds and where, without credentials. */
export interface ExampleDriver {
  (): Driver | Promise<Driver>
  /** One line for the console: the driver, its addresses and prefixes; never a password. */
  readonly description: string
}

/** The environment variables {@link driverFromArgs} reads; `process.env` fits. */
export type Env = Readonly<Record<string, string | undefined>>

/**
 * Defaults of the `--kafka` mode. The prefixes differ from the packages' own (`esk.`, `esk:`) so
 * that the example's topics and keys never mix with those of tests or of an application.
 */
export const EXAMPLE_DEFAULTS = {
  brokers: ['127.0.0.1:9092'],
  redisUrl: 'redis://127.0.0.1:6379',
  topicPrefix: 'esk-example.',
  keyPrefix: 'esk-example:',
} as const

/** The SASL mechanisms `ESK_KAFKA_SASL_MECHANISM` accepts: those that need only a username and password. */
export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const

/** Code of {@link UsageError}; check it rather than `instanceof`. */
export const USAGE_ERROR = 'EXAMPLE_USAGE'

/** The command line or the environment asks for something the example cannot do; main exits with 2. */
export class UsageError extends Error {
  override name = 'UsageError'
  readonly code = USAGE_ERROR
}

/** Whether `error` is a {@link UsageError}, by its code. */
export function isUsageError(error: unknown): error is UsageError {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === USAGE_ERROR
}

/** What `main.js --help` prints, and what follows a usage error. */
export const USAGE = `usage: npm run example -- [--kafka [options]]
       node examples/bank-account/dist/main.js [--kafka [options]]

  (no option)             the embedded driver: in memory, gone when the process exits
  --kafka                 commands and events on Kafka, snapshots and outcomes on Redis
  --brokers host:port,... Kafka bootstrap brokers (default: ESK_KAFKA_BROKERS, else ${EXAMPLE_DEFAULTS.brokers.join(',')})
  --redis-url url         redis://[user:password@]host:port[/db], rediss://... for TLS
                          (default: ESK_REDIS_URL, else ${EXAMPLE_DEFAULTS.redisUrl})
  --topic-prefix prefix   prefix of topic and consumer group names (default: ${EXAMPLE_DEFAULTS.topicPrefix})
  --key-prefix prefix     prefix of Redis keys and channels (default: ${EXAMPLE_DEFAULTS.keyPrefix})
  -h, --help              this text

A secured Kafka is configured through the environment, so that no secret is on the command line:
  ESK_KAFKA_SSL=1                     TLS to the brokers
  ESK_KAFKA_SASL_MECHANISM            ${SASL_MECHANISMS.join(', ')}
  ESK_KAFKA_SASL_USERNAME, ESK_KAFKA_SASL_PASSWORD
A secured Redis goes in the URL: rediss://user:password@host:port.`

type SaslMechanism = (typeof SASL_MECHANISMS)[number]
type KafkaClientOptions = NonNullable<KafkaTransportOptions['kafka']>
type SaslCredentials = Extract<NonNullable<KafkaClientOptions['sasl']>, { mechanism: SaslMechanism }>

const BROKER_PATTERN = /^(\[[0-9A-Fa-f:.]+\]|[^\s:,[\]]+):\d{1,5}$/
// Stricter than the store's own rule, so a prefix is also easy to type in redis-cli.
const KEY_PREFIX_PATTERN = /^[A-Za-z0-9._:-]{1,100}$/

/**
 * Chooses where the example keeps its data, from the command-line arguments (without `node` and
 * the script) and the environment. Without options: the embedded driver over one in-memory
 * backend shared by every start. With `--kafka`: a Kafka transport and a Redis store per start,
 * all on the same topics and keys. Throws {@link UsageError} for anything it cannot honour, before
 * any connection is opened.
 */
export function driverFromArgs(args: readonly string[], env: Env): ExampleDriver {
  const flags = parseFlags(args)
  if (!flags.kafka) {
    const given = (['brokers', 'redis-url', 'topic-prefix', 'key-prefix'] as const).filter((name) => flags[name] !== undefined)
    if (given.length > 0) throw new UsageError(`--${given[0]} applies only with --kafka`)
    return withDescription(embeddedDriver(), 'Driver: embedded (in memory; the data lives as long as this process)')
  }

  const brokers = brokerList(flags.brokers, env.ESK_KAFKA_BROKERS)
  const redisUrl = flags['redis-url'] ?? nonEmpty(env.ESK_REDIS_URL) ?? EXAMPLE_DEFAULTS.redisUrl
  const topicPrefix = flags['topic-prefix'] ?? EXAMPLE_DEFAULTS.topicPrefix
  const keyPrefix = flags['key-prefix'] ?? EXAMPLE_DEFAULTS.keyPrefix
  const kafka = securityOptions(env)

  const transportOptions: KafkaTransportOptions = { brokers, topicPrefix, ...(kafka && { kafka }) }
  try {
    resolveKafkaOptions(transportOptions)
  } catch (error) {
    if (hasCode(error, ErrorCode.Configuration)) throw new UsageError(error.message, { cause: error })
    throw error
  }
  if (!KEY_PREFIX_PATTERN.test(keyPrefix)) {
    throw new UsageError(`--key-prefix '${keyPrefix}' must be 1 to 100 letters, digits, '.', '_', ':' or '-'`)
  }
  const shownUrl = redactedRedisUrl(redisUrl, flags['redis-url'] === undefined ? 'ESK_REDIS_URL' : '--redis-url')

  const security = [
    ...(kafka?.ssl ? ['TLS'] : []),
    ...(kafka?.sasl && 'username' in kafka.sasl ? [`SASL ${kafka.sasl.mechanism} as '${kafka.sasl.username}'`] : []),
  ]
  const description =
    `Driver: Kafka at ${brokers.join(',')} (topics ${topicPrefix}*${security.length > 0 ? `, ${security.join(', ')}` : ''})` +
    ` + Redis at ${shownUrl} (keys ${keyPrefix}*)`
  // The transport first: its constructor only validates, so a store that then fails to build leaks nothing.
  return withDescription(
    () => ({ transport: kafkaTransport(transportOptions), store: redisStore({ url: redisUrl, keyPrefix }) }),
    description,
  )
}

/** The embedded driver: one backend outlives every application of the run, as Kafka and Redis outlive a process. */
export function embeddedDriver(): DriverFactory {
  const backend = new MemoryBackend()
  return () => memoryDriver({ backend })
}

function withDescription(factory: DriverFactory, description: string): ExampleDriver {
  return Object.assign(() => factory(), { description })
}

function parseFlags(args: readonly string[]) {
  try {
    return parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        kafka: { type: 'boolean' },
        brokers: { type: 'string' },
        'redis-url': { type: 'string' },
        'topic-prefix': { type: 'string' },
        'key-prefix': { type: 'string' },
      },
    }).values
  } catch (error) {
    // parseArgs quotes a stray argument, which may be a URL with a password in it.
    throw new UsageError(maskPasswords((error as Error).message), { cause: error })
  }
}

function brokerList(flag: string | undefined, fromEnv: string | undefined): string[] {
  const source = flag !== undefined ? '--brokers' : 'ESK_KAFKA_BROKERS'
  const text = flag ?? nonEmpty(fromEnv)
  if (text === undefined) return [...EXAMPLE_DEFAULTS.brokers]
  const brokers = text.split(',').map((b) => b.trim()).filter(Boolean)
  const wrong = brokers.find((b) => !BROKER_PATTERN.test(b))
  if (brokers.length === 0 || wrong !== undefined) {
    throw new UsageError(
      `${source} must list host:port pairs separated by commas, got '${text}'` + (wrong !== undefined ? ` ('${wrong}')` : ''),
    )
  }
  return brokers
}

/** `ssl` and `sasl` for kafkajs from ESK_KAFKA_SSL and ESK_KAFKA_SASL_*; undefined when none is set. */
function securityOptions(env: Env): KafkaClientOptions | undefined {
  const ssl = sslFlag(nonEmpty(env.ESK_KAFKA_SSL))
  const mechanism = nonEmpty(env.ESK_KAFKA_SASL_MECHANISM)?.toLowerCase()
  const username = nonEmpty(env.ESK_KAFKA_SASL_USERNAME)
  const password = nonEmpty(env.ESK_KAFKA_SASL_PASSWORD)
  if (mechanism === undefined) {
    if (username !== undefined || password !== undefined) {
      throw new UsageError(
        `ESK_KAFKA_SASL_USERNAME/ESK_KAFKA_SASL_PASSWORD are set but ESK_KAFKA_SASL_MECHANISM is not; ` +
          `set it to one of ${SASL_MECHANISMS.join(', ')}`,
      )
    }
    return ssl ? { ssl } : undefined
  }
  if (!isSaslMechanism(mechanism)) {
    throw new UsageError(`ESK_KAFKA_SASL_MECHANISM '${mechanism}' is not supported; use one of ${SASL_MECHANISMS.join(', ')}`)
  }
  const missing = [
    ...(username === undefined ? ['ESK_KAFKA_SASL_USERNAME'] : []),
    ...(password === undefined ? ['ESK_KAFKA_SASL_PASSWORD'] : []),
  ]
  if (username === undefined || password === undefined) {
    throw new UsageError(`ESK_KAFKA_SASL_MECHANISM=${mechanism} needs ${missing.join(' and ')} as well`)
  }
  // kafkajs declares one object type per mechanism; this one value fits whichever was chosen.
  const sasl = { mechanism, username, password } as SaslCredentials
  return { ...(ssl && { ssl }), sasl }
}

function sslFlag(value: string | undefined): boolean {
  if (value === undefined) return false
  if (/^(1|true|yes)$/i.test(value)) return true
  if (/^(0|false|no)$/i.test(value)) return false
  throw new UsageError(`ESK_KAFKA_SSL must be 1 or 0 (true/false), got '${value}'`)
}

function isSaslMechanism(value: string): value is SaslMechanism {
  return (SASL_MECHANISMS as readonly string[]).includes(value)
}

/** The Redis URL with its password masked, after checking it is one; the raw text is never echoed. */
function redactedRedisUrl(url: string, source: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new UsageError(`${source} is not a URL; give redis://[user:password@]host:port or rediss://...`)
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new UsageError(`${source} must start with redis:// or rediss://, got '${parsed.protocol}//...'`)
  }
  if (parsed.password !== '') parsed.password = '***'
  return parsed.toString()
}

/** Masks the password of anything shaped like `scheme://user:password@host`. */
function maskPasswords(text: string): string {
  return text.replace(/(\/\/[^/:@\s]*:)[^@\s]*@/g, '$1***@')
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim()
}
