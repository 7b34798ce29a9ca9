import { randomUUID } from 'node:crypto'
import { UnavailableError } from '@esk/core'
import type { Admin, Kafka } from 'kafkajs'

/** A record as the CLI shows it: where it is, and its key, headers and value as text. */
export interface TopicRecord {
  partition: number
  offset: number
  /** When the broker appended it, ms since the epoch. */
  timestamp: number
  key: string | null
  headers: Record<string, string>
  value: string | null
}

/** Options of {@link readTopic}. */
export interface ReadTopicOptions {
  /** Only these partitions. Default all. */
  partitions?: number[]
  /** Prefix of the short-lived consumer group's id (deleted afterwards). */
  groupPrefix: string
  /** Longest the whole read may take, ms. Default 60000. */
  timeoutMs?: number
}

/**
 * Reads every committed record of a topic (or of some of its partitions), from the first offset to
 * the last stable offset as it is when the call starts, through a consumer group of its own that is
 * deleted afterwards. Meant for small topics (dead letters) and one-off reads.
 */
export async function readTopic(kafka: Kafka, admin: Admin, topic: string, options: ReadTopicOptions): Promise<TopicRecord[]> {
  const offsets = await admin.fetchTopicOffsets(topic)
  const wanted = new Map<number, { low: number; end: number; next: number }>()
  for (const o of offsets) {
    if (options.partitions && !options.partitions.includes(o.partition)) continue
    const low = Number(o.low)
    const end = Number(o.offset)
    if (end > low) wanted.set(o.partition, { low, end, next: low })
  }
  if (wanted.size === 0) return []
  const groupId = `${options.groupPrefix}cli.${randomUUID()}`
  const consumer = kafka.consumer({ groupId, readUncommitted: false, allowAutoTopicCreation: false, maxWaitTimeInMs: 100 })
  const records: TopicRecord[] = []
  const timeoutMs = options.timeoutMs ?? 60_000
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    let finish!: () => void
    const finished = new Promise<void>((resolve) => (finish = resolve))
    const advance = (partition: number, lastOffset: number): void => {
      const range = wanted.get(partition)
      if (range) range.next = Math.max(range.next, lastOffset + 1)
      if ([...wanted.values()].every((r) => r.next >= r.end)) finish()
    }
    // Batches made only of transaction markers never reach eachBatch, but do end a batch.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.topic === topic) advance(payload.partition, Number(payload.lastOffset))
    })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const range = wanted.get(batch.partition)
        if (!range) return
        for (const m of batch.messages) {
          const offset = Number(m.offset)
          if (offset < range.end) records.push(toRecord(batch.partition, m))
        }
        advance(batch.partition, Number(batch.lastOffset()))
      },
    })
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)))
    const result = await Promise.race([finished, late])
    clearTimeout(timer)
    if (result === 'late') {
      throw new UnavailableError(`reading ${topic} did not reach its end within ${timeoutMs} ms; check that the brokers answer`, { topic })
    }
  } finally {
    await consumer.disconnect().catch(() => undefined)
    await admin.deleteGroups([groupId]).catch(() => undefined)
  }
  // One record per offset (a rebalance may deliver a batch twice), in partition and offset order.
  const unique = new Map(records.map((r) => [`${r.partition}:${r.offset}`, r]))
  return [...unique.values()].sort((a, b) => a.partition - b.partition || a.offset - b.offset)
}

function toRecord(partition: number, m: { offset: string; timestamp: string; key: Buffer | null; value: Buffer | null; headers?: Record<string, unknown> }): TopicRecord {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(m.headers ?? {})) {
    if (Buffer.isBuffer(value)) headers[name] = value.toString('utf8')
    else if (typeof value === 'string') headers[name] = value
  }
  return {
    partition,
    offset: Number(m.offset),
    timestamp: Number(m.timestamp),
    key: m.key ? m.key.toString('utf8') : null,
    headers,
    value: m.value ? m.value.toString('utf8') : null,
  }
}
