/**
 * The hand-written pipeline esk is measured against, in two variants:
 *
 * - `tx` (the ceiling for exactly-once): per partition a transactional producer; per fetched batch
 *   it applies every command to the in-memory state, produces one event per accepted command,
 *   commits the command offsets with `sendOffsets` in the same transaction, then writes the state
 *   and publishes the replies in one pipelined Redis round trip.
 * - `plain`: the same with an idempotent producer and a plain offset commit after the send: what
 *   the work costs without exactly-once.
 *
 * A partition has one writer, so state is cached in process; a miss is read from Redis with one
 * HMGET per batch. No de-duplication, no snapshots versioned against the log, no handler
 * isolation: this is the least work that produces the same events, state and replies.
 */
import { Kafka, Partitioners, logLevel, type Consumer, type Producer } from 'kafkajs'
import { Redis } from 'ioredis'
import { KAFKA_DEFAULTS } from '@esk/kafka'
import { baselineNames, type BaselineCommand, type BaselineReply, type BaselineState } from './protocol.js'

/** How a baseline processor runs. */
export interface BaselineProcessorOptions {
  brokers: string[]
  redisUrl: string
  prefix: string
  partitions: number
  transactional: boolean
  /** Called after each batch is committed and replied to. */
  onBatch?: (commands: number) => void
}

/** Creates the command and event topics (no-op for those that exist). */
export async function provisionBaseline(brokers: string[], prefix: string, partitions: number): Promise<void> {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    const names = baselineNames(prefix)
    await admin.createTopics({
      waitForLeaders: true,
      topics: [names.commands, names.events].map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
    })
  } finally {
    await admin.disconnect()
  }
}

/** A running baseline processor: one consumer-group member, a producer per partition it owns. */
export class BaselineProcessor {
  private readonly names
  private readonly kafka: Kafka
  private readonly consumer: Consumer
  private readonly redis: Redis
  private readonly producers = new Map<number, Promise<Producer>>()
  private readonly states = new Map<number, Map<string, BaselineState>>()

  private constructor(private readonly options: BaselineProcessorOptions) {
    this.names = baselineNames(options.prefix)
    // kafkajs logs every retried CONCURRENT_TRANSACTIONS at ERROR; a real failure crashes the consumer (below).
    this.kafka = new Kafka({ brokers: options.brokers, logLevel: logLevel.NOTHING, clientId: 'baseline' })
    // The same fetch wait as esk's processors: an idle consumer's empty fetches cost CPU the other system's window shares.
    this.consumer = this.kafka.consumer({ groupId: this.names.group, maxWaitTimeInMs: KAFKA_DEFAULTS.maxWaitTimeMs, readUncommitted: false })
    this.redis = new Redis(options.redisUrl)
    // After any rebalance another member may have written: forget the cached state.
    this.consumer.on(this.consumer.events.GROUP_JOIN, () => this.states.clear())
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => {
      process.stderr.write(`baseline processor: consumer crashed (restart: ${payload.restart}): ${String(payload.error)}\n`)
    })
  }

  /** Joins the group and starts consuming. */
  static async start(options: BaselineProcessorOptions): Promise<BaselineProcessor> {
    const processor = new BaselineProcessor(options)
    await processor.consumer.connect()
    await processor.consumer.subscribe({ topic: processor.names.commands, fromBeginning: true })
    await processor.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.partitions,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        if (batch.messages.length === 0) return
        await processor.process(batch.partition, batch.messages)
        resolveOffset(batch.messages[batch.messages.length - 1]!.offset)
        await heartbeat()
      },
    })
    return processor
  }

  private producer(partition: number): Promise<Producer> {
    let producer = this.producers.get(partition)
    if (!producer) {
      const created = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
        ...(this.options.transactional && {
          transactionalId: `${this.names.group}-${partition}`,
          // As esk's writers: kafkajs's 300 ms first retry of CONCURRENT_TRANSACTIONS would dominate.
          retry: { initialRetryTime: 5, maxRetryTime: 2_000, retries: 12, multiplier: 2 },
        }),
      })
      producer = created.connect().then(() => created)
      this.producers.set(partition, producer)
    }
    return producer
  }

  private async process(partition: number, messages: Array<{ key: Buffer | null; value: Buffer | null; offset: string }>): Promise<void> {
    let states = this.states.get(partition)
    if (!states) this.states.set(partition, (states = new Map()))
    const commands = messages.map((m) => ({ id: m.key!.toString(), command: JSON.parse(m.value!.toString()) as BaselineCommand }))
    const stateKey = this.names.state(partition)
    const missing = [...new Set(commands.map((c) => c.id).filter((id) => !states.has(id)))]
    if (missing.length > 0) {
      const loaded = await this.redis.hmget(stateKey, ...missing)
      missing.forEach((id, i) => {
        const text = loaded[i]
        if (text) states.set(id, JSON.parse(text) as BaselineState)
      })
    }
    const events: Array<{ key: string; value: string; partition: number }> = []
    const replies: Array<[string, BaselineReply]> = []
    const changed = new Set<string>()
    for (const { id, command } of commands) {
      let state = states.get(id)
      let ok: boolean
      if (command.kind === 'create') {
        ok = state === undefined
        if (ok) {
          states.set(id, (state = { version: 1, balance: 0, deposits: 0 }))
          events.push({ key: id, partition, value: JSON.stringify({ type: 'Opened', version: 1, c: command.c, owner: 'bench' }) })
        }
      } else {
        ok = state !== undefined && command.amount >= 0
        if (ok && state) {
          state.version += 1
          state.balance += command.amount
          state.deposits += 1
          events.push({
            key: id,
            partition,
            value: JSON.stringify({ type: 'Deposited', version: state.version, c: command.c, amount: command.amount, note: command.note }),
          })
        }
      }
      if (ok) changed.add(id)
      replies.push([command.r, { c: command.c, ok, version: state?.version ?? 0 }])
    }
    const next = String(Number(messages[messages.length - 1]!.offset) + 1)
    const producer = await this.producer(partition)
    try {
      if (this.options.transactional) {
        const transaction = await producer.transaction()
        try {
          for (const chunk of chunks(events)) await transaction.send({ topic: this.names.events, messages: chunk, acks: -1 })
          await transaction.sendOffsets({
            consumerGroupId: this.names.group,
            topics: [{ topic: this.names.commands, partitions: [{ partition, offset: next }] }],
          })
          await transaction.commit()
        } catch (error) {
          await transaction.abort().catch(() => undefined)
          throw error
        }
      } else {
        for (const chunk of chunks(events)) await producer.send({ topic: this.names.events, messages: chunk, acks: -1 })
        await this.consumer.commitOffsets([{ topic: this.names.commands, partition, offset: next }])
      }
    } catch (error) {
      // The batch is fetched again; the cached state may hold its changes, so drop it.
      this.states.delete(partition)
      throw error
    }
    const pipeline = this.redis.pipeline()
    if (changed.size > 0) {
      const fields: string[] = []
      for (const id of changed) fields.push(id, JSON.stringify(states.get(id)))
      pipeline.hset(stateKey, ...fields)
    }
    for (const [address, reply] of replies) pipeline.publish(this.names.replies(address), JSON.stringify(reply))
    await pipeline.exec()
    this.options.onBatch?.(messages.length)
  }

  /** Leaves the group and closes every connection. */
  async close(): Promise<void> {
    await this.consumer.disconnect()
    for (const producer of this.producers.values()) await (await producer).disconnect().catch(() => undefined)
    this.redis.disconnect()
  }
}

/** Splits events into sends of at most about 512 KB, under the broker's 1 MB batch limit. */
function chunks<T extends { value: string }>(events: T[]): T[][] {
  const result: T[][] = []
  let current: T[] = []
  let bytes = 0
  for (const event of events) {
    if (current.length > 0 && bytes + event.value.length > 512 * 1024) {
      result.push(current)
      current = []
      bytes = 0
    }
    current.push(event)
    bytes += event.value.length
  }
  if (current.length > 0) result.push(current)
  return result
}
