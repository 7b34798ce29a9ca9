import { randomUUID } from 'node:crypto'
import { SerializationError, type Logger } from '@esk/core'
import { sleep, type StoredEvent } from '@esk/core/driver'
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, PartitionAssigner } from 'kafkajs'
import { AssignerProtocol } from './kafkajs.js'
import type { StreamNames } from './options.js'
import { textHeaders } from './headers.js'
import { EVENT_HEADER, EventHeaders, decodeEventHeader } from './writer.js'

/** Options of a {@link LogReader}. */
export interface LogReaderOptions {
  /** Prefix of the reader groups' ids (`<prefix>replay.<uuid>`). */
  groupPrefix: string
  /** A read that gets no batch for this long fails, ms. */
  stallTimeoutMs: number
  logger: Logger
}

/** How often a reader that waits for its caller tells the group it is alive, ms. */
const READER_HEARTBEAT_MS = 3_000
/**
 * How long the reader's fetch loop sleeps while every partition is paused, ms: the most a read
 * waits before its first fetch. kafkajs cannot be woken earlier. A partition's opening reads up to
 * three times (the last event, the command it names, the replay), so this is paid up to three
 * times per takeover; an idle reader wakes this often, which costs about 1% of a core.
 */
const READER_IDLE_MS = 20

/**
 * Reads ranges of partitions with read_committed isolation, without joining a consumer group per
 * read. kafkajs has no manual assignment, so each stream gets one long-lived consumer in a group
 * of its own, joined once (that join pays the broker's `group.initial.rebalance.delay.ms`; later
 * reads do not). Its assigner hands it every partition of the stream's event and command topics;
 * all of them stay paused except those being read, each from the offset its read asked for.
 */
export class LogReader {
  private readonly readers = new Map<string, StreamReader>()
  private closed = false

  constructor(
    private readonly kafka: Kafka,
    private readonly admin: Admin,
    private readonly options: LogReaderOptions,
  ) {}

  /** Joins the reader group of a stream now, so that its first read does not wait for the join. */
  prepare(names: StreamNames, partitions: number): void {
    this.readerOf(names, partitions).ready.catch(() => undefined)
  }

  /**
   * Committed events of an event topic partition, from `from` up to its last stable offset as it
   * is when the read starts, in batches. The end is the LSO, not the high watermark: transaction
   * markers sit between the last event and the high watermark, and a reader waiting for an event
   * there would wait forever. When the caller knows of offsets up to `until`, the read first waits
   * (bounded) until the LSO covers them: a commit returns before its markers are written.
   */
  async *events(names: StreamNames, partitions: number, partition: number, from: number, until = 0): AsyncGenerator<StoredEvent[]> {
    const topic = names.events
    const { end, low } = await this.stableEnd(topic, partition, until)
    if (from >= end) return
    if (low > from) {
      throw new SerializationError(
        `events ${from}..${low - 1} of ${topic}[${partition}] were deleted; the event topic must keep every event ` +
          `(retention.ms=-1): restore it, or rebuild from a complete copy`,
        { topic, partition, from, low },
      )
    }
    for await (const messages of this.readerOf(names, partitions).read(topic, partition, from, end)) {
      yield messages.map((m) => decodeEvent(topic, partition, m))
    }
  }

  /** The last committed event of a partition, or undefined when it has none. */
  async lastEvent(names: StreamNames, partitions: number, partition: number): Promise<StoredEvent | undefined> {
    const topic = names.events
    const { end, low } = await this.stableEnd(topic, partition, 0)
    // Transaction markers and aborted records take offsets too: look further back until a
    // committed event shows up (nearly always in the last two offsets).
    for (let span = 8, to = end; to > low; to -= span, span *= 8) {
      const from = Math.max(low, to - span)
      let last: KafkaMessage | undefined
      for await (const messages of this.readerOf(names, partitions).read(topic, partition, from, to)) last = messages[messages.length - 1]
      if (last) return decodeEvent(topic, partition, last)
    }
    return undefined
  }

  /** The record at `offset` of a command topic partition, or undefined when the log does not hold it. */
  async commandAt(names: StreamNames, partitions: number, partition: number, offset: number): Promise<KafkaMessage | undefined> {
    const { end, low } = await this.stableEnd(names.commands, partition, 0)
    if (offset < low || offset >= end) return undefined
    for await (const messages of this.readerOf(names, partitions).read(names.commands, partition, offset, offset + 1)) {
      const found = messages.find((m) => Number(m.offset) === offset)
      if (found) return found
    }
    return undefined
  }

  /** Stops every reader and deletes its group. */
  async close(): Promise<void> {
    this.closed = true
    const readers = [...this.readers.values()]
    this.readers.clear()
    await Promise.all(readers.map((r) => r.close()))
    const groups = readers.map((r) => r.groupId)
    if (groups.length > 0) await this.admin.deleteGroups(groups).catch(() => undefined)
  }

  private readerOf(names: StreamNames, partitions: number): StreamReader {
    if (this.closed) throw new Error('the log reader is closed')
    let reader = this.readers.get(names.events)
    if (!reader || reader.dead) {
      if (reader) void reader.close()
      reader = new StreamReader(this.kafka, [names.events, names.commands], partitions, this.options)
      this.readers.set(names.events, reader)
    }
    return reader
  }

  /**
   * The partition's last stable offset and low watermark. When the caller knows of offsets up to
   * `until`, wait (bounded) until the LSO covers them.
   */
  private async stableEnd(topic: string, partition: number, until: number): Promise<{ end: number; low: number }> {
    const deadline = Date.now() + this.options.stallTimeoutMs
    for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
      const entry = (await this.admin.fetchTopicOffsets(topic)).find((o) => o.partition === partition)
      if (!entry) throw new Error(`topic ${topic} has no partition ${partition}`)
      const end = Number(entry.offset)
      if (end >= until) return { end, low: Number(entry.low) }
      if (Date.now() > deadline) {
        throw new Error(
          `${topic}[${partition}] shows committed records only up to ${end}, not ${until}, ` +
            `after ${this.options.stallTimeoutMs} ms: the transaction coordinator is not completing transactions`,
        )
      }
      await sleep(pause)
    }
  }
}

/**
 * Decodes an event record written by {@link TransactionalWriter}: from its {@link EVENT_HEADER} and
 * key, or from the one-header-per-field format of earlier versions.
 */
export function decodeEvent(topic: string, partition: number, message: KafkaMessage): StoredEvent {
  // No closures here: a replay decodes every event of a partition, and each would be allocated per record.
  const offset = Number(message.offset)
  const payload = message.value?.toString('utf8') ?? ''
  let event: StoredEvent
  const meta = headerText(message, EVENT_HEADER)
  if (meta !== undefined) {
    const fields = decodeEventHeader(meta)
    if (!fields) throw unreadable(topic, partition, message, `has an ${EVENT_HEADER} header that is not [type, version, commandId, commandOffset]`)
    if (!message.key) throw unreadable(topic, partition, message, 'has no key (the aggregate id)')
    const { type, version, commandId, commandOffset } = fields
    event = { offset, payload, type, aggregateId: message.key.toString('utf8'), version, commandId, commandPosition: commandOffset }
  } else {
    const header = (name: string): string => {
      const value = headerText(message, name)
      if (value === undefined) throw unreadable(topic, partition, message, `has neither an ${EVENT_HEADER} header nor an ${name} header`)
      return value
    }
    event = {
      offset,
      payload,
      type: header(EventHeaders.type),
      aggregateId: header(EventHeaders.aggregateId),
      version: Number(header(EventHeaders.version)),
      commandId: header(EventHeaders.commandId),
      commandPosition: Number(header(EventHeaders.commandOffset)),
    }
  }
  // One literal, and the trace headers added to it: a replay decodes every event of a partition,
  // and spreading a shared part into each record cost a third of a rebuild's time.
  const traced = message.headers && textHeaders(message.headers)
  if (traced) event.headers = traced
  return event
}

/** A header of a record as text, or undefined when it has none of that name. */
function headerText(message: KafkaMessage, name: string): string | undefined {
  const value = message.headers?.[name]
  return Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : undefined
}

function unreadable(topic: string, partition: number, message: KafkaMessage, problem: string): SerializationError {
  return new SerializationError(`record ${topic}[${partition}]@${message.offset} ${problem}; only esk writes event topics`, {
    topic,
    partition,
    offset: message.offset,
  })
}

/** The consumer that reads the topics of one stream for every read of this process. */
class StreamReader {
  readonly groupId: string
  readonly ready: Promise<void>
  /** Set when the consumer crashed for good: the next read builds a new one. */
  dead = false
  private readonly consumer: Consumer
  private readonly reads = new Map<string, ReadRange>()
  /** One read per partition at a time: the tail of each partition's queue of reads. */
  private readonly queues = new Map<string, Promise<void>>()

  constructor(
    kafka: Kafka,
    private readonly topics: string[],
    partitions: number,
    private readonly options: LogReaderOptions,
  ) {
    this.groupId = `${options.groupPrefix}replay.${randomUUID()}`
    this.consumer = kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      partitionAssigners: [everyPartition],
      // Reads end at the last stable offset, so a fetch never waits for new records: this only
      // sets the idle sleep.
      maxWaitTimeInMs: READER_IDLE_MS,
    })
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => this.onJoin())
    // Batches made only of transaction markers or aborted records never reach eachBatch.
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      const read = this.reads.get(key(payload.topic, payload.partition))
      // (firstOffset is null at run time for a batch with no record at all.)
      const first = payload.firstOffset as string | null
      if (read && first !== null && Number(first) <= read.next) {
        this.advance(read, Number(payload.lastOffset))
      }
    })
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      if (payload.restart) return
      this.dead = true
      for (const read of this.reads.values()) read.fail(payload.error)
    })
    this.ready = this.join(Math.min(64, partitions * topics.length))
    this.ready.catch((error: unknown) => {
      this.dead = true
      options.logger.warn('the log reader could not join its group', { group: this.groupId, error })
    })
  }

  private async join(concurrency: number): Promise<void> {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: this.topics, fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: concurrency,
      eachBatch: (payload) => this.onBatch(payload),
    })
  }

  /** Records `from` (inclusive) to `end` (exclusive) of a partition, in batches as fetched. */
  async *read(topic: string, partition: number, from: number, end: number): AsyncGenerator<KafkaMessage[]> {
    await this.ready
    const id = key(topic, partition)
    const previous = this.queues.get(id) ?? Promise.resolve()
    let done!: () => void
    const mine = previous.then(() => new Promise<void>((resolve) => (done = resolve)))
    this.queues.set(id, mine)
    await previous
    const read = new ReadRange(topic, partition, from, end)
    this.reads.set(id, read)
    try {
      this.consumer.seek({ topic, partition, offset: String(from) })
      this.consumer.resume([{ topic, partitions: [partition] }])
      yield* read.drain(this.options.stallTimeoutMs, `read of ${topic}[${partition}] from ${from} to ${end}`)
    } finally {
      this.reads.delete(id)
      read.cancel()
      this.pause(topic, partition)
      if (this.queues.get(id) === mine) this.queues.delete(id)
      done()
    }
  }

  async close(): Promise<void> {
    for (const read of this.reads.values()) {
      read.fail(new Error('the log reader was closed'))
      read.cancel()
    }
    await this.ready.catch(() => undefined)
    await this.consumer.disconnect().catch(() => undefined)
  }

  /** Each join (the first, or after a restart) starts with every partition paused again. */
  private onJoin(): void {
    this.consumer.pause(this.topics.map((topic) => ({ topic })))
    for (const read of this.reads.values()) {
      this.consumer.seek({ topic: read.topic, partition: read.partition, offset: String(read.next) })
      this.consumer.resume([{ topic: read.topic, partitions: [read.partition] }])
    }
  }

  private async onBatch({ batch, heartbeat }: EachBatchPayload): Promise<void> {
    const read = this.reads.get(key(batch.topic, batch.partition))
    // A batch fetched for an earlier read, or from past where this read stands, is not for it.
    if (!read || fetchedFrom(batch) > read.next) return
    const messages = batch.messages.filter((m) => {
      const offset = Number(m.offset)
      return offset >= read.next && offset < read.end
    })
    const taken = messages.length > 0 ? read.push(messages, heartbeat) : Promise.resolve()
    this.advance(read, Number(batch.lastOffset()))
    await taken
  }

  private advance(read: ReadRange, lastOffset: number): void {
    read.advance(lastOffset)
    if (read.complete) this.pause(read.topic, read.partition)
  }

  private pause(topic: string, partition: number): void {
    try {
      this.consumer.pause([{ topic, partitions: [partition] }])
    } catch {
      // Not running (crashed or stopped): nothing is fetched anyway.
    }
  }
}

/** The offset a batch was fetched from (kafkajs has it, but its types do not say so). */
function fetchedFrom(batch: EachBatchPayload['batch']): number {
  const fetched = (batch as { fetchedOffset?: unknown }).fetchedOffset
  return Number(fetched ?? batch.firstOffset() ?? batch.lastOffset())
}

function key(topic: string, partition: number): string {
  return `${topic}:${partition}`
}

/**
 * One read of one partition: where it stands, and the batches fetched for it. The consumer's
 * callback waits until its batch is taken, so memory stays bounded by one fetch.
 */
class ReadRange {
  /** The next offset this read needs. */
  next: number
  private items: Array<{ messages: KafkaMessage[]; taken: () => void }> = []
  private error: unknown
  private wake: (() => void) | undefined

  constructor(
    readonly topic: string,
    readonly partition: number,
    from: number,
    readonly end: number,
  ) {
    this.next = from
  }

  get complete(): boolean {
    return this.next >= this.end
  }

  /** The fetch covered offsets up to `lastOffset`. */
  advance(lastOffset: number): void {
    this.next = Math.max(this.next, Math.min(this.end, lastOffset + 1))
    if (this.complete) this.wake?.()
  }

  /** Queues a batch; resolves once the reader took it (or gave up), heartbeating meanwhile. */
  push(messages: KafkaMessage[], heartbeat: () => Promise<void>): Promise<void> {
    return new Promise((resolve) => {
      const timer = setInterval(() => void heartbeat().catch(() => undefined), READER_HEARTBEAT_MS)
      this.items.push({
        messages,
        taken: () => {
          clearInterval(timer)
          resolve()
        },
      })
      this.wake?.()
    })
  }

  fail(error: unknown): void {
    this.error = error ?? new Error('the log reader crashed')
    this.wake?.()
  }

  /** Releases every batch still waiting: the read is over. */
  cancel(): void {
    for (const item of this.items.splice(0)) item.taken()
  }

  async *drain(stallTimeoutMs: number, what: string): AsyncGenerator<KafkaMessage[]> {
    for (;;) {
      const item = this.items.shift()
      if (item) {
        item.taken()
        yield item.messages
        continue
      }
      if (this.error) throw this.error
      if (this.complete) return
      const stalled = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), stallTimeoutMs)
        this.wake = () => {
          clearTimeout(timer)
          resolve(false)
        }
      })
      this.wake = undefined
      if (stalled) throw new Error(`${what} made no progress for ${stallTimeoutMs} ms`)
    }
  }
}

/** Hands every partition of every subscribed topic to the group's first member. */
const everyPartition: PartitionAssigner = ({ cluster }) => ({
  name: 'EskEveryPartition',
  version: 1,
  async assign({ members, topics }) {
    const all = Object.fromEntries(topics.map((t) => [t, cluster.findTopicPartitionMetadata(t).map((p) => p.partitionId)]))
    return [...members]
      .sort((a, b) => (a.memberId < b.memberId ? -1 : 1))
      .map((member, i) => ({
        memberId: member.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: i === 0 ? all : {}, userData: Buffer.alloc(0) }),
      }))
  },
  protocol({ topics }) {
    return {
      name: 'EskEveryPartition',
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
    }
  },
})
