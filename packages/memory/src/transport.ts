import { ConfigurationError, FencedError, SerializationError } from '@esk/core'
import {
  sleep,
  type CommandLogPosition,
  type CommandRecord,
  type DeadLetter,
  type EventFeed,
  type EventFeedHost,
  type EventFeedSpec,
  type EventToAppend,
  type LogBounds,
  type PartitionHandle,
  type PartitionHost,
  type RecordHeaders,
  type StoredEvent,
  type StreamSpec,
  type Transport,
  type TransportDestinations,
} from '@esk/core/driver'
import type { MemoryBackend, MemoryPartitionLog } from './backend.js'
import { MemoryFeed } from './feed.js'

/** Options of the in-memory transport. */
export interface MemoryTransportOptions {
  /** Most commands handed to a processor at once. Default 100. */
  maxBatchSize?: number
  /** Most events yielded per replay batch. Default 500. */
  replayBatchSize?: number
}

/**
 * Command and event logs in memory, with the same guarantees the Kafka transport gives: one
 * writer per partition (a newer owner fences an older one), atomic commit of events with the
 * command position, replay by partition only.
 */
export class MemoryTransport implements Transport {
  private readonly maxBatchSize: number
  private readonly replayBatchSize: number
  private running: { abort: AbortController; loops: Promise<void>[] } | undefined
  private readonly feeds = new Set<MemoryFeed>()

  constructor(
    private readonly backend: MemoryBackend,
    options: MemoryTransportOptions = {},
  ) {
    this.maxBatchSize = positive('maxBatchSize', options.maxBatchSize ?? 100)
    this.replayBatchSize = positive('replayBatchSize', options.replayBatchSize ?? 500)
  }

  async provision(streams: readonly StreamSpec[]): Promise<void> {
    for (const stream of streams) {
      const existing = this.backend.logs.get(stream.aggregate)
      if (existing && existing.length !== stream.partitions) {
        throw new ConfigurationError(
          `stream '${stream.aggregate}' exists with ${existing.length} partitions, not ${stream.partitions}; ` +
            `partition counts cannot change (ids would move): configure ${existing.length}`,
          { aggregate: stream.aggregate, existing: existing.length, requested: stream.partitions },
        )
      }
      if (!existing) {
        this.backend.logs.set(
          stream.aggregate,
          Array.from({ length: stream.partitions }, () => ({
            commands: [],
            commandHeaders: new Map(),
            events: [],
            committed: 0,
            deadLetters: [],
            epoch: 0,
            waiting: [],
            start: 0,
            eventWaiting: [],
          })),
        )
      }
    }
  }

  async send(stream: StreamSpec, partition: number, _key: string, value: string, headers?: RecordHeaders): Promise<void> {
    const log = this.backend.log(stream.aggregate, partition)
    if (headers) log.commandHeaders.set(log.commands.length, headers)
    log.commands.push(value)
    for (const wake of log.waiting.splice(0)) wake()
  }

  // Commits are visible at once here, so `until` never needs waiting for.
  async *readEvents(stream: StreamSpec, partition: number, from: number): AsyncIterable<StoredEvent[]> {
    const log = this.backend.log(stream.aggregate, partition)
    const end = log.events.length
    if (from < log.start && from < end) {
      throw new SerializationError(
        `events ${from}..${log.start - 1} of ${stream.aggregate}/${partition} were deleted; the event log must keep every event`,
        { aggregate: stream.aggregate, partition, from, low: log.start },
      )
    }
    for (let offset = from; offset < end; offset += this.replayBatchSize) {
      yield log.events.slice(offset, Math.min(offset + this.replayBatchSize, end)).map((e) => ({ ...e }))
    }
  }

  destinations(stream: StreamSpec): TransportDestinations {
    return { system: 'esk.memory', commands: `${stream.aggregate}.commands`, events: `${stream.aggregate}.events` }
  }

  async eventLogBounds(stream: StreamSpec): Promise<LogBounds[]> {
    return Array.from({ length: stream.partitions }, (_, partition) => {
      const log = this.backend.log(stream.aggregate, partition)
      return { start: log.start, end: log.events.length }
    })
  }

  async commandLogPositions(stream: StreamSpec): Promise<CommandLogPosition[]> {
    return Array.from({ length: stream.partitions }, (_, partition) => {
      const log = this.backend.log(stream.aggregate, partition)
      return { end: log.commands.length, committed: log.committed }
    })
  }

  /**
   * Feeds events to a read model: feeds of one group on this backend share its partitions (dealt
   * again when one joins or leaves), and each partition is read from its handle's position.
   */
  async subscribeEvents(spec: EventFeedSpec, host: EventFeedHost): Promise<EventFeed> {
    for (const stream of spec.streams) this.backend.log(stream.aggregate, 0)
    const feed = new MemoryFeed(this.backend, spec, host, this.replayBatchSize)
    this.feeds.add(feed)
    await feed.start()
    return {
      reopen: () => feed.reopen(),
      stop: async () => {
        this.feeds.delete(feed)
        await feed.stop()
      },
    }
  }

  async startProcessing(streams: readonly StreamSpec[], host: PartitionHost): Promise<void> {
    if (this.running) throw new ConfigurationError('processing is already started on this transport')
    const abort = new AbortController()
    const ready: Promise<void>[] = []
    const loops: Promise<void>[] = []
    for (const stream of streams) {
      for (let partition = 0; partition < stream.partitions; partition++) {
        const log = this.backend.log(stream.aggregate, partition)
        // Taking the partition fences whoever held it before, as a new transactional producer does.
        const epoch = ++log.epoch
        const lease = new AbortController()
        abort.signal.addEventListener('abort', () => lease.abort(), { once: true })
        let opened!: () => void
        ready.push(new Promise<void>((resolve) => (opened = resolve)))
        const open = (failed: (error: unknown) => void): Promise<PartitionHandle> =>
          host.open({
            stream,
            partition,
            signal: lease.signal,
            writer: {
              commit: async (events, position, deadLetters = []) =>
                this.commit(stream, partition, log, epoch, events, position, deadLetters),
            },
            commandLogEnd: async () => log.commands.length,
            failed,
          })
        loops.push(
          this.run(stream, partition, log, epoch, open, opened, host, lease.signal).finally(() => {
            opened()
            lease.abort()
          }),
        )
      }
    }
    this.running = { abort, loops }
    // Like a consumer group join: return once every partition has made its first recovery attempt.
    await Promise.all(ready)
  }

  async stopProcessing(): Promise<void> {
    const running = this.running
    if (!running) return
    this.running = undefined
    running.abort.abort()
    await Promise.all(running.loops)
  }

  async close(): Promise<void> {
    await Promise.all([...this.feeds].map((f) => f.stop()))
    this.feeds.clear()
    await this.stopProcessing()
  }

  private commit(
    stream: StreamSpec,
    partition: number,
    log: MemoryPartitionLog,
    epoch: number,
    events: EventToAppend[],
    position: number,
    deadLetters: DeadLetter[],
  ): number[] {
    if (log.epoch !== epoch) {
      throw new FencedError(`partition ${stream.aggregate}/${partition} was taken over by a newer processor`, {
        aggregate: stream.aggregate,
        partition,
      })
    }
    const timestamp = Date.now()
    const offsets = events.map((event) => {
      const offset = log.events.length
      log.events.push({ ...event, offset, timestamp })
      return offset
    })
    if (events.length > 0) for (const wake of log.eventWaiting.splice(0)) wake()
    log.deadLetters.push(...deadLetters.map((d) => ({ ...d })))
    log.committed = Math.max(log.committed, position + 1)
    return offsets
  }

  private async run(
    stream: StreamSpec,
    partition: number,
    log: MemoryPartitionLog,
    epoch: number,
    open: (failed: (error: unknown) => void) => Promise<PartitionHandle>,
    opened: () => void,
    host: PartitionHost,
    signal: AbortSignal,
  ): Promise<void> {
    // Until the partition is taken by a newer owner (its epoch moves on) or processing stops.
    while (!signal.aborted && log.epoch === epoch) {
      // Aborted when the handle fails after a batch was done with: it is given up and opened again.
      const broken = new AbortController()
      const failed = (error: unknown): void => {
        host.reportError(error, { stream: stream.aggregate, partition })
        broken.abort()
      }
      const handle = await this.openHandle(stream, partition, () => open(failed), opened, host, signal)
      if (!handle) return
      try {
        await this.feed(stream, partition, log, handle, host, AbortSignal.any([signal, broken.signal]))
      } finally {
        await handle.close()
      }
    }
  }

  /** Opens the partition, retrying with backoff; undefined once processing stopped. */
  private async openHandle(
    stream: StreamSpec,
    partition: number,
    open: () => Promise<PartitionHandle>,
    opened: () => void,
    host: PartitionHost,
    signal: AbortSignal,
  ): Promise<PartitionHandle | undefined> {
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        const handle = await open()
        opened()
        return handle
      } catch (error) {
        host.reportError(error, { stream: stream.aggregate, partition })
        opened()
        await sleep(Math.min(50 * 2 ** attempt, 5_000), signal)
      }
    }
    return undefined
  }

  /**
   * Hands the partition's commands to `handle` in order, from what was committed. Returns when the
   * handle reports a fence (the caller opens it again if the partition is still this owner's), or
   * `signal` aborts: processing stops, or the handle failed after a batch (it is opened again).
   */
  private async feed(
    stream: StreamSpec,
    partition: number,
    log: MemoryPartitionLog,
    handle: PartitionHandle,
    host: PartitionHost,
    signal: AbortSignal,
  ): Promise<void> {
    let next = log.committed
    let failures = 0
    while (!signal.aborted) {
      if (next >= log.commands.length) {
        await new Promise<void>((resolve) => {
          // Woken by a new command or by the abort; either way the other hook must go, or an
          // idle partition would gather one abort listener per wait.
          const wake = (): void => {
            signal.removeEventListener('abort', wake)
            resolve()
          }
          log.waiting.push(wake)
          signal.addEventListener('abort', wake, { once: true })
        })
        continue
      }
      const end = Math.min(next + this.maxBatchSize, log.commands.length)
      const records: CommandRecord[] = []
      for (let position = next; position < end; position++) {
        const headers = log.commandHeaders.get(position)
        records.push(headers ? { position, value: log.commands[position]!, headers } : { position, value: log.commands[position]! })
      }
      try {
        await handle.process(records)
        next = end
        failures = 0
      } catch (error) {
        if (signal.aborted) return
        if ((error as { code?: string }).code === 'ESK_FENCED') return
        host.reportError(error, { stream: stream.aggregate, partition })
        // Re-deliver from what was committed, as a consumer does after a failed transaction.
        next = log.committed
        await sleep(Math.min(10 * 2 ** failures++, 1_000), signal)
      }
    }
  }
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ConfigurationError(`${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}
