import { randomUUID } from 'node:crypto'
import {
  ConfigurationError,
  ErrorCode,
  EskError,
  EventsTruncatedError,
  InvalidArgumentError,
  UnavailableError,
  hasCode,
} from '../errors.js'
import type { Logger } from '../logger.js'
import type { Observers } from '../observe.js'
import type { StreamSpec, Transport } from '../ports.js'
import type { StoredEvent } from '../records.js'
import type { Telemetry } from '../telemetry.js'
import { decodeInstance } from '../roundtrip.js'
import { messageOf } from '../runtime.js'
import { sleep } from '../util.js'
import { ExternalLane, SubscriptionLane, ViewLane, type Decoded, type LaneHost } from './lane.js'
import { InMemoryProjectionStore } from './memory-store.js'
import type { ReadModelSpec } from './model.js'
import type { LaneState, ProjectionObservation } from './observe.js'
import {
  laneOf,
  type EventFeed,
  type EventFeedHost,
  type GenerationInfo,
  type LogBounds,
  type ProjectionDeadLetter,
  type ProjectionStore,
} from './ports.js'
import { viewReader, type ViewReader } from './view.js'

/** Where the events of a command are: the partition of its aggregate and the offset of its last event. */
export interface EventPosition {
  aggregate: string
  partition: number
  offset: number
}

/** Options of {@link ProjectionView.waitFor} and {@link ProjectionView.ready}. */
export interface WaitOptions {
  /** How long to wait; default the application's `readTimeoutMs`. */
  timeoutMs?: number
}

/** One lane of a read model, as {@link ProjectionView.status} reports it. */
export interface LaneStatus {
  aggregate: string
  partition: number
  /** Stored position: the next offset to apply; undefined when the lane never stored one. */
  position: number | undefined
  /** First and next offsets of the log partition now. */
  start: number
  end: number
  /** Offsets still to read (0 when caught up). */
  lag: number
  /** For lanes this process reads: their state, and why when `failed`. */
  state?: LaneState
  error?: { code?: string; message: string }
}

/** Where a read model is. */
export interface ProjectionStatus {
  name: string
  kind: ReadModelSpec['kind']
  version: number
  scope: ReadModelSpec['scope']
  /** The generation readers are served from, if any was built. */
  live: GenerationInfo | undefined
  /** A generation being built for this version beside an older live one. */
  building: GenerationInfo | undefined
  /** The live generation was built by a newer version of this read model; this process does not build it. */
  superseded: boolean
  /** Every lane of the live generation has read to the end of its log, and it is this version's (or newer). */
  caughtUp: boolean
  /** Offsets still to read, summed over lanes. */
  lag: number
  lanes: LaneStatus[]
}

/** What {@link ProjectionView.rebuild} did. */
export interface RebuildReport {
  /** The generation built and swapped in. */
  generation: number
  events: number
  elapsedMs: number
  eventsPerSecond: number
}

/**
 * A read model as an application uses it: reads of its live generation, read-your-writes, catch-up,
 * status, rebuild and reset. For subscriptions and external projections the reads throw
 * `ESK_CONFIGURATION` (their state is not in esk's store).
 */
export interface ProjectionView extends ViewReader {
  readonly name: string
  /**
   * Waits until the live generation has applied the events of a command (`save`/`update` results
   * carry their position). A result without a position recorded no events: returns at once.
   * Throws `ESK_READ_TIMEOUT` when it does not happen in time.
   */
  waitFor(position: { position?: EventPosition } | EventPosition | undefined, options?: WaitOptions): Promise<void>
  /**
   * Waits until this version of the read model is live and has read every partition to the end of
   * its log as it is when called: the moment a service booting from zero may serve.
   */
  ready(options?: WaitOptions): Promise<void>
  status(): Promise<ProjectionStatus>
  /**
   * Builds a new generation from the first event beside the live one, while the live one keeps
   * serving and being updated, then swaps it in once caught up (blue/green). Reports progress as
   * `projection` observations (`kind: 'rebuild'`).
   */
  rebuild(options?: WaitOptions): Promise<RebuildReport>
  /**
   * Drops the view and its positions and starts again from the first event; until caught up,
   * readers see a partial view. A subscription delivers every event again.
   */
  reset(): Promise<void>
  /** Events set aside with `onFailure: 'park'`, oldest first. */
  deadLetters(): Promise<ProjectionDeadLetter[]>
}

/** What read models need from the application. */
export interface ReadSideContext {
  transport: Transport
  /** The driver's projection store, for local read models. */
  store: ProjectionStore | undefined
  observers: Observers
  logger: Logger
  /** The streams of registered aggregates producing each event type, by persisted type name. */
  producers: ReadonlyMap<string, readonly StreamSpec[]>
  /** How often a running read model looks for resets, rebuilds and upgrades done elsewhere, ms. */
  pollMs: number
  /** Default of {@link WaitOptions.timeoutMs}. */
  readTimeoutMs: number
  /** Aborted when the application closes. */
  closing: AbortSignal
  /** Traces of event handling, when `@opentelemetry/api` is there. */
  telemetry?: Telemetry
}

/** Runs one read model in one application: its feed, its lanes, its generations. */
export class ReadModelRunner implements LaneHost {
  readonly store: ProjectionStore | undefined
  readonly streams: StreamSpec[]
  readonly view: ProjectionView
  private feed: EventFeed | undefined
  private group = ''
  /** Started and not stopped: a superseded read model joins again after an operator's reset. */
  private running = false
  private timer: ReturnType<typeof setInterval> | undefined
  private polling = false
  private superseded = false
  private stopped = false
  /** The generation this process's lanes last opened on. */
  private target: GenerationInfo | undefined
  private readonly lanes = new Map<string, { state: LaneState; error?: unknown }>()
  private readonly counters = new Set<{ events: number }>()
  /** The failure last logged per lane, until it writes again. */
  private readonly failing = new Map<string, string>()
  private operation: Promise<unknown> = Promise.resolve()

  constructor(
    readonly spec: ReadModelSpec,
    private readonly context: ReadSideContext,
  ) {
    this.streams = streamsOf(spec, context)
    if (spec.kind === 'external') this.store = undefined
    else if (spec.scope === 'global') this.store = new InMemoryProjectionStore()
    else {
      if (!context.store) {
        throw new ConfigurationError(
          `${spec.kind} '${spec.name}' is local, but the driver's store keeps no projections; use a store that does ` +
            `(the embedded driver's or redisStore), or make it global`,
        )
      }
      this.store = context.store
    }
    this.view = this.makeView()
  }

  /** Traces of event handling, when on. */
  get telemetry(): Telemetry | undefined {
    return this.context.telemetry
  }

  /** Joins the read model's consumer group (or reads every partition, when global) and opens the first lanes. */
  async start(): Promise<void> {
    const { transport } = this.context
    if (!transport.subscribeEvents || !transport.eventLogBounds) {
      throw new ConfigurationError(`the transport cannot feed read models (no subscribeEvents); '${this.spec.name}' cannot run`)
    }
    const { spec } = this
    const group =
      spec.scope === 'global'
        ? `projection.${spec.name}.global.${randomUUID()}`
        : spec.kind === 'subscription'
          ? `subscription.${spec.name}`
          : `projection.${spec.name}.v${spec.version}`
    this.group = group
    this.running = true
    await this.join()
  }

  /** Subscribes (unless a newer version owns the projection) and starts looking for changes made elsewhere. */
  private async join(): Promise<void> {
    const { spec } = this
    this.superseded = false
    if (this.store && spec.scope === 'local') {
      // Fails fast (before joining) when a newer version owns the projection.
      await this.resolve().catch((error: unknown) => {
        if (!hasCode(error, ErrorCode.SchemaAhead)) throw error
        this.supersede(error)
      })
      if (this.superseded) return
    }
    this.feed = await this.context.transport.subscribeEvents!(
      { group: this.group, streams: this.streams, ephemeral: spec.scope === 'global' },
      this.host(),
    )
    if (this.store && spec.scope === 'local') {
      this.timer = setInterval(() => void this.poll(), this.context.pollMs)
      this.timer.unref?.()
    }
  }

  /** Stops the feed (finishing the batch in flight). */
  async stop(): Promise<void> {
    this.stopped = true
    clearInterval(this.timer)
    const feed = this.feed
    this.feed = undefined
    await feed?.stop()
    await this.operation.catch(() => undefined)
    if (this.spec.scope === 'global') await this.store?.close()
  }

  // ---- LaneHost ----

  async resolve(): Promise<GenerationInfo> {
    const store = this.store!
    const { name, version, kind, scope } = this.spec
    for (let attempt = 0; attempt < 5; attempt++) {
      const { live } = await store.describe(name)
      if (!live) {
        await store.create(name, version, 'initial')
        continue
      }
      if (kind === 'subscription' || scope === 'global' || live.version === version) return live
      if (live.version > version) {
        throw new EskError(
          ErrorCode.SchemaAhead,
          `projection '${name}' is built by version ${live.version}, this code has version ${version}: it is not built here ` +
            `(that would undo the newer version's work). Finish deploying the newer version, or reset the projection`,
          { projection: name, stored: live.version, current: version },
        )
      }
      return store.create(name, version, 'upgrade')
    }
    throw new UnavailableError(`projection '${name}' kept changing generation while starting; retried shortly`, { projection: name })
  }

  async startAt(stream: StreamSpec, partition: number, stored: number | undefined, generation: GenerationInfo | undefined): Promise<number> {
    const bounds = (await this.bounds()).get(laneOf(stream.aggregate, partition))!
    if (generation) this.target = generation
    const where = { projection: this.spec.name, aggregate: stream.aggregate, partition, start: bounds.start, end: bounds.end }
    if (stored === undefined) {
      if (bounds.start > 0) {
        this.context.logger.warn('a read model starts on a log whose first events were deleted; it never sees them', {
          code: ErrorCode.EventsTruncated,
          ...where,
        })
        this.observe({ kind: 'truncated', ...where, stored, action: 'started' })
      }
      return bounds.start
    }
    if (stored >= bounds.start && stored <= bounds.end) return stored
    const error = new EventsTruncatedError(this.spec.name, stream.aggregate, partition, stored, bounds.start, bounds.end)
    if (this.spec.onTruncated === 'rebuild' && generation && this.store) {
      this.context.logger.warn('the log was truncated under a read model; resetting it to rebuild from what the log holds', {
        code: ErrorCode.EventsTruncated,
        ...where,
        stored,
      })
      this.observe({ kind: 'truncated', ...where, stored, action: 'reset' })
      const fresh = await this.store.create(this.spec.name, this.spec.version, 'reset', generation.id)
      if (fresh.id !== generation.id) this.observe({ kind: 'swap', from: generation.id, to: fresh.id, reason: 'truncated' })
      throw new UnavailableError(`projection '${this.spec.name}' was reset after a truncated log; its lanes open again`, where)
    }
    this.observe({ kind: 'truncated', ...where, stored, action: 'failed' })
    this.laneState(stream, partition, 'failed', error)
    throw error
  }

  decode(stream: StreamSpec, partition: number, event: StoredEvent): Decoded | undefined {
    const entry = this.spec.handlers.get(event.type)
    if (!entry) return undefined
    let plain: unknown
    try {
      plain = JSON.parse(event.payload)
    } catch (error) {
      throw new EskError(ErrorCode.Serialization, `event ${event.type} at ${stream.aggregate}/${partition}@${event.offset} is not JSON: ${messageOf(error)}`)
    }
    return {
      entry,
      event: decodeInstance(entry.cls, plain) as object,
      meta: {
        aggregate: stream.aggregate,
        aggregateId: event.aggregateId,
        version: event.version,
        type: event.type,
        partition,
        offset: event.offset,
        timestamp: event.timestamp,
        commandId: event.commandId,
        eventId: `${stream.aggregate}/${event.aggregateId}/${event.version}`,
      },
    }
  }

  laneState(stream: StreamSpec, partition: number, state: LaneState, error?: unknown): void {
    const lane = laneOf(stream.aggregate, partition)
    const previous = this.lanes.get(lane)
    if (state === 'closed') this.lanes.delete(lane)
    else this.lanes.set(lane, { state, ...(error !== undefined && { error }) })
    if (state === 'failed') {
      // At error level once per failure (until the lane writes again); its retries at debug.
      const message = messageOf(error)
      const repeated = this.failing.get(lane) === message
      this.failing.set(lane, message)
      const log = repeated ? this.context.logger.debug : this.context.logger.error
      log.call(this.context.logger, `read model '${this.spec.name}' is stopped on ${lane}; it retries with backoff`, { error })
    }
    if (previous?.state === state && state !== 'failed') return
    this.observe({ kind: 'lane', aggregate: stream.aggregate, partition, state, ...(error !== undefined && { error }) })
  }

  parked(deadLetter: ProjectionDeadLetter): void {
    this.context.logger.warn('a read model parked an event its handler cannot handle', {
      code: ErrorCode.ProjectionFailed,
      projection: this.spec.name,
      aggregate: deadLetter.aggregate,
      partition: deadLetter.partition,
      offset: deadLetter.offset,
      error: deadLetter.error.message,
    })
    this.observe({ kind: 'parked', deadLetter })
  }

  applied(stream: StreamSpec, partition: number, count: number): void {
    this.failing.delete(laneOf(stream.aggregate, partition))
    for (const counter of this.counters) counter.events += count
  }

  // ---- internals ----

  private host(pinned?: GenerationInfo): EventFeedHost {
    return {
      open: async (lease) => {
        const lane =
          this.spec.kind === 'external'
            ? new ExternalLane(this, lease.stream, lease.partition, lease.signal)
            : this.spec.kind === 'subscription'
              ? new SubscriptionLane(this, lease.stream, lease.partition, lease.signal)
              : new ViewLane(this, lease.stream, lease.partition, lease.signal, pinned)
        try {
          await lane.open()
        } catch (error) {
          lane.dispose()
          throw error
        }
        return lane
      },
      reportError: (error, context) => {
        // Reported already, with the lane's state (and logged once per failure).
        const reported = hasCode(error, ErrorCode.EventsTruncated) || hasCode(error, ErrorCode.ProjectionFailed)
        if (reported || hasCode(error, ErrorCode.Fenced) || hasCode(error, ErrorCode.Closed)) {
          // Or expected: a reset, a rebuild's swap or a rebalance moved the lane, and it reopens.
          this.context.logger.debug('a read model lane stopped; it opens again', {
            projection: this.spec.name,
            aggregate: context.stream,
            partition: context.partition,
            error: messageOf(error),
          })
          return
        }
        this.context.observers.emit('error', {
          error,
          aggregate: context.stream,
          ...(context.partition !== undefined && { partition: context.partition }),
          during: `projection ${this.spec.name}`,
        })
      },
    }
  }

  /** Looks for a generation change made elsewhere (reset, rebuild, upgrade) and promotes a caught-up upgrade. */
  private async poll(): Promise<void> {
    if (this.polling || this.stopped || !this.feed) return
    this.polling = true
    try {
      const desired = await this.resolve()
      if (this.target && desired.id !== this.target.id) {
        this.target = desired
        await this.feed?.reopen()
      }
      if (!desired.live && desired.purpose === 'upgrade') await this.promote(desired)
    } catch (error) {
      if (hasCode(error, ErrorCode.SchemaAhead)) this.supersede(error)
      else this.context.observers.emit('error', { error, during: `projection ${this.spec.name}` })
    } finally {
      this.polling = false
    }
  }

  /** Swaps in a generation built for this version once every lane has caught up. */
  private async promote(candidate: GenerationInfo): Promise<void> {
    const { live } = await this.store!.describe(this.spec.name)
    const lag = await this.lag(candidate.id)
    if (lag.total > 0) return
    if (await this.store!.swap(this.spec.name, live?.id, candidate.id)) {
      this.context.logger.info('a read model version caught up and replaced the older one', {
        projection: this.spec.name,
        version: this.spec.version,
        generation: candidate.id,
      })
      this.observe({ kind: 'swap', from: live?.id, to: candidate.id, reason: 'upgrade' })
    }
  }

  private supersede(error: unknown): void {
    if (this.superseded) return
    this.superseded = true
    clearInterval(this.timer)
    this.context.logger.warn(`read model '${this.spec.name}' is not built here: a newer version owns it`, { error: messageOf(error) })
    const feed = this.feed
    this.feed = undefined
    // Not awaited: this may run inside a lane's open, which the feed's stop waits for.
    void feed?.stop().catch(() => undefined)
  }

  private observe(event: DistributiveOmit<ProjectionObservation, 'projection'>): void {
    this.context.observers.emit('projection', { projection: this.spec.name, ...event } as ProjectionObservation)
  }

  /** First and next offsets of every lane, now. */
  private async bounds(): Promise<Map<string, LogBounds>> {
    const result = new Map<string, LogBounds>()
    await Promise.all(
      this.streams.map(async (stream) => {
        const bounds = await this.context.transport.eventLogBounds!(stream)
        bounds.forEach((b, partition) => result.set(laneOf(stream.aggregate, partition), b))
      }),
    )
    return result
  }

  private async storedPositions(generation: number | undefined): Promise<Map<string, number>> {
    if (this.spec.kind === 'external') {
      const lanes = this.allLanes()
      const positions = await this.spec.external!.loadPositions(lanes)
      const result = new Map<string, number>()
      lanes.forEach((lane, i) => {
        const p = positions[i]
        if (p !== undefined) result.set(laneOf(lane.aggregate, lane.partition), p)
      })
      return result
    }
    return generation === undefined ? new Map() : this.store!.positions(this.spec.name, generation)
  }

  private allLanes(): Array<{ aggregate: string; partition: number }> {
    return this.streams.flatMap((s) => Array.from({ length: s.partitions }, (_, partition) => ({ aggregate: s.aggregate, partition })))
  }

  private async lag(generation: number | undefined, ends?: Map<string, LogBounds>): Promise<{ total: number; lanes: LaneStatus[] }> {
    const [positions, bounds] = await Promise.all([this.storedPositions(generation), ends ?? this.bounds()])
    const lanes = this.allLanes().map(({ aggregate, partition }) => {
      const lane = laneOf(aggregate, partition)
      const b = bounds.get(lane)!
      const position = positions.get(lane)
      const held = this.lanes.get(lane)
      return {
        aggregate,
        partition,
        position,
        start: b.start,
        end: b.end,
        lag: Math.max(0, b.end - (position ?? b.start)),
        ...(held && { state: held.state }),
        ...(held?.error !== undefined && { error: describeError(held.error) }),
      }
    })
    return { total: lanes.reduce((sum, l) => sum + l.lag, 0), lanes }
  }

  private makeView(): ProjectionView {
    const spec = this.spec
    const readable = (): ProjectionStore => {
      if (!this.store) {
        throw new ConfigurationError(`'${spec.name}' keeps its state outside esk (external projection); read it from its own store`)
      }
      if (spec.kind === 'subscription') throw new ConfigurationError(`'${spec.name}' is a subscription; it has no view to read`)
      return this.store
    }
    const reader = viewReader((reads) => readable().read(spec.name, 'live', reads))
    const timeoutOf = (options?: WaitOptions): number => {
      const ms = options?.timeoutMs ?? this.context.readTimeoutMs
      if (!Number.isFinite(ms) || ms <= 0) throw new InvalidArgumentError(`timeoutMs must be a positive number, got ${String(ms)}`)
      return ms
    }
    return {
      name: spec.name,
      get: (key) => reader.get(key),
      hash: (key) => reader.hash(key),
      sortedSet: (key) => reader.sortedSet(key),
      waitFor: async (target, options) => {
        const position = target === undefined ? undefined : 'offset' in target ? target : target.position
        if (position === undefined) return
        if (!this.streams.some((s) => s.aggregate === position.aggregate)) {
          throw new InvalidArgumentError(
            `'${spec.name}' does not read events of '${position.aggregate}'; waiting for them would never end`,
            { projection: spec.name, aggregate: position.aggregate },
          )
        }
        const lane = laneOf(position.aggregate, position.partition)
        await this.until(timeoutOf(options), `'${spec.name}' to apply ${lane}@${position.offset}`, async () => {
          const generation = spec.kind === 'external' ? undefined : (await this.liveOf()).live?.id
          if (spec.kind !== 'external' && generation === undefined) return false
          return ((await this.storedPositions(generation)).get(lane) ?? -1) > position.offset
        })
      },
      ready: async (options) => {
        const ends = await this.bounds()
        await this.until(timeoutOf(options), `'${spec.name}' to catch up`, async () => {
          const { live } = await this.liveOf()
          if (spec.kind !== 'external' && (!live || live.version < spec.version)) return false
          return (await this.lag(live?.id, ends)).total === 0
        })
      },
      status: () => this.status(),
      rebuild: (options) => this.exclusive(() => this.rebuild(timeoutOf({ timeoutMs: options?.timeoutMs ?? 3_600_000 }))),
      reset: () => this.exclusive(() => this.reset()),
      deadLetters: async () => {
        const { live } = await this.liveOf()
        return live ? readable().deadLetters(spec.name, live.id) : []
      },
    }
  }

  private async liveOf(): Promise<{ live: GenerationInfo | undefined; building: GenerationInfo | undefined }> {
    if (!this.store) return { live: undefined, building: undefined }
    const meta = await this.store.describe(this.spec.name)
    const building = meta.generations.find((g) => !g.live && g.purpose === 'upgrade' && g.version === this.spec.version)
    return { live: meta.live, building }
  }

  private async status(): Promise<ProjectionStatus> {
    const { live, building } = await this.liveOf()
    const lag = await this.lag(live?.id)
    const current = this.spec.kind === 'external' || (live !== undefined && live.version >= this.spec.version)
    return {
      name: this.spec.name,
      kind: this.spec.kind,
      version: this.spec.version,
      scope: this.spec.scope,
      live,
      building,
      superseded: this.superseded,
      caughtUp: current && lag.total === 0,
      lag: lag.total,
      lanes: lag.lanes,
    }
  }

  /** Runs rebuilds and resets of this process one at a time. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.operation.then(work)
    this.operation = run.catch(() => undefined)
    return run
  }

  private async rebuild(timeoutMs: number): Promise<RebuildReport> {
    const { spec } = this
    if (!this.store) throw new ConfigurationError(`'${spec.name}' keeps its state outside esk; rebuild it there`)
    const { transport } = this.context
    if (!transport.subscribeEvents || !transport.eventLogBounds) {
      throw new ConfigurationError(`the transport cannot feed read models (no subscribeEvents); '${spec.name}' cannot be rebuilt`)
    }
    const store = this.store
    const { live } = await store.describe(spec.name)
    const candidate = await store.create(spec.name, spec.version, 'rebuild')
    const started = Date.now()
    const counter = { events: 0 }
    this.counters.add(counter)
    const progress = (phase: 'start' | 'progress' | 'end', lag: number): void => {
      const elapsedMs = Date.now() - started
      this.observe({
        kind: 'rebuild',
        phase,
        generation: candidate.id,
        events: counter.events,
        lag,
        elapsedMs,
        eventsPerSecond: elapsedMs > 0 ? Math.round((counter.events * 1000) / elapsedMs) : 0,
      })
    }
    progress('start', 0)
    let feed: EventFeed | undefined
    try {
      feed = await transport.subscribeEvents(
        { group: `projection.${spec.name}.rebuild.${randomUUID()}`, streams: this.streams, ephemeral: true },
        this.host(candidate),
      )
      await this.until(timeoutMs, `the rebuild of '${spec.name}' to catch up`, async () => {
        const { total } = await this.lag(candidate.id)
        progress('progress', total)
        return total === 0
      })
      // Stop writing the new generation before it goes live: the live lanes continue it from its positions.
      await feed.stop()
      feed = undefined
      if (!(await store.swap(spec.name, live?.id, candidate.id))) {
        throw new UnavailableError(
          `the live generation of '${spec.name}' changed while it was rebuilt (another reset or rebuild); the rebuild was discarded, try again`,
          { projection: spec.name },
        )
      }
    } catch (error) {
      await feed?.stop().catch(() => undefined)
      await store.drop(spec.name, candidate.id).catch(() => undefined)
      throw error
    } finally {
      this.counters.delete(counter)
    }
    this.observe({ kind: 'swap', from: live?.id, to: candidate.id, reason: 'rebuild' })
    progress('end', 0)
    await this.feed?.reopen()
    const elapsedMs = Date.now() - started
    return {
      generation: candidate.id,
      events: counter.events,
      elapsedMs,
      eventsPerSecond: elapsedMs > 0 ? Math.round((counter.events * 1000) / elapsedMs) : 0,
    }
  }

  private async reset(): Promise<void> {
    const { spec } = this
    if (!this.store) throw new ConfigurationError(`'${spec.name}' keeps its state outside esk; reset it there`)
    const { live } = await this.store.describe(spec.name)
    const fresh = await this.store.create(spec.name, spec.version, 'reset', live?.id)
    this.observe({ kind: 'swap', from: live?.id, to: fresh.id, reason: 'reset' })
    if (this.feed) await this.feed.reopen()
    // Superseded by a newer version, and reset from this one (a rollback): build it here again.
    else if (this.superseded && this.running && !this.stopped) await this.join()
  }

  /** Polls `check` with backoff until true; throws `ESK_READ_TIMEOUT` after `timeoutMs`. */
  private async until(timeoutMs: number, what: string, check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs
    for (let pause = 2; ; pause = Math.min(pause * 2, 100)) {
      if (await check()) return
      if (this.context.closing.aborted) throw new EskError(ErrorCode.Closed, `the application closed while waiting for ${what}`)
      if (Date.now() >= deadline) {
        throw new EskError(ErrorCode.ReadTimeout, `timed out after ${timeoutMs} ms waiting for ${what}; check the read model's status() and lag`, {
          projection: this.spec.name,
          timeoutMs,
        })
      }
      await sleep(Math.min(pause, Math.max(1, deadline - Date.now())), this.context.closing)
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** The streams whose events a read model handles: those of registered aggregates producing its event types. */
function streamsOf(spec: ReadModelSpec, context: ReadSideContext): StreamSpec[] {
  const streams = new Map<string, StreamSpec>()
  for (const entry of spec.handlers.values()) {
    const producers = context.producers.get(entry.type) ?? []
    if (producers.length === 0) {
      throw new ConfigurationError(
        `${spec.kind} '${spec.name}' handles ${entry.cls.name} ('${entry.type}'), which no registered aggregate produces; ` +
          `register its aggregate in createEsk({ aggregates })`,
      )
    }
    for (const stream of producers) streams.set(stream.aggregate, stream)
  }
  return [...streams.values()]
}

function describeError(error: unknown): { code?: string; message: string } {
  const code = (error as { code?: unknown } | undefined)?.code
  return { ...(typeof code === 'string' && { code }), message: messageOf(error) }
}
