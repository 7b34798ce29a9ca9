import { UnavailableError } from '@esk/core'
import type { Producer } from 'kafkajs'
import { MAX_REQUEST_BYTES, fitting } from './requests.js'

interface Pending {
  topic: string
  partition: number
  key: string
  value: string
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

  constructor(
    private readonly producer: Producer,
    private readonly maxPerRequest: number,
    private readonly maxQueued: number,
  ) {}

  send(topic: string, partition: number, key: string, value: string): Promise<void> {
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
      this.queue.push({ topic, partition, key, value, resolve, reject })
      if (!this.flushing) void this.flush()
    })
  }

  private async flush(): Promise<void> {
    this.flushing = true
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
              messages: pending.map(({ partition, key, value }) => ({ partition, key, value })),
            })),
          })
          for (const p of batch) p.resolve()
        } catch (error) {
          for (const p of batch) p.reject(error)
        }
      }
    } finally {
      this.flushing = false
    }
  }
}
