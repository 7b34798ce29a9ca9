import { UnavailableError } from '@esk/core'
import { type RecordHeaders } from '@esk/core/driver'
import type { Producer } from 'kafkajs'
import { kafkaErrorType } from './errors.js'
import { MAX_REQUEST_BYTES, fitting } from './requests.js'

/** Errors after which an idempotent producer never succeeds again: its sequence state is lost. */
const BROKEN_PRODUCER_TYPES = new Set(['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH'])

/**
 * True when a send failed because the broker no longer accepts this producer's sequence numbers:
 * after a partition leader fails over, kafkajs's idempotent producer can get OUT_OF_ORDER_SEQUENCE_NUMBER
 * on every later request, and it never resets its producer id by itself.
 */
export function isBrokenProducer(error: unknown): boolean {
  const type = kafkaErrorType(error)
  if (type && BROKEN_PRODUCER_TYPES.has(type)) return true
  return /out of order sequence|unknown producer id/i.test(String((error as Error | undefined)?.message ?? ''))
}

interface Pending {
  topic: string
  partition: number
  key: string
  value: string
  headers: RecordHeaders | undefined
  resolve: () => void
  reject: (error: unknown) => void
}

/**
 * Sends commands with one produce request in flight at a time (the producer is idempotent, which
 * keeps order), putting every command that arrives meanwhile into the next request. Under load a
 * request carries many commands; alone, a command leaves at once. kafkajs sends each `send()` as
 * a request of its own, so without this every command would wait for the one before it.
 */
export class CommandSender {
  private queue: Pending[] = []
  private flushing = false

  /**
   * `renew` replaces the producer when its idempotence state is broken (see
   * {@link isBrokenProducer}); it returns the new, connected producer.
   */
  constructor(
    private producer: Producer,
    private readonly maxPerRequest: number,
    private readonly maxQueued: number,
    private readonly renew?: (broken: Producer) => Promise<Producer>,
  ) {}

  send(topic: string, partition: number, key: string, value: string, headers?: RecordHeaders): Promise<void> {
    // During an outage every caller would otherwise queue here until it times out.
    if (this.queue.length >= this.maxQueued) {
      return Promise.reject(
        new UnavailableError(
          `${this.queue.length} commands are already waiting to be sent to ${topic}; the brokers are not ` +
            `keeping up or are unreachable (maxQueuedCommands ${this.maxQueued}): retry later`,
          { topic, queued: this.queue.length },
        ),
      )
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, partition, key, value, headers, resolve, reject })
      if (!this.flushing) {
        // The first request waits for the rest of this turn of the event loop: replies reach a
        // client a batch at a time, and the calls they end send their next commands in the same
        // turn. Sent at once, the first of them would go alone and the others one ack later.
        this.flushing = true
        setImmediate(this.flushQueued)
      }
    })
  }

  private readonly flushQueued = (): void => void this.flush()

  /** Sends the queue until it is empty; `send` set `flushing` when it scheduled this. */
  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // By count and by bytes, so one request never exceeds the broker's limit.
        const count = fitting(this.queue, (p) => Buffer.byteLength(p.value), MAX_REQUEST_BYTES, this.maxPerRequest)
        const batch = this.queue.splice(0, count)
        const byTopic = new Map<string, Pending[]>()
        for (const p of batch) {
          const list = byTopic.get(p.topic)
          if (list) list.push(p)
          else byTopic.set(p.topic, [p])
        }
        try {
          await this.producer.sendBatch({
            acks: -1,
            topicMessages: [...byTopic].map(([topic, pending]) => ({
              topic,
              messages: pending.map(({ partition, key, value, headers }) => (headers ? { partition, key, value, headers } : { partition, key, value })),
            })),
          })
          for (const p of batch) p.resolve()
        } catch (error) {
          for (const p of batch) p.reject(error)
          // Its callers retry with the same command ids (never applied twice); the next requests
          // need a producer whose sequence numbers the brokers accept again.
          if (this.renew && isBrokenProducer(error)) this.producer = await this.renew(this.producer).catch(() => this.producer)
        }
      }
    } finally {
      this.flushing = false
    }
  }
}
