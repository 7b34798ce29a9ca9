import { randomUUID } from 'node:crypto'
import {
  laneOf,
  sleep,
  type EventFeed,
  type EventFeedHandle,
  type EventFeedHost,
  type EventFeedSpec,
  type StreamSpec,
} from '@esk/core/driver'
import type { MemoryBackend, MemoryPartitionLog } from './backend.js'

/**
 * The members of one read model's consumer group on a backend. Partitions are dealt round-robin
 * to the members that read their stream, and dealt again whenever one joins or leaves, as a
 * Kafka group rebalances. A group with one member gives it every partition.
 */
export class MemoryFeedGroup {
  private readonly members: MemoryFeed[] = []

  join(feed: MemoryFeed): void {
    this.members.push(feed)
    this.rebalance()
  }

  leave(feed: MemoryFeed): void {
    const i = this.members.indexOf(feed)
    if (i >= 0) this.members.splice(i, 1)
    this.rebalance()
  }

  get size(): number {
    return this.members.length
  }

  private rebalance(): void {
    const lanes = new Map<string, Array<{ stream: StreamSpec; partition: number }>>()
    for (const member of this.members) lanes.set(member.id, [])
    const streams = new Map<string, StreamSpec>()
    for (const member of this.members) for (const s of member.streams) streams.set(s.aggregate, s)
    for (const stream of [...streams.values()].sort((a, b) => a.aggregate.localeCompare(b.aggregate))) {
      const readers = this.members.filter((m) => m.streams.some((s) => s.aggregate === stream.aggregate))
      for (let partition = 0; partition < stream.partitions; partition++) {
        lanes.get(readers[partition % readers.length]!.id)!.push({ stream, partition })
      }
    }
    for (const member of this.members) member.assign(lanes.get(member.id)!)
  }
}

/** One partition a feed holds: opens its handle, delivers its events in order, reopens after a failure. */
class PartitionRun {
  readonly lease = new AbortController()
  readonly done: Promise<void>
  readonly firstAttempt: Promise<void>
  private attempted!: () => void
  private reopening: AbortController | undefined

  constructor(
    private readonly backend: MemoryBackend,
    readonly stream: StreamSpec,
    readonly partition: number,
    private readonly host: EventFeedHost,
    private readonly batchSize: number,
  ) {
    this.firstAttempt = new Promise((resolve) => (this.attempted = resolve))
    this.done = this.run().finally(() => this.attempted())
  }

  /** Closes the handle and opens it again (it reads its stored position anew). */
  reopen(): void {
    this.reopening?.abort()
  }

  private get signal(): AbortSignal {
    return this.lease.signal
  }

  private async run(): Promise<void> {
    const log = this.backend.log(this.stream.aggregate, this.partition)
    const where = { stream: this.stream.aggregate, partition: this.partition }
    for (let failures = 0; !this.signal.aborted; ) {
      let handle: EventFeedHandle | undefined
      try {
        handle = await this.host.open({ stream: this.stream, partition: this.partition, signal: this.signal })
      } catch (error) {
        if (!this.signal.aborted) this.host.reportError(error, where)
        this.attempted()
        await sleep(Math.min(50 * 2 ** failures++, 5_000), this.signal)
        continue
      }
      this.attempted()
      const reopening = (this.reopening = new AbortController())
      try {
        await this.feed(log, handle, reopening.signal)
        failures = 0
      } catch (error) {
        if (!this.signal.aborted) this.host.reportError(error, where)
        await handle.close()
        handle = undefined
        await sleep(Math.min(10 * 2 ** failures++, 1_000), this.signal)
      } finally {
        await handle?.close()
      }
    }
  }

  /** Delivers events from the handle's position until the lease ends or a reopen is asked for. */
  private async feed(log: MemoryPartitionLog, handle: EventFeedHandle, reopening: AbortSignal): Promise<void> {
    let next = handle.position
    while (!this.signal.aborted && !reopening.aborted) {
      if (next < log.start) {
        // Deleted under the lane (as Kafka reports an offset out of range): open again, which checks the position.
        throw new Error(`events of ${laneOf(this.stream.aggregate, this.partition)} below ${log.start} were deleted under a reader at ${next}`)
      }
      if (next >= log.events.length) {
        await new Promise<void>((resolve) => {
          const wake = (): void => {
            this.signal.removeEventListener('abort', wake)
            reopening.removeEventListener('abort', wake)
            resolve()
          }
          log.eventWaiting.push(wake)
          this.signal.addEventListener('abort', wake, { once: true })
          reopening.addEventListener('abort', wake, { once: true })
        })
        continue
      }
      const end = Math.min(next + this.batchSize, log.events.length)
      await handle.deliver(
        log.events.slice(next, end).map((e) => ({ ...e })),
        end,
      )
      next = end
    }
  }
}

/** A read model's feed on the embedded driver: a member of its group, reading the partitions dealt to it. */
export class MemoryFeed implements EventFeed {
  readonly id = randomUUID()
  private readonly runs = new Map<string, PartitionRun>()
  private readonly closing: Promise<void>[] = []
  private stopped = false

  constructor(
    private readonly backend: MemoryBackend,
    private readonly spec: EventFeedSpec,
    private readonly host: EventFeedHost,
    private readonly batchSize: number,
  ) {}

  get streams(): readonly StreamSpec[] {
    return this.spec.streams
  }

  /** Joins the group; resolves once each partition dealt to this feed has been opened (or tried). */
  async start(): Promise<void> {
    let group = this.backend.feedGroups.get(this.spec.group)
    if (!group) this.backend.feedGroups.set(this.spec.group, (group = new MemoryFeedGroup()))
    group.join(this)
    await Promise.all([...this.runs.values()].map((r) => r.firstAttempt))
  }

  /** Takes the partitions the group deals to this member now; gives up the others. */
  assign(lanes: Array<{ stream: StreamSpec; partition: number }>): void {
    if (this.stopped) return
    const keep = new Set(lanes.map((l) => laneOf(l.stream.aggregate, l.partition)))
    for (const [lane, run] of this.runs) {
      if (keep.has(lane)) continue
      this.runs.delete(lane)
      run.lease.abort()
      this.closing.push(run.done)
    }
    for (const { stream, partition } of lanes) {
      const lane = laneOf(stream.aggregate, partition)
      if (!this.runs.has(lane)) this.runs.set(lane, new PartitionRun(this.backend, stream, partition, this.host, this.batchSize))
    }
  }

  async reopen(): Promise<void> {
    for (const run of this.runs.values()) run.reopen()
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    const group = this.backend.feedGroups.get(this.spec.group)
    group?.leave(this)
    if (group && group.size === 0) this.backend.feedGroups.delete(this.spec.group)
    for (const run of this.runs.values()) run.lease.abort()
    await Promise.all([...this.runs.values()].map((r) => r.done).concat(this.closing))
    this.runs.clear()
  }
}
