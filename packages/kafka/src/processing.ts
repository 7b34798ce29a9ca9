import { ErrorCode, hasCode, type Logger } from '@esk/core'
import {
  sleep,
  type CommandRecord,
  type PartitionHandle,
  type PartitionHost,
  type PartitionLease,
  type StreamSpec,
} from '@esk/core/driver'
import type { Admin, Consumer, EachBatchPayload, Kafka } from 'kafkajs'
import { stickyAssigner } from './assigner.js'
import { checkCommandLog, commandLogEnd } from './command-log.js'
import { isGroupChange } from './errors.js'
import { PartitionAssigners } from './kafkajs.js'
import { streamNames, type ResolvedKafkaOptions, type StreamNames } from './options.js'
import type { LogReader } from './replay.js'
import { textHeaders } from './headers.js'
import { TransactionalWriter } from './writer.js'

/** The lease the Kafka transport hands to core: a {@link PartitionLease} that can also tell where its command log ends. */
export interface KafkaPartitionLease extends PartitionLease {
  /**
   * The offset the command topic partition will give its next record (its high watermark). A
   * checkpoint whose command position is at or past it belongs to another command log: the topic
   * was recreated or truncated.
   */
  commandLogEnd(): Promise<number>
}

/**
 * Where a partition assigned to this process stands:
 * - `opening`: its writer is being initialised (fencing the previous owner) and core recovers it;
 * - `ready`: it takes command batches;
 * - `retrying`: an attempt to open it failed (reported); it is tried again after a backoff;
 * - `refused`: its command topic does not match its event log; it is not processed (reported);
 * - `closed`: revoked, given up after a failure, or stopped.
 */
export type PartitionState = 'opening' | 'ready' | 'retrying' | 'refused' | 'closed'

/** Longest wait between two attempts to open a partition, ms. */
const MAX_OPEN_BACKOFF_MS = 30_000
/** Longest wait before a fenced partition is reopened, ms (it doubles with each fence in a row). */
const MAX_FENCE_BACKOFF_MS = 10_000

/** What every partition of one stream shares. */
interface StreamContext {
  kafka: Kafka
  admin: Admin
  reader: LogReader
  options: ResolvedKafkaOptions
  stream: StreamSpec
  names: StreamNames
  host: PartitionHost
}

/** How an {@link OwnedPartition} starts. */
interface OpenPlan {
  /** Wait for this first (the previous handle of the partition closing). */
  after?: Promise<unknown>
  /** Then wait this long, ms. */
  delayMs?: number
  /** Confirms that the group still counts this member before the writer fences anyone. */
  confirm: (signal: AbortSignal) => Promise<void>
  /** Confirm before the first attempt too (the previous writer was fenced). */
  confirmFirst: boolean
}

/**
 * One lease of one command partition: its writer and its core handle. A lease that fails for good
 * (fenced, or a commit whose outcome is unknown) is closed and replaced by a new one.
 */
class OwnedPartition {
  readonly lease = new AbortController()
  state: PartitionState = 'opening'
  handle: PartitionHandle | undefined
  /** Set once this lease has been given up: later failures of its handle are not acted on again. */
  retired = false
  /** Resolves once the first attempt to open has ended, whatever its result. */
  readonly firstAttempt: Promise<void>
  private readonly opening: Promise<void>
  private writer: TransactionalWriter | undefined
  private readyListeners: Array<() => void> = []
  private closing: Promise<void> | undefined

  constructor(
    private readonly context: StreamContext,
    readonly partition: number,
    plan: OpenPlan,
    /** Told when the handle failed after a batch was done with (see `PartitionLease.failed`). */
    private readonly onFailed: (owned: OwnedPartition, error: unknown, next: number) => void,
  ) {
    let attempted!: () => void
    this.firstAttempt = new Promise((resolve) => (attempted = resolve))
    this.opening = this.open(plan, attempted)
  }

  /** Calls `listener` once the partition is ready (at once if it is). */
  whenReady(listener: () => void): void {
    if (this.state === 'ready') listener()
    else if (this.state === 'opening' || this.state === 'retrying') this.readyListeners.push(listener)
  }

  /** Stops the lease: waits for the open in progress and the batch in flight, then drops the writer. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'closed'
      this.readyListeners = []
      this.lease.abort()
      await this.opening
      await this.handle?.close()
      await this.writer?.close()
    })()
    return this.closing
  }

  private async open(plan: OpenPlan, attempted: () => void): Promise<void> {
    const { kafka, admin, reader, options, stream, names, host } = this.context
    const signal = this.lease.signal
    await plan.after?.catch(() => undefined)
    if (plan.delayMs) await sleep(plan.delayMs, signal)
    let confirm = plan.confirmFirst
    for (let attempt = 0; !signal.aborted; attempt++) {
      try {
        if (confirm) await plan.confirm(signal)
        if (signal.aborted) break
        this.writer = await TransactionalWriter.open(kafka, options, names, this.partition)
        if (signal.aborted) break
        await checkCommandLog(admin, reader, names, stream.partitions, this.partition)
        const lease: KafkaPartitionLease = {
          stream,
          partition: this.partition,
          writer: this.writer,
          signal,
          commandLogEnd: () => commandLogEnd(admin, names, this.partition),
          failed: (error, next) => this.onFailed(this, error, next),
        }
        this.handle = await host.open(lease)
        if (signal.aborted) break
        this.state = 'ready'
        attempted()
        for (const listener of this.readyListeners.splice(0)) listener()
        return
      } catch (error) {
        await this.writer?.close()
        this.writer = undefined
        if (signal.aborted) break
        host.reportError(error, { stream: stream.aggregate, partition: this.partition })
        attempted()
        if (hasCode(error, ErrorCode.CommandLogTruncated)) {
          this.state = 'refused'
          this.readyListeners = []
          return
        }
        this.state = 'retrying'
        // Fenced while opening: someone else initialised the writer since; make sure this member
        // still owns the partition before fencing them back.
        confirm = hasCode(error, ErrorCode.Fenced)
        await sleep(Math.min(100 * 2 ** attempt, MAX_OPEN_BACKOFF_MS), signal)
      }
    }
    attempted()
  }
}

/**
 * The processor of one aggregate type: a consumer group on its command topic. Each assigned
 * partition gets its own transactional writer (fencing any previous owner), is recovered by core,
 * and then receives command batches in log order. A partition is fetched only while it is ready;
 * one that is opening, retrying or refused is paused, so it never holds up the others.
 */
export class StreamProcessor {
  private readonly context: StreamContext
  private readonly consumer: Consumer
  private readonly owned = new Map<number, OwnedPartition>()
  /** The partitions of the group's latest assignment to this member. */
  private assignment = new Set<number>()
  /** This member's id in the group, and the generation its heartbeats last confirmed. */
  private memberId: string | undefined
  private generation = -1
  /** Aborted when a heartbeat says the group is rebalancing; renewed at each join. */
  private rebalance = new AbortController()
  /** Callers waiting for proof that this member is still in the group. */
  private readonly membershipWaiters = new Set<{ beats: number; done: () => void }>()
  /** Fences in a row per partition, for the reopen backoff. */
  private readonly fences = new Map<number, number>()
  private readonly started: Promise<void>
  private settle!: (error?: unknown) => void
  private stopping = false

  constructor(
    kafka: Kafka,
    admin: Admin,
    reader: LogReader,
    private readonly options: ResolvedKafkaOptions,
    private readonly stream: StreamSpec,
    private readonly host: PartitionHost,
    private readonly logger: Logger,
  ) {
    const names = streamNames(options.topicPrefix, stream.aggregate)
    this.context = { kafka, admin, reader, options, stream, names, host }
    this.started = new Promise((resolve, reject) => {
      this.settle = (error) => (error === undefined ? resolve() : reject(error))
    })
    this.consumer = kafka.consumer({
      groupId: names.group,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: options.heartbeatIntervalMs,
      maxWaitTimeInMs: options.maxWaitTimeMs,
      // Sticky first; RoundRobin only while members of an older version are in the group.
      partitionAssigners: [
        stickyAssigner(() => ({ owned: { [names.commands]: [...this.assignment] }, generation: this.generation })),
        PartitionAssigners.roundRobin,
      ],
    })
    this.consumer.on(this.consumer.events.GROUP_JOIN, ({ payload }) => {
      this.reassign(payload.memberAssignment[names.commands] ?? [], payload.memberId)
    })
    this.consumer.on(this.consumer.events.HEARTBEAT, ({ payload }) => {
      // The first heartbeat after a join carries the generation of that join's assignment.
      this.generation = payload.groupGenerationId
      for (const waiter of [...this.membershipWaiters]) if (--waiter.beats <= 0) waiter.done()
    })
    this.consumer.on(this.consumer.events.CRASH, ({ payload }) => this.onCrash(payload.error, payload.restart))
  }

  private get names(): StreamNames {
    return this.context.names
  }

  /** The aggregate type this processor handles. */
  get aggregate(): string {
    return this.stream.aggregate
  }

  /**
   * Joins the group and resolves once every partition of the first assignment has made its
   * first attempt to open: ready, or failed and reported (it keeps trying in the background).
   */
  async start(): Promise<void> {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.names.commands], fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.min(this.options.partitionsConsumedConcurrently, this.stream.partitions),
      eachBatch: (payload) => this.onBatch(payload),
    })
    await this.started
  }

  /**
   * Closes every partition first (each finishes its batch in flight and its open or repair in
   * progress, and writes nothing after), and only then leaves the group: until it has left, no
   * other member can take those partitions and start on them while this one still works.
   */
  async stop(): Promise<void> {
    this.stopping = true
    this.settle()
    try {
      this.consumer.pause([{ topic: this.names.commands }])
    } catch {
      // Not running: nothing to pause.
    }
    const owned = [...this.owned.values()]
    this.owned.clear()
    await Promise.all(owned.map((p) => this.retire(p)))
    for (const waiter of [...this.membershipWaiters]) waiter.done()
    await this.consumer.disconnect().catch((error: unknown) => this.logger.warn('consumer disconnect failed', { error }))
  }

  /** The state of each partition this process was assigned. */
  states(): Map<number, PartitionState> {
    return new Map([...this.owned].map(([partition, p]) => [partition, p.state]))
  }

  private reassign(partitions: number[], memberId: string): void {
    if (this.stopping) return
    // A new member id means this process was out of the group (evicted after a long pause, say):
    // whatever it held may have been taken and fenced meanwhile, so every lease starts over.
    const rejoined = this.memberId !== undefined && this.memberId !== memberId
    this.memberId = memberId
    this.assignment = new Set(partitions)
    this.rebalance = new AbortController()
    const closing = new Map<number, Promise<void>>()
    for (const [partition, owned] of this.owned) {
      if (rejoined || !this.assignment.has(partition)) {
        this.owned.delete(partition)
        this.fences.delete(partition)
        closing.set(partition, this.retire(owned))
      }
    }
    // A partition whose lease died (fenced, closed) is opened again if the group still assigns it,
    // once the old lease has finished.
    for (const partition of partitions) {
      const owned = this.owned.get(partition)
      if (!owned || owned.state === 'closed') {
        this.own(partition, { after: closing.get(partition), confirm: this.confirmMembership, confirmFirst: false })
      }
    }
    // The join itself shows that this member is in the group.
    for (const waiter of [...this.membershipWaiters]) waiter.done()
    for (const partition of partitions) this.fetchWhenReady(partition)
    void Promise.all([...this.owned.values()].map((p) => p.firstAttempt)).then(() => this.settle())
  }

  private own(partition: number, plan: OpenPlan): OwnedPartition {
    const owned = new OwnedPartition(this.context, partition, plan, (failed, error, next) => this.onFailure(failed, error, next))
    this.owned.set(partition, owned)
    return owned
  }

  /** Closes a lease for good; a failure to close is reported, never thrown. */
  private retire(owned: OwnedPartition): Promise<void> {
    owned.retired = true
    return owned.close().catch((error: unknown) => {
      this.host.reportError(error, { stream: this.stream.aggregate, partition: owned.partition })
    })
  }

  /**
   * Fetches a partition only while its lease is ready: otherwise pauses it (from `from`, when
   * given) and resumes it once the lease is ready, if it is still this partition's lease then.
   */
  private fetchWhenReady(partition: number, from?: number): void {
    const owned = this.owned.get(partition)
    if (!owned || this.stopping) return
    const topicPartition = [{ topic: this.names.commands, partitions: [partition] }]
    if (owned.state === 'ready') {
      this.consumer.resume(topicPartition)
      return
    }
    this.consumer.pause(topicPartition)
    if (from !== undefined) this.consumer.seek({ topic: this.names.commands, partition, offset: String(from) })
    owned.whenReady(() => {
      if (this.owned.get(partition) === owned && !this.stopping) this.consumer.resume(topicPartition)
    })
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    if (this.stopping || batch.messages.length === 0) return
    const owned = this.owned.get(batch.partition)
    if (!owned) return
    if (owned.state !== 'ready' || !owned.handle) {
      // Opening or retrying: fetch these commands again once it is ready.
      this.fetchWhenReady(batch.partition, Number(batch.messages[0]!.offset))
      return
    }
    const handle = owned.handle
    const rebalance = this.rebalance
    const max = this.options.maxBatchSize
    for (let start = 0; start < batch.messages.length; start += max) {
      if (!isRunning() || isStale() || owned.retired || rebalance.signal.aborted || this.stopping) return
      const chunk = batch.messages.slice(start, start + max)
      const records: CommandRecord[] = chunk.map((m) => {
        const headers = m.headers && textHeaders(m.headers)
        return headers
          ? { position: Number(m.offset), value: m.value?.toString('utf8') ?? '', headers }
          : { position: Number(m.offset), value: m.value?.toString('utf8') ?? '' }
      })
      const first = records[0]!.position
      const processing = handle.process(records)
      let outcome: 'done' | 'rebalance'
      try {
        outcome = await this.heartbeating(processing, heartbeat, rebalance)
      } catch (error) {
        this.onFailure(owned, error, first)
        return
      }
      if (outcome === 'rebalance') {
        // Let kafkajs rejoin now. The batch finishes on its own; if the partition stays here, its
        // commands are fetched again and skipped by position.
        processing.catch((error: unknown) => this.onFailure(owned, error, first))
        return
      }
      this.fences.delete(batch.partition)
      resolveOffset(chunk[chunk.length - 1]!.offset)
    }
  }

  /**
   * Waits for a batch while heartbeating, so a long batch (a store that stalls, a repair) keeps
   * the membership. When a heartbeat says the group is rebalancing, every waiting batch stops
   * waiting, so that this member can rejoin within the rebalance timeout.
   */
  private async heartbeating(work: Promise<void>, heartbeat: () => Promise<void>, rebalance: AbortController): Promise<'done' | 'rebalance'> {
    if (rebalance.signal.aborted) return 'rebalance'
    let stopWaiting: () => void = () => undefined
    const rejoin = new Promise<'rebalance'>((resolve) => {
      const timer = setInterval(() => {
        heartbeat().catch((error: unknown) => {
          if (isGroupChange(error)) rebalance.abort()
        })
      }, this.options.heartbeatIntervalMs)
      const onAbort = (): void => resolve('rebalance')
      rebalance.signal.addEventListener('abort', onAbort, { once: true })
      stopWaiting = () => {
        clearInterval(timer)
        rebalance.signal.removeEventListener('abort', onAbort)
      }
    })
    try {
      return await Promise.race([work.then(() => 'done' as const), rejoin])
    } finally {
      stopWaiting()
    }
  }

  /**
   * After a failed batch the lease is given up. Fenced (by a newer writer, by the broker after a
   * transaction timeout, or by the snapshot store refusing this owner): another process may own
   * the partition now, so it is reopened only once a heartbeat shows that the group still assigns
   * it here, after a backoff that grows with each fence in a row. Anything else: the outcome of
   * the transaction is unknown, so the partition is reopened at once, which fences this writer's
   * own open transaction and replays whatever did commit. Either way it is fetched again from the
   * first command of the batch; commands whose events are in the log are skipped by position.
   */
  private onFailure(owned: OwnedPartition, error: unknown, firstPosition: number): void {
    if (owned.retired) return
    const partition = owned.partition
    if (this.owned.get(partition) === owned) this.owned.delete(partition)
    const closed = this.retire(owned)
    this.host.reportError(error, { stream: this.stream.aggregate, partition })
    if (this.stopping || !this.assignment.has(partition)) return
    const fenced = hasCode(error, ErrorCode.Fenced)
    const fences = fenced ? (this.fences.get(partition) ?? 0) + 1 : 0
    this.fences.set(partition, fences)
    this.own(partition, {
      after: closed,
      delayMs: fenced ? Math.min(250 * 2 ** (fences - 1), MAX_FENCE_BACKOFF_MS) : 0,
      confirm: this.confirmMembership,
      confirmFirst: fenced,
    })
    this.fetchWhenReady(partition, firstPosition)
  }

  /**
   * Resolves once this member is known to be in the group: after two successful heartbeats (the
   * second one was certainly sent after this call), or at the next join, whose assignment then
   * decides. Resolves early when `signal` aborts.
   */
  private readonly confirmMembership = (signal: AbortSignal): Promise<void> =>
    new Promise((resolve) => {
      const waiter = {
        beats: 2,
        done: () => {
          this.membershipWaiters.delete(waiter)
          signal.removeEventListener('abort', waiter.done)
          resolve()
        },
      }
      if (signal.aborted) return resolve()
      this.membershipWaiters.add(waiter)
      signal.addEventListener('abort', waiter.done, { once: true })
    })

  /**
   * kafkajs left the group on a crash: every lease goes, and a restarted consumer gets its
   * partitions through a new join. Without a restart, a start still waiting fails.
   */
  private onCrash(error: unknown, restart: boolean): void {
    this.host.reportError(error, { stream: this.stream.aggregate })
    this.assignment = new Set()
    for (const owned of this.owned.values()) void this.retire(owned)
    this.owned.clear()
    if (!restart) this.settle(error)
  }
}
