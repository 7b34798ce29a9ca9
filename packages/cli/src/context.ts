import { ConfigurationError, consoleLogger, createEsk, type Class, type Esk, type Logger } from '@esk/core'
import { partitionFor, type StreamSpec } from '@esk/core/driver'
import { KafkaTransport, logLevel, streamNames, type StreamNames } from '@esk/kafka'
import { RedisStore } from '@esk/redis'
import type { Admin } from 'kafkajs'
import { registered, type KnownAggregate, type ResolvedConfig } from './config.js'

/** An aggregate type found on the cluster: its configuration (if any), names, and partition count from its command topic. */
export interface Target extends KnownAggregate {
  stream: StreamSpec
  names: StreamNames
}

/**
 * The connections one CLI command uses, opened on first use and closed together: a Kafka
 * transport (with its admin client) and a Redis store, both configured as the application's.
 */
export class CliContext {
  private transportValue: KafkaTransport | undefined
  private storeValue: RedisStore | undefined
  private adminValue: Promise<Admin> | undefined
  private appValue: Promise<Esk> | undefined
  readonly logger: Logger

  constructor(readonly config: ResolvedConfig, logger?: Logger) {
    // The CLI reports failures itself: library logs only from warn up, on stderr.
    this.logger = logger ?? consoleLogger(process.env.ESK_LOG_LEVEL ? undefined : 'error')
  }

  /** The Kafka transport (topics as the application names them). */
  get transport(): KafkaTransport {
    this.transportValue ??= new KafkaTransport({
      logLevel: logLevel.NOTHING,
      clientId: 'esk-cli',
      ...this.config.kafka,
      brokers: this.config.brokers,
      topicPrefix: this.config.topicPrefix,
      logger: this.logger,
    })
    return this.transportValue
  }

  /** The Redis store (keys as the application names them). */
  get store(): RedisStore {
    this.storeValue ??= new RedisStore({
      logger: this.logger,
      ...this.config.redis,
      url: this.config.redisUrl,
      keyPrefix: this.config.keyPrefix,
    })
    return this.storeValue
  }

  /** A connected admin client of the transport's Kafka client. */
  admin(): Promise<Admin> {
    this.adminValue ??= (async () => {
      const admin = this.transport.client.admin()
      await admin.connect()
      return admin
    })()
    return this.adminValue
  }

  /** Topic and group names of an aggregate type. */
  names(aggregate: string): StreamNames {
    return streamNames(this.config.topicPrefix, aggregate)
  }

  /**
   * The aggregate types to work on: those configured (or, without any, every one whose command
   * topic exists), each with the partition count of its command topic. `only` picks one by name.
   */
  async targets(only?: string): Promise<Target[]> {
    const admin = await this.admin()
    const topics = await admin.listTopics()
    const suffix = '.commands'
    const configured: KnownAggregate[] =
      this.config.aggregates ??
      topics
        .filter((t) => t.startsWith(this.config.topicPrefix) && t.endsWith(suffix))
        .map((t) => ({ name: t.slice(this.config.topicPrefix.length, -suffix.length) }))
        .sort((a, b) => a.name.localeCompare(b.name))
    const chosen = only === undefined ? configured : configured.filter((a) => a.name === only)
    if (only !== undefined && chosen.length === 0) {
      const known = configured.map((a) => a.name).join(', ') || 'none'
      throw new ConfigurationError(`no aggregate named '${only}' is ${this.config.aggregates ? 'configured' : 'on the cluster'} (known: ${known})`)
    }
    const present = chosen.filter((a) => topics.includes(this.names(a.name).commands))
    const counts = new Map<string, number>()
    if (present.length > 0) {
      const metadata = await admin.fetchTopicMetadata({ topics: present.map((a) => this.names(a.name).commands) })
      for (const topic of metadata.topics) counts.set(topic.name, topic.partitions.length)
    }
    return chosen.map((a) => {
      const names = this.names(a.name)
      const partitions = counts.get(names.commands) ?? a.partitions ?? 0
      return { ...a, names, stream: { aggregate: a.name, partitions } }
    })
  }

  /** One aggregate type that must exist on the cluster. */
  async target(name: string): Promise<Target> {
    const [target] = await this.targets(name)
    if (!target || target.stream.partitions === 0) {
      throw new ConfigurationError(`aggregate '${name}' has no command topic ${this.names(name).commands}; check the topic prefix (--topic-prefix)`)
    }
    return target
  }

  /** The partition of an aggregate id. */
  partitionOf(target: Target, id: string): number {
    return partitionFor(id, target.stream.partitions)
  }

  /**
   * An esk application over the same connections that processes nothing and runs no read model:
   * the configured read models' views (status, reset, rebuild). Needs the aggregate classes, which
   * say which logs each read model reads. Like any application it checks the topics on start.
   */
  app(): Promise<Esk> {
    this.appValue ??= (async () => {
      const classes = (this.config.aggregates ?? []).filter((a): a is typeof a & { cls: Class } => a.cls !== undefined)
      if (classes.length === 0 || classes.length !== this.config.aggregates?.length) {
        throw new ConfigurationError(
          'read models need the aggregate classes: list them in aggregates of esk.config.mjs (or .js), as createEsk gets them',
        )
      }
      return createEsk({
        aggregates: classes.map((a) => ({ aggregate: a.cls, ...(a.partitions !== undefined && { partitions: a.partitions }) })),
        driver: { transport: this.transport, store: this.store },
        processing: false,
        projections: this.config.projections.map((p) => ({ projection: registered(p), run: false })),
        logger: this.logger,
      })
    })()
    return this.appValue
  }

  /** Closes every connection opened. */
  async close(): Promise<void> {
    const admin = this.adminValue
    const app = this.appValue
    await Promise.allSettled([
      admin?.then((a) => a.disconnect()),
      app?.then((a) => a.close()),
      this.transportValue?.close(),
      this.storeValue?.close(),
    ])
  }
}
