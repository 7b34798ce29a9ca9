import { EskError, InvalidArgumentError, UnavailableError, consoleLogger, type Logger } from '@esk/core'
import {
  messageOf,
  type CommandLogPosition,
  type EventFeed,
  type EventFeedHost,
  type EventFeedSpec,
  type LogBounds,
  type PartitionHost,
  type RecordHeaders,
  type StoredEvent,
  type StreamSpec,
  type Transport,
  type TransportDestinations,
} from '@esk/core/driver'
import type { Admin, Kafka as KafkaClient, Producer, logCreator } from 'kafkajs'
import { Kafka, Partitioners, logLevel } from './kafkajs.js'
import { resolveOptions, streamNames, type KafkaTransportOptions, type ResolvedKafkaOptions } from './options.js'
import { CommandSender } from './command-sender.js'
import { KafkaFeed } from './feed.js'
import { kafkaLogCreator } from './logging.js'
import { StreamProcessor, type PartitionState } from './processing.js'
import { LogReader } from './replay.js'
import { provisionTopics } from './topics.js'

/** Most commands one produce request carries (their bytes are capped by MAX_REQUEST_BYTES). */
const COMMANDS_PER_REQUEST = 1_000

/** How long a read of the log may go without a batch before it fails (and is retried by the partition). */
const READ_STALL_TIMEOUT_MS = 60_000

/**
 * The Kafka transport: a command topic and an event topic per aggregate type with the same
 * partition count, commands produced to the partition of their aggregate id, one consumer group
 * per aggregate type whose members each own whole partitions, transactional per-partition writers,
 * and replay of the event topic up to its last stable offset.
 */
export class KafkaTransport implements Transport {
  private readonly options: ResolvedKafkaOptions
  private readonly kafka: KafkaClient
  private admin: Admin | undefined
  private producer: Producer | undefined
  private sender: CommandSender | undefined
  private reader: LogReader | undefined
  private connecting: Promise<void> | undefined
  private readonly processors: StreamProcessor[] = []
  private readonly feeds = new Set<KafkaFeed>()
  private closed = false

  private readonly logger: Logger
  /** Shared by every kafkajs client of this transport, so their repeated lines are counted together. */
  private readonly logCreator: logCreator

  constructor(options: KafkaTransportOptions = {}) {
    this.options = resolveOptions(options)
    this.logger = options.logger ?? consoleLogger()
    this.logCreator = kafkaLogCreator(this.logger, { repeatIntervalMs: this.options.logRepeatIntervalMs })
    this.kafka = this.newClient()
  }

  /** A kafkajs client with this transport's settings, bootstrapped from one broker if named. */
  private newClient(broker?: string): KafkaClient {
    return new Kafka({
      ...this.options.kafka,
      brokers: broker ? [broker] : this.options.brokers,
      clientId: this.options.clientId,
      logLevel: this.options.logLevel ?? logLevel.WARN,
      logCreator: this.logCreator,
    })
  }

  /** The kafkajs client, for tools that need more than the transport offers. */
  get client(): KafkaClient {
    return this.kafka
  }

  /** Topic and group names of an aggregate type. */
  names(aggregate: string): ReturnType<typeof streamNames> {
    return streamNames(this.options.topicPrefix, aggregate)
  }

  destinations(stream: StreamSpec): TransportDestinations {
    const names = this.names(stream.aggregate)
    return { system: 'kafka', commands: names.commands, events: names.events, group: names.group }
  }

  async provision(streams: readonly StreamSpec[]): Promise<void> {
    try {
      await this.connect()
      await provisionTopics(this.admin!, this.options, streams, (broker) => this.newClient(broker).admin())
    } catch (error) {
      if (error instanceof EskError) throw error
      // kafkajs gave up (its retries are spent): the cluster is down or unreachable, for now.
      throw new UnavailableError(
        `creating or checking the topics of ${streams.map((s) => s.aggregate).join(', ')} failed: ${messageOf(error)}; ` +
          `check that Kafka answers at ${this.options.brokers.join(', ')}, then start again`,
        { brokers: this.options.brokers },
        error,
      )
    }
  }

  async send(stream: StreamSpec, partition: number, key: string, value: string, headers?: RecordHeaders): Promise<void> {
    const bytes = Buffer.byteLength(value)
    if (bytes > this.options.maxCommandBytes) {
      throw new InvalidArgumentError(
        `the command for ${stream.aggregate} '${key}' encodes to ${bytes} bytes, over maxCommandBytes ` +
          `(${this.options.maxCommandBytes}); keep large data elsewhere and send a reference`,
        { aggregate: stream.aggregate, id: key, bytes, maxCommandBytes: this.options.maxCommandBytes },
      )
    }
    await this.connect()
    await this.sender!.send(this.names(stream.aggregate).commands, partition, key, value, headers)
  }

  async *readEvents(stream: StreamSpec, partition: number, from: number, until = 0): AsyncIterable<StoredEvent[]> {
    await this.connect()
    yield* this.reader!.events(this.names(stream.aggregate), stream.partitions, partition, from, until)
  }

  /** First offset and last stable offset (read_committed) of every partition of the stream's event topic. */
  async eventLogBounds(stream: StreamSpec): Promise<LogBounds[]> {
    await this.connect()
    const offsets = await this.admin!.fetchTopicOffsets(this.names(stream.aggregate).events)
    const bounds: LogBounds[] = []
    for (const o of offsets) bounds[o.partition] = { start: Number(o.low), end: Number(o.offset) }
    return Array.from({ length: stream.partitions }, (_, p) => bounds[p] ?? { start: 0, end: 0 })
  }

  /**
   * High watermark of every partition of the stream's command topic, and the offset its processor
   * group committed there (in the transaction with the events; the topic's first offset when the
   * group has committed nothing).
   */
  async commandLogPositions(stream: StreamSpec): Promise<CommandLogPosition[]> {
    await this.connect()
    const names = this.names(stream.aggregate)
    const [offsets, [committed]] = await Promise.all([
      this.admin!.fetchTopicOffsets(names.commands),
      this.admin!.fetchOffsets({ groupId: names.group, topics: [names.commands] }),
    ])
    return Array.from({ length: stream.partitions }, (_, partition) => {
      const entry = offsets.find((o) => o.partition === partition)
      const group = Number(committed?.partitions.find((p) => p.partition === partition)?.offset ?? -1)
      const low = Number(entry?.low ?? 0)
      return { end: Number(entry?.high ?? 0), committed: group >= 0 ? group : low }
    })
  }

  /**
   * Feeds a read model from the event topics through a consumer group of its own
   * (`<topicPrefix><group>`); see {@link KafkaFeed}.
   */
  async subscribeEvents(spec: EventFeedSpec, host: EventFeedHost): Promise<EventFeed> {
    await this.connect()
    const feed = new KafkaFeed(this.kafka, this.admin!, this.options, spec, host, this.logger)
    this.feeds.add(feed)
    try {
      await feed.start()
    } catch (error) {
      this.feeds.delete(feed)
      await feed.stop()
      throw error
    }
    return {
      reopen: () => feed.reopen(),
      stop: async () => {
        this.feeds.delete(feed)
        await feed.stop()
      },
    }
  }

  async startProcessing(streams: readonly StreamSpec[], host: PartitionHost): Promise<void> {
    await this.connect()
    // The reader joins its group while the processors join theirs: recovery needs it right after.
    for (const stream of streams) this.reader!.prepare(this.names(stream.aggregate), stream.partitions)
    const started = streams.map(
      (stream) => new StreamProcessor(this.kafka, this.admin!, this.reader!, this.options, stream, host, this.logger),
    )
    this.processors.push(...started)
    await Promise.all(started.map((p) => p.start()))
  }

  /** Every partition this process was assigned, with where it stands (see {@link PartitionState}). */
  partitions(): Array<{ aggregate: string; partition: number; state: PartitionState }> {
    return this.processors.flatMap((p) => [...p.states()].map(([partition, state]) => ({ aggregate: p.aggregate, partition, state })))
  }

  async stopProcessing(): Promise<void> {
    const processors = this.processors.splice(0)
    await Promise.all(processors.map((p) => p.stop()))
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.feeds].map((f) => f.stop()))
    this.feeds.clear()
    await this.stopProcessing()
    await this.reader?.close()
    await Promise.allSettled([this.producer?.disconnect(), this.admin?.disconnect()])
  }

  /**
   * The producer of commands. Commands are idempotent on the broker (no duplicates from producer
   * retries) and, with explicit partitions, never reordered within an aggregate.
   */
  private commandProducer(): Producer {
    return this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      // Every command names its partition; this only silences kafkajs's warning about its default.
      createPartitioner: Partitioners.DefaultPartitioner,
    })
  }

  /** Replaces a command producer the brokers no longer accept (a new producer id), and drops the old one. */
  private async renewProducer(broken: Producer): Promise<Producer> {
    this.logger.warn('the command producer lost its sequence state after a leader change; starting a new one', {
      code: 'ESK_PRODUCER_RENEWED',
    })
    const producer = this.commandProducer()
    await producer.connect()
    this.producer = producer
    void broken.disconnect().catch(() => undefined)
    return producer
  }

  private connect(): Promise<void> {
    this.connecting ??= (async () => {
      const admin = this.kafka.admin()
      const producer = this.commandProducer()
      try {
        await Promise.all([admin.connect(), producer.connect()])
      } catch (error) {
        await Promise.allSettled([admin.disconnect(), producer.disconnect()])
        throw error
      }
      this.admin = admin
      this.producer = producer
      this.sender = new CommandSender(producer, COMMANDS_PER_REQUEST, this.options.maxQueuedCommands, (broken) =>
        this.renewProducer(broken),
      )
      this.reader = new LogReader(this.kafka, admin, {
        groupPrefix: this.options.topicPrefix,
        stallTimeoutMs: READ_STALL_TIMEOUT_MS,
        logger: this.logger,
      })
    })()
    // A failed connection is not kept: the next call tries again.
    this.connecting.catch(() => (this.connecting = undefined))
    return this.connecting
  }
}

/** Creates a {@link KafkaTransport}; pair it with a store: `driver: { transport: kafkaTransport(), store: redisStore() }`. */
export function kafkaTransport(options: KafkaTransportOptions = {}): KafkaTransport {
  return new KafkaTransport(options)
}
