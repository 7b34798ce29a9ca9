import { type Logger } from '@esk/core'
import {
  sleep,
  type EventFeed,
  type EventFeedHandle,
  type EventFeedHost,
  type EventFeedSpec,
  type StoredEvent,
  type StreamSpec,
} from '@esk/core/driver'
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs'
import { kafkaErrorType } from './errors.js'
import { streamNames, type ResolvedKafkaOptions } from './options.js'
import { decodeEvent } from './replay.js'

/** Protocol errors a heartbeat returns while the group rebalances: the batch in flight must end. */
const REBALANCING = new Set(['REBALANCE_IN_PROGRESS', 'NOT_COORDINATOR_FOR_GROUP', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID'])

/** An event record as a read model sees it: what the writer recorded, and when the broker stamped it. */
export function feedEvent(topic: string, partition: number, message: KafkaMessage): StoredEvent {
  const timestamp = Number(message.timestamp)
  return { ...decodeEvent(topic, partition, message), ...(Number.isFinite(timestamp) && timestamp >= 0 && { timestamp }) }
}

/** One partition a feed holds: its handle (opened by core, retried until it opens) and where it reads. */
class FeedLane {
  readonly lease = new AbortController()
  handle: EventFeedHandle | undefined
  /** The offset the next fetch must start at: the handle's position, then past each delivery. */
  expected = 0
  /** Fetches in a row that started elsewhere (the consumer was sent back there once already). */
  misses = 0
  private opening: Promise<void> | undefined
  private closing: Promise<void> = Promise.resolve()
  /** Resolves after the first attempt to open, whether it succeeded or not. */
  readonly tried: Promise<void>
  private attempted!: () => void

  constructor(
    private readonly feed: KafkaFeed,
    readonly stream: StreamSpec,
    readonly topic: string,
    readonly partition: number,
  ) {
    this.tried = new Promise((resolve) => (this.attempted = resolve))
  }

  /** Opens the handle, retrying with backoff while the partition is held; then points the consumer at it. */
  open(): Promise<void> {
    this.opening ??= (async () => {
      await this.closing
      for (let attempt = 0; !this.lease.signal.aborted; attempt++) {
        try {
          const handle = await this.feed.host.open({ stream: this.stream, partition: this.partition, signal: this.lease.signal })
          if (this.lease.signal.aborted) {
            await handle.close()
            return
          }
          this.handle = handle
          this.expected = handle.position
          this.misses = 0
          this.feed.seek(this, handle.position)
          return
        } catch (error) {
          if (this.lease.signal.aborted) return
          this.feed.host.reportError(error, { stream: this.stream.aggregate, partition: this.partition })
          this.attempted()
          await sleep(Math.min(100 * 2 ** attempt, 5_000), this.lease.signal)
        }
      }
    })().finally(() => {
      this.opening = undefined
      this.attempted()
    })
    return this.opening
  }

  /** Closes the handle and opens the partition again: it reads its stored position anew. */
  reopen(): Promise<void> {
    const handle = this.handle
    this.handle = undefined
    this.closing = (async () => {
      await this.closing
      await handle?.close()
    })()
    this.feed.pauseLane(this)
    return this.open()
  }

  /** Gives the partition up: waits for the delivery in flight, applies nothing after. */
  async close(): Promise<void> {
    this.lease.abort()
    await this.opening
    const handle = this.handle
    this.handle = undefined
    await this.closing
    await handle?.close()
  }
}

/**
 * A read model's feed on Kafka: a consumer group over the event topics of its streams. kafkajs has
 * no manual assignment, so a group used by one feed only (a global projection, a rebuild) receives
 * every partition, and a shared group splits them. Each partition starts at the position core's
 * handle gives: the consumer is pointed there on assignment, and a fetch that started anywhere
 * else (committed offsets, a reset after an offset out of range) is never applied. Offsets are
 * never committed to Kafka: the store's positions are the only truth.
 */
export class KafkaFeed implements EventFeed {
  private readonly consumer: Consumer
  private readonly lanes = new Map<string, FeedLane>()
  private readonly streams = new Map<string, StreamSpec>()
  private readonly groupId: string
  private readonly firstAssignment: Promise<void>
  private assigned!: () => void
  private stopped = false

  constructor(
    kafka: Kafka,
    private readonly admin: Admin,
    private readonly options: ResolvedKafkaOptions,
    private readonly spec: EventFeedSpec,
    readonly host: EventFeedHost,
    private readonly logger: Logger,
  ) {
    for (const stream of spec.streams) this.streams.set(streamNames(options.topicPrefix, stream.aggregate).events, stream)
    this.groupId = `${options.topicPrefix}${spec.group}`
    this.firstAssignment = new Promise((resolve) => (this.assigned = resolve))
    this.consumer = kafka.consumer({
      groupId: this.groupId,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      maxWaitTimeInMs: options.maxWaitTimeMs,
    })
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => this.reassign(payload.memberAssignment))
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      this.host.reportError(payload.error, { stream: spec.streams.map((s) => s.aggregate).join(',') })
    })
    // A fetch holding only transaction markers never reaches eachBatch; the position still moves past them.
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.batchSize !== 0 || payload.firstOffset === null) return
      const lane = this.lanes.get(key(payload.topic, payload.partition))
      const next = Number(payload.lastOffset) + 1
      if (!lane?.handle || Number(payload.firstOffset) !== lane.expected || next <= lane.expected) return
      lane.expected = next
      lane.handle.deliver([], next).catch((error: unknown) => this.failed(lane, error))
    })
  }

  /** Joins the group; resolves once the partitions of the first assignment have been opened (or tried). */
  async start(): Promise<void> {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [...this.streams.keys()], fromBeginning: true })
    const partitions = this.spec.streams.reduce((sum, s) => sum + s.partitions, 0)
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, Math.min(this.options.partitionsConsumedConcurrently, partitions)),
      eachBatch: (payload) => this.onBatch(payload),
    })
    await this.firstAssignment
  }

  async reopen(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((lane) => lane.reopen()))
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await this.consumer.disconnect().catch((error: unknown) => this.logger.warn('read model consumer disconnect failed', { error }))
    await Promise.all([...this.lanes.values()].map((lane) => lane.close()))
    this.lanes.clear()
    if (this.spec.ephemeral) await this.admin.deleteGroups([this.groupId]).catch(() => undefined)
  }

  /** Points the consumer at an offset of a lane's partition (applied at its next fetch) and lets it fetch. */
  seek(lane: FeedLane, offset: number): void {
    if (this.stopped || lane.lease.signal.aborted) return
    try {
      this.consumer.seek({ topic: lane.topic, partition: lane.partition, offset: String(offset) })
      this.consumer.resume([{ topic: lane.topic, partitions: [lane.partition] }])
    } catch (error) {
      this.host.reportError(error, { stream: lane.stream.aggregate, partition: lane.partition })
    }
  }

  /** Stops fetching a lane's partition until its handle is open again. */
  pauseLane(lane: FeedLane): void {
    if (!this.stopped) this.consumer.pause([{ topic: lane.topic, partitions: [lane.partition] }])
  }

  private reassign(assignment: Record<string, number[]>): void {
    const keep = new Set<string>()
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) keep.add(key(topic, partition))
    }
    for (const [k, lane] of this.lanes) {
      if (keep.has(k)) continue
      this.lanes.delete(k)
      void lane.close()
    }
    const opening: Promise<void>[] = []
    for (const [topic, partitions] of Object.entries(assignment)) {
      const stream = this.streams.get(topic)
      if (!stream) continue
      for (const partition of partitions) {
        const k = key(topic, partition)
        if (this.lanes.has(k)) continue
        const lane = new FeedLane(this, stream, topic, partition)
        this.lanes.set(k, lane)
        void lane.open()
        opening.push(lane.tried)
      }
    }
    void Promise.all(opening).then(() => this.assigned())
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (this.stopped || !isRunning() || isStale()) return
    const lane = this.lanes.get(key(batch.topic, batch.partition))
    if (!lane?.handle) {
      // Not open yet (or being reopened): it resumes the partition, at its own position, once open.
      this.consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }])
      return
    }
    const handle = lane.handle
    const fetched = Number((batch as unknown as { fetchedOffset?: string }).fetchedOffset)
    if (fetched !== lane.expected) {
      // Fetched from somewhere else: never applied. Once the consumer was sent back already, the
      // position itself may be gone from the log: the lane opens again and checks it.
      if (lane.misses++ > 0 && (await this.outOfRange(lane))) {
        await lane.reopen()
        return
      }
      this.seek(lane, lane.expected)
      return
    }
    lane.misses = 0
    let events: StoredEvent[]
    try {
      events = batch.messages.map((message) => feedEvent(batch.topic, batch.partition, message))
    } catch (error) {
      this.failed(lane, error)
      return
    }
    const next = Number(batch.lastOffset()) + 1
    try {
      await this.alive(handle.deliver(events, next), heartbeat, () => void lane.reopen())
    } catch (error) {
      if (REBALANCING.has(kafkaErrorType(error) ?? '')) throw error
      if (lane.handle === handle) this.failed(lane, error)
      return
    }
    if (lane.handle !== handle) return
    lane.expected = Math.max(lane.expected, next)
    resolveOffset(batch.lastOffset())
  }

  /** A delivery failed (fenced, store unreachable): report it and open the lane again. */
  private failed(lane: FeedLane, error: unknown): void {
    if (this.stopped || lane.lease.signal.aborted) return
    this.host.reportError(error, { stream: lane.stream.aggregate, partition: lane.partition })
    void lane.reopen()
  }

  private async outOfRange(lane: FeedLane): Promise<boolean> {
    const offsets = await this.admin.fetchTopicOffsets(lane.topic)
    const entry = offsets.find((o) => o.partition === lane.partition)
    return entry !== undefined && (lane.expected < Number(entry.low) || lane.expected > Number(entry.offset))
  }

  /**
   * Waits for a delivery while heartbeating. A lane can stay on a failing event for long; when the
   * group starts rebalancing meanwhile, the lane is closed (to be opened again where assigned) and
   * the rebalance error returned, so that this member rejoins at once.
   */
  private async alive<T>(work: Promise<T>, heartbeat: () => Promise<void>, abandon: () => void): Promise<T> {
    let rebalancing: unknown
    const timer = setInterval(() => {
      heartbeat().catch((error: unknown) => {
        if (rebalancing === undefined && REBALANCING.has(kafkaErrorType(error) ?? '')) {
          rebalancing = error
          abandon()
        }
      })
    }, 1_000)
    try {
      return await work
    } catch (error) {
      throw rebalancing ?? error
    } finally {
      clearInterval(timer)
    }
  }
}

function key(topic: string, partition: number): string {
  return `${topic}:${partition}`
}
