import type { Producer } from 'kafkajs'

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
    private readonly maxRequestBytes: number,
  ) {}

  send(topic: string, partition: number, key: string, value: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ topic, partition, key, value, resolve, reject })
      if (!this.flushing) void this.flush()
    })
  }

  /** The next request's commands: by count and by bytes, so one request never exceeds the broker's limit. */
  private takeBatch(): Pending[] {
    let bytes = 0
    let count = 0
    while (count < this.queue.length && count < this.maxPerRequest) {
      const size = Buffer.byteLength(this.queue[count]!.value)
      if (count > 0 && bytes + size > this.maxRequestBytes) break
      bytes += size
      count += 1
    }
    return this.queue.splice(0, count)
  }

  private async flush(): Promise<void> {
    this.flushing = true
    try {
      while (this.queue.length > 0) {
        const batch = this.takeBatch()
        const byTopic = new Map<string, Pending[]>()
        for (const p of batch) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p])
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
