import {
  ErrorCode,
  hasCode,
  sleep,
  type CommandRecord,
  type Logger,
  type PartitionHandle,
  type PartitionHost,
  type StreamSpec,
} from '@esk/core'
import type { Consumer, EachBatchPayload, Kafka } from 'kafkajs'
import { streamNames, type ResolvedKafkaOptions, type StreamNames } from './options.js'
import { TransactionalWriter } from './writer.js'

/** One command partition this process owns: its writer, its core handle, and its lifetime. */
class OwnedPartition {
  readonly abort = new AbortController()
  /** Resolves with the handle once fenced and recovered; retries until then or until revoked. */
  readonly ready: Promise<PartitionHandle | undefined>
  private writer: TransactionalWriter | undefined
  private handle: PartitionHandle | undefined

  constructor(
    private readonly kafka: Kafka,
    private readonly options: ResolvedKafkaOptions,
    private readonly stream: StreamSpec,
    private readonly names: StreamNames,
    readonly partition: number,
    private readonly host: PartitionHost,
  ) {
    this.ready = this.open()
  }

  private async open(): Promise<PartitionHandle | undefined> {
    for (let attempt = 0; !this.abort.signal.aborted; attempt++) {
      try {
        this.writer = await TransactionalWriter.open(this.kafka, this.options, this.names, this.partition)
        if (this.abort.signal.aborted) break
        this.handle = await this.host.open({
          stream: this.stream,
          partition: this.partition,
          writer: this.writer,
          signal: this.abort.signal,
        })
        return this.handle
      } catch (error) {
        await this.writer?.close()
        this.writer = undefined
        if (this.abort.signal.aborted) break
        this.host.reportError(error, { stream: this.stream.aggregate, partition: this.partition })
        await sleep(Math.min(100 * 2 ** attempt, 5_000), this.abort.signal)
      }
    }
    return undefined
  }

  /** Stops the partition: waits for the batch in flight, then drops the writer. */
  async close(): Promise<void> {
    this.abort.abort()
    const handle = await this.ready
    await handle?.close()
    await this.writer?.close()
  }
}

/**
 * The processor of one aggregate type: a consumer group on its command topic. Each assigned
 * partition gets its own transactional writer (fencing any previous owner), is recovered by core,
 * and then receives command batches in log order.
 */
export class StreamProcessor {
  private readonly names: StreamNames
  private readonly consumer: Consumer
  private readonly owned = new Map<number, OwnedPartition>()
  private firstAssignment: Promise<void>
  private assigned!: () => void
  private stopped = false

  constructor(
    private readonly kafka: Kafka,
    private readonly options: ResolvedKafkaOptions,
    private readonly stream: StreamSpec,
    private readonly host: PartitionHost,
    private readonly logger: Logger,
  ) {
    this.names = streamNames(options.topicPrefix, stream.aggregate)
    this.firstAssignment = new Promise((resolve) => (this.assigned = resolve))
    this.consumer = kafka.consumer({
      groupId: this.names.group,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      maxWaitTimeInMs: options.maxWaitTimeMs,
    })
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      this.reassign(payload.memberAssignment[this.names.commands] ?? [])
    })
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      this.host.reportError(payload.error, { stream: this.stream.aggregate })
    })
  }

  /** Joins the group and resolves once the first assignment has been recovered. */
  async start(): Promise<void> {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.names.commands], fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.min(this.options.partitionsConsumedConcurrently, this.stream.partitions),
      eachBatch: (payload) => this.onBatch(payload),
    })
    await this.firstAssignment
  }

  /** Leaves the group (kafkajs waits for the batch in flight), then closes every partition. */
  async stop(): Promise<void> {
    this.stopped = true
    await this.consumer.disconnect().catch((error: unknown) => this.logger.warn('consumer disconnect failed', { error }))
    await Promise.all([...this.owned.values()].map((p) => p.close()))
    this.owned.clear()
  }

  private reassign(partitions: number[]): void {
    const keep = new Set(partitions)
    for (const [partition, owned] of this.owned) {
      if (!keep.has(partition)) {
        this.owned.delete(partition)
        void owned.close()
      }
    }
    for (const partition of partitions) {
      if (!this.owned.has(partition)) this.own(partition)
    }
    // A partition paused after a fence is ours again if the group says so.
    if (partitions.length > 0) this.consumer.resume([{ topic: this.names.commands, partitions }])
    const readiness = [...this.owned.values()].map((p) => p.ready)
    void Promise.all(readiness).then(() => this.assigned())
  }

  private own(partition: number): OwnedPartition {
    const owned = new OwnedPartition(this.kafka, this.options, this.stream, this.names, partition, this.host)
    this.owned.set(partition, owned)
    return owned
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (this.stopped) return
    const owned = this.owned.get(batch.partition) ?? this.own(batch.partition)
    const handle = await keepAlive(owned.ready, heartbeat)
    if (!handle) return
    const max = this.options.maxBatchSize
    for (let start = 0; start < batch.messages.length; start += max) {
      if (!isRunning() || isStale() || owned.abort.signal.aborted) return
      const chunk = batch.messages.slice(start, start + max)
      const records: CommandRecord[] = chunk.map((m) => ({
        position: Number(m.offset),
        value: m.value?.toString('utf8') ?? '',
      }))
      try {
        await handle.process(records)
      } catch (error) {
        await this.recoverFrom(owned, error, records[0]!.position)
        return
      }
      resolveOffset(chunk[chunk.length - 1]!.offset)
      await heartbeat()
    }
  }

  /**
   * After a failed batch: when fenced, another process owns the partition and this one lets go
   * (the group will tell it so on the next rebalance). Otherwise the transaction's fate is
   * unknown: reopen the partition, which fences this writer's own open transaction and replays
   * whatever did commit, then fetch again from the first command of the batch; commands whose
   * events are in the log are skipped by position.
   */
  private async recoverFrom(owned: OwnedPartition, error: unknown, firstPosition: number): Promise<void> {
    this.host.reportError(error, { stream: this.stream.aggregate, partition: owned.partition })
    if (this.owned.get(owned.partition) === owned) this.owned.delete(owned.partition)
    await owned.close()
    if (hasCode(error, ErrorCode.Fenced) || this.stopped) {
      this.consumer.pause([{ topic: this.names.commands, partitions: [owned.partition] }])
      return
    }
    this.own(owned.partition)
    this.consumer.seek({ topic: this.names.commands, partition: owned.partition, offset: String(firstPosition) })
  }
}

/** Waits for a promise while heartbeating, so a long recovery does not cost the group membership. */
async function keepAlive<T>(promise: Promise<T>, heartbeat: () => Promise<void>): Promise<T> {
  const timer = setInterval(() => void heartbeat().catch(() => undefined), 1_000)
  try {
    return await promise
  } finally {
    clearInterval(timer)
  }
}
