import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  ConfigurationError,
  ESK_DEFAULTS,
  type AggregateRegistration,
  type Class,
  type ReadModel,
  type ReadModelRegistration,
} from '@esk/core'
import { aggregateModel, messageOf, readModelSpec } from '@esk/core/driver'
import type { KafkaTransportOptions } from '@esk/kafka'
import type { RedisStoreOptions } from '@esk/redis'

/**
 * What the `esk` command works against: the application's brokers, Redis, prefixes and
 * registrations, as `createEsk` and the drivers name them. Written as `esk.config.mjs` or
 * `esk.config.js` (a module whose default export is this object) or `esk.config.json` (names only).
 */
export interface EskCliConfig {
  /** Kafka bootstrap brokers. Default `ESK_KAFKA_BROKERS`, else `127.0.0.1:9092`. */
  brokers?: string[]
  /** Redis URL. Default `ESK_REDIS_URL`, else `redis://127.0.0.1:6379`. */
  redisUrl?: string
  /** Prefix of topics and consumer groups (`kafkaTransport({ topicPrefix })`). Default `esk.`. */
  topicPrefix?: string
  /** Prefix of Redis keys (`redisStore({ keyPrefix })`). Default `esk:`. */
  keyPrefix?: string
  /**
   * The application's aggregates: classes or registrations as given to `createEsk` (needed to fold
   * events: `inspect`, `rebuild`), or only their names (enough for `status`, `dlq`, `outcome`,
   * `topics check`). Default: every aggregate whose topics exist under the prefix.
   */
  aggregates?: Array<Class | AggregateRegistration | string>
  /** The application's read models, as given to `createEsk` (for `status` and `projection`). */
  projections?: Array<ReadModel | ReadModelRegistration>
  /** Default partition count, as `createEsk({ partitions })`. Default 4. */
  partitions?: number
  /** The application's `dedupWindow`, used when `rebuild` rewrites snapshots. Default 32. */
  dedupWindow?: number
  /** More options of the Kafka transport (ssl, sasl, clientId, ...). */
  kafka?: Omit<KafkaTransportOptions, 'brokers' | 'topicPrefix'>
  /** More options of the Redis store (redisOptions for TLS, passwords, ...). */
  redis?: Omit<RedisStoreOptions, 'url' | 'keyPrefix'>
}

/** Flags that override the configuration file. */
export interface ConfigFlags {
  config?: string
  brokers?: string
  redis?: string
  topicPrefix?: string
  keyPrefix?: string
}

/** File names looked for in the working directory, in this order. */
export const CONFIG_FILES = ['esk.config.mjs', 'esk.config.js', 'esk.config.json'] as const

/** An aggregate type as the CLI knows it: its name, its class when the configuration gave one, and its partitions when configured. */
export interface KnownAggregate {
  name: string
  cls?: Class
  partitions?: number
}

/** The configuration after flags, environment and defaults. */
export interface ResolvedConfig {
  /** The file it came from, if any. */
  file: string | undefined
  brokers: string[]
  redisUrl: string
  topicPrefix: string
  keyPrefix: string
  /** Undefined when the configuration names none: the CLI then discovers them from the topics. */
  aggregates: KnownAggregate[] | undefined
  projections: Array<ReadModel | ReadModelRegistration>
  dedupWindow: number
  kafka: Omit<KafkaTransportOptions, 'brokers' | 'topicPrefix'>
  redis: Omit<RedisStoreOptions, 'url' | 'keyPrefix'>
}

/** Loads the configuration file (the one named, or the first of {@link CONFIG_FILES} found in `cwd`), then applies flags and defaults. */
export async function loadConfig(flags: ConfigFlags = {}, cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): Promise<ResolvedConfig> {
  let file: string | undefined
  if (flags.config) {
    file = resolve(cwd, flags.config)
    if (!existsSync(file)) throw new ConfigurationError(`the configuration file ${file} does not exist; check --config`)
  } else {
    file = CONFIG_FILES.map((name) => resolve(cwd, name)).find((path) => existsSync(path))
  }
  const loaded = file ? await readConfigFile(file) : {}
  return resolveConfig(loaded, flags, env, file)
}

/** Applies flags, environment and defaults to a configuration object (validated). */
export function resolveConfig(config: EskCliConfig, flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env, file?: string): ResolvedConfig {
  const where = file ? `in ${file}` : 'in the configuration'
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigurationError(`the configuration must be an object ${where}`)
  }
  const fromEnv = env.ESK_KAFKA_BROKERS?.split(',').map((b) => b.trim()).filter(Boolean)
  const brokers = flags.brokers?.split(',').map((b) => b.trim()).filter(Boolean) ?? config.brokers ?? (fromEnv?.length ? fromEnv : ['127.0.0.1:9092'])
  if (!Array.isArray(brokers) || brokers.length === 0 || brokers.some((b) => typeof b !== 'string' || b === '')) {
    throw new ConfigurationError(`brokers must list at least one host:port ${where} (or pass --brokers)`)
  }
  const partitions = config.partitions ?? ESK_DEFAULTS.partitions
  if (!Number.isInteger(partitions) || partitions < 1) throw new ConfigurationError(`partitions must be a positive integer ${where}`)
  const dedupWindow = config.dedupWindow ?? ESK_DEFAULTS.dedupWindow
  if (!Number.isInteger(dedupWindow) || dedupWindow < 1) throw new ConfigurationError(`dedupWindow must be a positive integer ${where}`)
  if (config.aggregates !== undefined && !Array.isArray(config.aggregates)) {
    throw new ConfigurationError(`aggregates must be a list of aggregate classes, registrations or names ${where}`)
  }
  const aggregates = config.aggregates?.map((entry): KnownAggregate => {
    if (typeof entry === 'string') return { name: entry }
    const registration = typeof entry === 'function' ? { aggregate: entry } : entry
    let name: string
    try {
      name = aggregateModel(registration.aggregate).name
    } catch (error) {
      throw new ConfigurationError(`an entry of aggregates ${where} is not an aggregate class: ${messageOf(error)}`)
    }
    return { name, cls: registration.aggregate, partitions: registration.partitions ?? partitions }
  })
  const projections = config.projections ?? []
  if (!Array.isArray(projections)) throw new ConfigurationError(`projections must be a list of read models ${where}`)
  return {
    file,
    brokers,
    redisUrl: flags.redis ?? config.redisUrl ?? env.ESK_REDIS_URL ?? `redis://127.0.0.1:${env.ESK_REDIS_PORT ?? '6379'}`,
    topicPrefix: flags.topicPrefix ?? config.topicPrefix ?? 'esk.',
    keyPrefix: flags.keyPrefix ?? config.keyPrefix ?? 'esk:',
    aggregates,
    projections,
    dedupWindow,
    kafka: config.kafka ?? {},
    redis: config.redis ?? {},
  }
}

/** The name of a configured read model. */
export function projectionName(entry: ReadModel | ReadModelRegistration): string {
  return readModelSpec(registered(entry)).name
}

/** The read model of a registration or the model itself. */
export function registered(entry: ReadModel | ReadModelRegistration): ReadModel {
  return typeof entry === 'object' && entry !== null && 'projection' in entry ? entry.projection : entry
}

async function readConfigFile(file: string): Promise<EskCliConfig> {
  try {
    if (file.endsWith('.json')) return JSON.parse(await readFile(file, 'utf8')) as EskCliConfig
    const module = (await import(pathToFileURL(file).href)) as { default?: EskCliConfig }
    if (module.default === undefined) throw new Error('it has no default export')
    return module.default
  } catch (error) {
    throw new ConfigurationError(`the configuration file ${file} cannot be loaded: ${messageOf(error)}`)
  }
}
