import { randomUUID } from 'node:crypto'
import { SerializationError, sleep, type StoredEvent } from '@esk/core'
import type { Admin, Kafka, KafkaMessage, PartitionAssigner } from 'kafkajs'
import { AssignerProtocol } from './kafkajs.js'
import { EventHeaders } from './writer.js'

/** Options of one replay. */
export interface ReplayOptions {
  topic: string
  partition: number
  from: number
  /** Read at least up to this offset (exclusive), waiting for the last stable offset to reach it. */
  until: number
  /** Prefix of the throwaway consumer group's id. */
  groupPrefix: string
  /** Give up when no batch arrives for this long, ms. */
  stallTimeoutMs: number
}

/**
 * Reads a partition of an event topic from `from` up to its last stable offset as it is when the
 * replay starts, in batches, with read_committed isolation. The end is the LSO, not the high
 * watermark: transaction markers sit between the last event and the high watermark, and a
 * reader waiting for an event there would wait forever. kafkajs has no manual assignment, so the
 * replay joins a group of its own whose assigner hands it just this partition; the group is
 * deleted afterwards.
 */
export async function* replayPartition(kafka: Kafka, admin: Admin, options: ReplayOptions): AsyncGenerator<StoredEvent[]> {
  const { topic, partition, from } = options
  const { end, low } = await stableEnd(admin, options)
  if (from >= end) return
  if (low > from) {
    throw new SerializationError(
      `events ${from}..${low - 1} of ${topic}[${partition}] were deleted; the event topic must keep every event ` +
        `(retention.ms=-1): restore it, or rebuild from a complete copy`,
      { topic, partition, from, low },
    )
  }

  const groupId = `${options.groupPrefix}replay.${randomUUID()}`
  const consumer = kafka.consumer({
    groupId,
    readUncommitted: false,
    allowAutoTopicCreation: false,
    partitionAssigners: [onlyPartition(topic, partition)],
    maxWaitTimeInMs: 100,
  })
  const queue = new BatchQueue()
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    if (payload.partition === partition && Number(payload.lastOffset) >= end - 1) queue.finish()
  })
  consumer.on(consumer.events.CRASH, ({ payload }) => queue.fail(payload.error))
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const events: StoredEvent[] = []
        for (const message of batch.messages) {
          const offset = Number(message.offset)
          if (offset >= from && offset < end) events.push(decodeEvent(topic, partition, message))
        }
        if (events.length > 0) await queue.push(events)
      },
    })
    consumer.seek({ topic, partition, offset: String(from) })
    yield* queue.drain(options.stallTimeoutMs, `replay of ${topic}[${partition}] from ${from} to ${end}`)
  } finally {
    await consumer.disconnect().catch(() => undefined)
    await admin.deleteGroups([groupId]).catch(() => undefined)
  }
}

/**
 * The partition's last stable offset and low watermark. A commit returns before the coordinator
 * has written its markers, and only then does the LSO move past the transaction: when the caller
 * knows of offsets up to `until`, wait (bounded) until the LSO covers them.
 */
async function stableEnd(admin: Admin, options: ReplayOptions): Promise<{ end: number; low: number }> {
  const deadline = Date.now() + options.stallTimeoutMs
  for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
    const entry = (await admin.fetchTopicOffsets(options.topic)).find((o) => o.partition === options.partition)
    if (!entry) throw new Error(`topic ${options.topic} has no partition ${options.partition}`)
    const end = Number(entry.offset)
    if (end >= options.until) return { end, low: Number(entry.low) }
    if (Date.now() > deadline) {
      throw new Error(
        `${options.topic}[${options.partition}] shows committed events only up to ${end}, not ${options.until}, ` +
          `after ${options.stallTimeoutMs} ms: the transaction coordinator is not completing transactions`,
      )
    }
    await sleep(pause)
  }
}

/** Decodes an event record written by {@link TransactionalWriter}. */
export function decodeEvent(topic: string, partition: number, message: KafkaMessage): StoredEvent {
  const header = (name: string): string => {
    const value = message.headers?.[name]
    const text = Buffer.isBuffer(value) ? value.toString('utf8') : typeof value === 'string' ? value : undefined
    if (text === undefined) {
      throw new SerializationError(
        `record ${topic}[${partition}]@${message.offset} has no ${name} header; only esk writes event topics`,
        { topic, partition, offset: message.offset },
      )
    }
    return text
  }
  return {
    offset: Number(message.offset),
    type: header(EventHeaders.type),
    aggregateId: header(EventHeaders.aggregateId),
    version: Number(header(EventHeaders.version)),
    commandId: header(EventHeaders.commandId),
    commandPosition: Number(header(EventHeaders.commandOffset)),
    payload: message.value?.toString('utf8') ?? '',
  }
}

function onlyPartition(topic: string, partition: number): PartitionAssigner {
  return () => ({
    name: 'EskSinglePartition',
    version: 1,
    async assign({ members }) {
      return members.map((member, i) => ({
        memberId: member.memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 1,
          assignment: i === 0 ? { [topic]: [partition] } : {},
          userData: Buffer.alloc(0),
        }),
      }))
    },
    protocol({ topics }) {
      return {
        name: 'EskSinglePartition',
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
      }
    },
  })
}

/**
 * Hands batches from the consumer's callback to the async iterator, one at a time: the
 * callback waits until its batch is taken, so memory stays bounded by one fetch.
 */
class BatchQueue {
  private items: Array<{ events: StoredEvent[]; taken: () => void }> = []
  private done = false
  private error: unknown
  private wake: (() => void) | undefined

  push(events: StoredEvent[]): Promise<void> {
    return new Promise((taken) => {
      this.items.push({ events, taken })
      this.signal()
    })
  }

  finish(): void {
    this.done = true
    this.signal()
  }

  fail(error: unknown): void {
    this.error = error ?? new Error('replay consumer crashed')
    this.signal()
  }

  async *drain(stallTimeoutMs: number, what: string): AsyncGenerator<StoredEvent[]> {
    for (;;) {
      const item = this.items.shift()
      if (item) {
        item.taken()
        yield item.events
        continue
      }
      if (this.error) throw this.error
      if (this.done) return
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

  private signal(): void {
    this.wake?.()
  }
}
