/**
 * The baselines' client: sends commands to the aggregate's partition (esk's `partitionFor`) with
 * an idempotent producer, several per produce request while one is in flight (as esk's client
 * does), and waits for each reply on its own Redis channel.
 */
import { randomUUID } from 'node:crypto'
import { partitionFor } from '@esk/core/driver'
import { Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs'
import { Redis } from 'ioredis'
import { baselineNames, type BaselineCommand, type BaselineReply, type BaselineState } from './protocol.js'

/** Where a baseline client sends and listens. */
export interface BaselineClientOptions {
  brokers: string[]
  redisUrl: string
  prefix: string
  partitions: number
  /** A call not answered by then rejects. */
  timeoutMs: number
}

const MAX_REQUEST_BYTES = 512 * 1024

interface Pending {
  resolve: (reply: BaselineReply) => void
  reject: (error: Error) => void
  sentAt: number
}

/** One client process's connection to a baseline pipeline. */
export class BaselineClient {
  private readonly names
  private readonly address = randomUUID()
  private readonly pending = new Map<string, Pending>()
  private queue: Array<{ message: Message & { partition: number }; fail: (error: Error) => void }> = []
  private sending = false
  private readonly sweeper: ReturnType<typeof setInterval>

  private constructor(
    private readonly options: BaselineClientOptions,
    private readonly producer: Producer,
    private readonly redis: Redis,
    private readonly subscriber: Redis,
  ) {
    this.names = baselineNames(options.prefix)
    subscriber.on('message', (_channel: string, text: string) => {
      const reply = JSON.parse(text) as BaselineReply
      const waiter = this.pending.get(reply.c)
      if (!waiter) return
      this.pending.delete(reply.c)
      waiter.resolve(reply)
    })
    // One timer for every call, not one each.
    this.sweeper = setInterval(() => {
      const limit = performance.now() - options.timeoutMs
      for (const [id, waiter] of this.pending) {
        if (waiter.sentAt >= limit) continue
        this.pending.delete(id)
        waiter.reject(new Error(`no reply within ${options.timeoutMs} ms`))
      }
    }, 1_000)
  }

  /** Connects the producer and subscribes to this client's reply channel. */
  static async open(options: BaselineClientOptions): Promise<BaselineClient> {
    const kafka = new Kafka({ brokers: options.brokers, logLevel: logLevel.ERROR, clientId: 'baseline-client' })
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
    await producer.connect()
    const redis = new Redis(options.redisUrl)
    const subscriber = new Redis(options.redisUrl)
    const client = new BaselineClient(options, producer, redis, subscriber)
    await subscriber.subscribe(client.names.replies(client.address))
    return client
  }

  /** Sends a command and resolves with its reply (refusals resolve with `ok: false`). */
  call(id: string, kind: BaselineCommand['kind'], amount = 0, note = ''): Promise<BaselineReply> {
    const command: BaselineCommand = { c: randomUUID(), kind, amount, note, r: this.address }
    return new Promise((resolve, reject) => {
      this.pending.set(command.c, { resolve, reject, sentAt: performance.now() })
      const fail = (error: Error): void => {
        if (this.pending.delete(command.c)) reject(error)
      }
      this.queue.push({ message: { key: id, value: JSON.stringify(command), partition: partitionFor(id, this.options.partitions) }, fail })
      if (!this.sending) {
        // Like esk's client: the first request waits for the commands sent in the same turn.
        this.sending = true
        setImmediate(() => void this.flush())
      }
    })
  }

  /** Reads an aggregate's state from Redis. */
  async find(id: string): Promise<BaselineState | undefined> {
    const text = await this.redis.hget(this.names.state(partitionFor(id, this.options.partitions)), id)
    return text ? (JSON.parse(text) as BaselineState) : undefined
  }

  private async flush(): Promise<void> {
    this.sending = true
    while (this.queue.length > 0) {
      // Under the broker's default 1 MB per partition batch, whatever the command size.
      let bytes = 0
      let count = 0
      while (count < this.queue.length && (count === 0 || bytes < MAX_REQUEST_BYTES)) {
        bytes += (this.queue[count]!.message.value as string).length
        count += 1
      }
      const batch = this.queue.splice(0, count)
      try {
        await this.producer.send({ topic: this.names.commands, acks: -1, messages: batch.map((b) => b.message) })
      } catch (error) {
        for (const b of batch) b.fail(error as Error)
      }
    }
    this.sending = false
  }

  /** Rejects pending calls and closes every connection. */
  async close(): Promise<void> {
    clearInterval(this.sweeper)
    for (const waiter of this.pending.values()) waiter.reject(new Error('client closed'))
    this.pending.clear()
    await this.producer.disconnect()
    this.redis.disconnect()
    this.subscriber.disconnect()
  }
}
