import { randomUUID } from 'node:crypto'
import { Kafka, logLevel, type Admin, type KafkaMessage } from 'kafkajs'

/**
 * The header esk writes on every event record: the JSON array `[type, version, commandId,
 * commandOffset]`, the aggregate id being the record's key. Read here by hand, not with esk's
 * decoder, so the checker does not trust the code it checks.
 */
export const EVENT_HEADER = 'esk-event'

/** Header names of event records written by earlier versions of esk, one per field. */
export const EventHeader = {
  type: 'esk-type',
  aggregateId: 'esk-aggregate-id',
  version: 'esk-version',
  commandId: 'esk-command-id',
  commandOffset: 'esk-command-offset',
} as const

/** An event record as read from the log, headers decoded but not trusted. */
export interface LogEvent {
  partition: number
  offset: number
  key: string | null
  /** Header values; undefined when the header is missing. */
  type?: string
  aggregateId?: string
  version?: number
  commandId?: string
  commandOffset?: number
  /** The record's value (the event's JSON payload). */
  value: string
}

/** A command record as read from the command log. */
export interface LogCommand {
  partition: number
  offset: number
  value: string
}

/** One topic read from offset 0 to its end: records per partition in offset order, and each partition's end offset. */
export interface TopicRead<T> {
  topic: string
  partitions: T[][]
  /** The last stable offset of each partition when the read started (the end of what was read). */
  ends: number[]
}

/** What the checker needs from Kafka. */
export interface LogView {
  events: TopicRead<LogEvent>
  commands: TopicRead<LogCommand>
}

/** Where to read and how long to try. */
export interface LogReadOptions {
  brokers: string[]
  eventsTopic: string
  commandsTopic: string
  /** Give up when a partition has not reached its end after this long, ms. Default 120000. */
  timeoutMs?: number
}

/**
 * Reads both topics of a stream from offset 0 with a plain kafkajs consumer of its own (a fresh
 * group id, read_committed, nothing committed), up to each partition's last stable offset as it
 * stands when the read starts.
 */
export async function readLog(options: LogReadOptions): Promise<LogView> {
  const kafka = new Kafka({ brokers: options.brokers, clientId: 'esk-faults-checker', logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  try {
    const timeoutMs = options.timeoutMs ?? 120_000
    const events = await readTopic(kafka, admin, options.eventsTopic, timeoutMs, decodeEventRecord)
    const commands = await readTopic(kafka, admin, options.commandsTopic, timeoutMs, (partition, m) => ({
      partition,
      offset: Number(m.offset),
      value: m.value?.toString('utf8') ?? '',
    }))
    return { events, commands }
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

async function readTopic<T>(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  timeoutMs: number,
  decode: (partition: number, message: KafkaMessage) => T,
): Promise<TopicRead<T>> {
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition)
  const ends = offsets.map((o) => Number(o.offset))
  const lows = offsets.map((o) => Number(o.low))
  const partitions: T[][] = ends.map(() => [])
  // Next offset to read per partition; a partition is done once it reaches its end.
  const next = lows.slice()
  const seen = new Set<string>()
  const done = () => next.every((n, p) => n >= ends[p]!)
  if (done()) return { topic, partitions, ends }
  const groupId = `esk-faults-checker.${randomUUID()}`
  const consumer = kafka.consumer({ groupId, readUncommitted: false, maxWaitTimeInMs: 200, allowAutoTopicCreation: false })
  let finished!: () => void
  let failed!: (error: Error) => void
  const finishedPromise = new Promise<void>((resolve, reject) => {
    finished = resolve
    failed = reject
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => failed(payload.error))
  // A fetch that held only transaction markers or aborted records never reaches eachBatch, but
  // still reports its last offset here; so do the others, after eachBatch has run.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const last = Number(payload.lastOffset)
    if (payload.topic === topic && Number.isSafeInteger(last)) next[payload.partition] = Math.max(next[payload.partition]!, last + 1)
    if (done()) finished()
  })
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const p = batch.partition
        for (const message of batch.messages) {
          const offset = Number(message.offset)
          if (offset >= next[p]! && offset < ends[p]! && !seen.has(`${p}:${offset}`)) {
            seen.add(`${p}:${offset}`)
            partitions[p]!.push(decode(p, message))
          }
        }
      },
    })
    const timer = setTimeout(() => {
      const behind = next.map((n, p) => (n < ends[p]! ? `${p}: ${n}/${ends[p]}` : '')).filter(Boolean)
      failed(new Error(`reading ${topic} from 0 did not reach the end within ${timeoutMs} ms (partition: next/end ${behind.join(', ')})`))
    }, timeoutMs)
    try {
      await finishedPromise
    } finally {
      clearTimeout(timer)
    }
  } finally {
    await consumer.disconnect().catch(() => undefined)
    await admin.deleteGroups([groupId]).catch(() => undefined)
  }
  for (const list of partitions) list.sort((a, b) => (a as { offset: number }).offset - (b as { offset: number }).offset)
  return { topic, partitions, ends }
}

function decodeEventRecord(partition: number, m: KafkaMessage): LogEvent {
  const header = (name: string): string | undefined => {
    const v = m.headers?.[name]
    const one = Array.isArray(v) ? v[0] : v
    return Buffer.isBuffer(one) ? one.toString('utf8') : typeof one === 'string' ? one : undefined
  }
  const integer = (v: unknown): number | undefined => (Number.isSafeInteger(v) ? (v as number) : undefined)
  const num = (name: string): number | undefined => {
    const text = header(name)
    return integer(text === undefined ? NaN : Number(text))
  }
  const string = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined)
  const key = m.key ? m.key.toString('utf8') : null
  const common = { partition, offset: Number(m.offset), key, value: m.value?.toString('utf8') ?? '' }
  const meta = header(EVENT_HEADER)
  if (meta === undefined) {
    return {
      ...common,
      type: header(EventHeader.type),
      aggregateId: header(EventHeader.aggregateId),
      version: num(EventHeader.version),
      commandId: header(EventHeader.commandId),
      commandOffset: num(EventHeader.commandOffset),
    }
  }
  let fields: unknown
  try {
    fields = JSON.parse(meta)
  } catch {
    fields = undefined
  }
  const [type, version, commandId, commandOffset] = Array.isArray(fields) ? (fields as unknown[]) : []
  return {
    ...common,
    type: string(type),
    aggregateId: key ?? undefined,
    version: integer(version),
    commandId: string(commandId),
    commandOffset: integer(commandOffset),
  }
}
