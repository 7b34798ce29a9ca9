import { randomUUID } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { ClosedError, ConfigurationError } from './errors.js'
import { consoleLogger, selfHealing, type Logger } from './logger.js'
import type { Class } from './metadata.js'
import { Observers, type EskEventMap, type Listener, type PartitionState } from './observe.js'
import type { PartitionHost, PartitionLease, Store, StreamSpec, Transport } from './ports.js'
import { PartitionProcessor } from './processor.js'
import type { ReadModel, ReadModelRegistration } from './projection/model.js'
import { ReadSide } from './projection/read-side.js'
import type { ProjectionView } from './projection/runner.js'
import { Repository } from './repository.js'
import { AggregateRuntime, messageOf } from './runtime.js'
import { loadTelemetry, type TelemetryOption } from './telemetry.js'

/** A transport (command and event logs) and a store (snapshots and outcomes), used together. */
export interface Driver {
  transport: Transport
  store: Store
}

/** An aggregate class with settings of its own. */
export interface AggregateRegistration {
  aggregate: Class
  /** Partitions of its command and event logs; overrides {@link EskOptions.partitions}. */
  partitions?: number
}

/** Options of {@link createEsk}. Every field but `aggregates` has a default. */
export interface EskOptions {
  /** Aggregate classes (or registrations) this application sends commands to and may process. */
  aggregates: Array<Class | AggregateRegistration>
  /**
   * Where commands, events and snapshots live. Default: the embedded in-memory driver from
   * `@esk/memory`. The application closes the driver on `close()`.
   */
  driver?: Driver
  /** Default partition count of each aggregate type's logs. Default 4. */
  partitions?: number
  /** Run processors in this process (otherwise it only sends commands and reads). Default true. */
  processing?: boolean
  /** Replay every owned partition from offset 0 on start, discarding snapshots. Default false. */
  rebuild?: boolean
  /** How long `save`/`update` wait for an outcome. Default 30000 ms. */
  commandTimeoutMs?: number
  /** How long `find(id, { atLeastVersion })` waits. Default 10000 ms. */
  readTimeoutMs?: number
  /**
   * Largest encoded event (JSON bytes) a command may produce; a larger one refuses the command
   * with `ESK_HANDLER_FAILED`. Keep it below the broker's `message.max.bytes`. Default 512 KiB.
   */
  maxEventBytes?: number
  /**
   * Accepted command ids remembered per aggregate, inside its snapshot: a retry of one of the
   * aggregate's last `dedupWindow` accepted commands is answered, never applied again. About 50
   * bytes of Redis per entry with UUID command ids. Default 32.
   */
  dedupWindow?: number
  /**
   * Longest a command handler may run. A handler still running then is abandoned and its command
   * refused with `ESK_HANDLER_FAILED`, so one that never returns cannot hold its partition.
   * Default 10000 ms.
   */
  handlerTimeoutMs?: number
  /**
   * Aggregates each partition keeps in process memory, with their snapshots as last saved: a batch
   * whose aggregates are all held (and whose commands are not retries of recorded refusals) skips
   * reading the store. A partition has one writer, and every store write is fenced, so what it
   * holds is what it last wrote; it forgets everything whenever it replays. The least recently
   * used go first. Each costs about its snapshot's size in memory. 0 turns it off. Default 4096.
   */
  snapshotCacheSize?: number
  /**
   * Aggregates a replay (a partition's recovery, a rebuild) holds in memory while it reads the log:
   * it saves each changed aggregate once per 50,000 events folded, 100 per changed aggregate and 5
   * seconds (whichever is most) rather than once per batch read, and reads the store only for
   * aggregates it has not met. A partition with more
   * aggregates than this replays more slowly. Memory is about the snapshot's size each, for the
   * replay's duration. Default 16384.
   */
  replayCacheSize?: number
  /** Where logs go. Default: console, level from `ESK_LOG_LEVEL`, else `warn`. */
  logger?: Logger
  /**
   * Listeners attached before anything starts, so they see the first recovery (which runs inside
   * `createEsk`). Later listeners can be added with `on`.
   */
  listeners?: EskListeners
  /**
   * Read models: `@Projection` classes, `defineProjection`, `defineSubscription` and
   * `externalProjection` definitions, or `{ projection, run: false }` to only read one here. Their
   * events must come from aggregates in `aggregates`.
   */
  projections?: Array<ReadModel | ReadModelRegistration>
  /** How often a running read model looks for resets, rebuilds and new versions made by other processes, ms. Default 1000. */
  projectionPollMs?: number
  /**
   * OpenTelemetry traces and metrics (see "Metrics and traces" in docs/operations.md). By default
   * they are on when the optional package `@opentelemetry/api` can be loaded, and record only once
   * an OpenTelemetry SDK is registered; `false` switches them off; `true` requires the package.
   */
  telemetry?: TelemetryOption
}

/** One optional listener per observable event. */
export type EskListeners = { [K in keyof EskEventMap]?: Listener<EskEventMap[K]> }

/** Defaults of {@link EskOptions}, in one place. */
export const ESK_DEFAULTS = {
  partitions: 4,
  processing: true,
  rebuild: false,
  maxEventBytes: 512 * 1024,
  commandTimeoutMs: 30_000,
  readTimeoutMs: 10_000,
  dedupWindow: 32,
  handlerTimeoutMs: 10_000,
  snapshotCacheSize: 4096,
  replayCacheSize: 16_384,
  projectionPollMs: 1_000,
} as const

const MAX_PARTITIONS = 10_000

/** A running esk application: repositories, processors, observers. */
export interface Esk {
  /** The repository of an aggregate class registered in `aggregates`. */
  repository<T extends object>(aggregate: Class<T>): Repository<T>
  /** Observes recovery progress, partition changes and background errors; returns an unsubscribe function. */
  on<K extends keyof EskEventMap>(name: K, listener: Listener<EskEventMap[K]>): () => void
  /** A registered read model: reads of its view, read-your-writes, readiness, status, rebuild, reset. */
  projection(model: ReadModel): ProjectionView
  /** The logs of each registered aggregate type. */
  readonly streams: readonly StreamSpec[]
  /**
   * What each partition this process holds is doing; `ready` once all of them take commands. It
   * asks nothing of the logs or the store. With `{ lag: true }` it also asks the transport how many
   * commands wait in each partition, and reports every registered read model with its lag.
   */
  status(): EskStatus
  status(options: { lag: true }): Promise<EskStatus>
  /**
   * Whether this process should receive traffic, with the reasons when not: for an HTTP readiness
   * probe. Not ready while closing, while a partition it holds is not `ready`, while a read model it
   * runs has no live generation of its version or a failed lane, and, when the limits are given,
   * while more commands or events than that wait.
   */
  readiness(options?: ReadinessOptions): Promise<Readiness>
  /** Stops processors (finishing the batch in flight), then closes the driver. Safe to call twice. */
  close(): Promise<void>
}

/** One partition this process holds (or failed to open). */
export interface PartitionStatus {
  aggregate: string
  partition: number
  state: PartitionState
  /**
   * The owner token its processor holds in the store (the `@owner` field of the partition's Redis
   * hash): another token there means another process took the partition. Absent before recovery.
   */
  owner?: string
  /** The highest command position its events and outcomes include (-1 before any command). */
  commandPosition?: number
  /** The position the command log gives its next command; with `{ lag: true }` and a transport that tells. */
  commandLogEnd?: number
  /** Commands waiting: `commandLogEnd` minus the next position to process; with `{ lag: true }`. */
  lag?: number
  /** When it entered that state (ms since the epoch). */
  since: number
  /** Why, for `failed` and `fenced`: the error's code and message. */
  error?: { code?: string; message: string }
  /** When it last committed a batch (ms since the epoch). */
  lastBatchAt?: number
}

/** A snapshot of an application's processing. */
export interface EskStatus {
  /** True when processing is off, or every partition this process holds is `ready`. */
  ready: boolean
  partitions: PartitionStatus[]
  /** With `{ lag: true }`: every registered read model, with its lag summed over partitions. */
  projections?: ProjectionLag[]
}

/** A read model as {@link Esk.status} with `{ lag: true }` reports it. */
export interface ProjectionLag {
  name: string
  /** True when this process runs it (feeds it events); false when it only reads it. */
  runs: boolean
  /** Events still to apply, summed over its partitions. */
  lag: number
  /** Every partition has been read to the end of its log, by this version (or a newer one). */
  caughtUp: boolean
  /** Partitions this process reads whose lane failed, with the error. */
  failed: Array<{ aggregate: string; partition: number; error?: { code?: string; message: string } }>
  /** The status could not be read (the store failed): why. */
  error?: string
}

/** Limits of {@link Esk.readiness}. */
export interface ReadinessOptions {
  /** Not ready while more commands than this wait in a partition this process holds. Default: no limit. */
  maxCommandLag?: number
  /** Not ready while a read model this process runs has more events than this to apply. Default: no limit. */
  maxProjectionLag?: number
}

/** What {@link Esk.readiness} found. */
export interface Readiness {
  ready: boolean
  /** One sentence per reason it is not ready; empty when ready. */
  reasons: string[]
}

/**
 * Starts an application: validates every aggregate class, provisions their logs, and (unless
 * `processing` is false) starts processors for the partitions the transport assigns to it.
 */
export async function createEsk(options: EskOptions): Promise<Esk> {
  const settings = { ...ESK_DEFAULTS, ...definedOnly(options) }
  checkTimeout('commandTimeoutMs', settings.commandTimeoutMs)
  checkTimeout('readTimeoutMs', settings.readTimeoutMs)
  checkTimeout('handlerTimeoutMs', settings.handlerTimeoutMs)
  checkTimeout('projectionPollMs', settings.projectionPollMs)
  if (!Number.isInteger(settings.dedupWindow) || settings.dedupWindow < 1) {
    throw new ConfigurationError(`dedupWindow must be a positive integer, got ${String(settings.dedupWindow)}`)
  }
  if (!Number.isInteger(settings.snapshotCacheSize) || settings.snapshotCacheSize < 0) {
    throw new ConfigurationError(`snapshotCacheSize must be a non-negative integer (0 turns the cache off), got ${String(settings.snapshotCacheSize)}`)
  }
  if (!Number.isInteger(settings.replayCacheSize) || settings.replayCacheSize < 1) {
    throw new ConfigurationError(`replayCacheSize must be a positive integer, got ${String(settings.replayCacheSize)}`)
  }
  if (!Number.isInteger(settings.maxEventBytes) || settings.maxEventBytes < 1) {
    throw new ConfigurationError(`maxEventBytes must be a positive integer, got ${String(settings.maxEventBytes)}`)
  }
  const logger = options.logger ?? consoleLogger()
  if (!Array.isArray(options.aggregates) || options.aggregates.length === 0) {
    throw new ConfigurationError('createEsk needs at least one aggregate class in `aggregates`')
  }

  const runtimes = new Map<Class, { runtime: AggregateRuntime; stream: StreamSpec }>()
  const byName = new Map<string, AggregateRuntime>()
  for (const entry of options.aggregates) {
    const registration = typeof entry === 'function' ? { aggregate: entry } : entry
    const runtime = new AggregateRuntime(registration.aggregate as Class<object>)
    const partitions = registration.partitions ?? settings.partitions
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new ConfigurationError(
        `partitions of '${runtime.model.name}' must be an integer from 1 to ${MAX_PARTITIONS}, got ${String(partitions)}`,
      )
    }
    if (byName.has(runtime.model.name)) {
      throw new ConfigurationError(`two aggregate classes are named '${runtime.model.name}'; names must be unique`)
    }
    byName.set(runtime.model.name, runtime)
    runtimes.set(registration.aggregate, { runtime, stream: { aggregate: runtime.model.name, partitions } })
  }
  const streams = [...runtimes.values()].map((r) => r.stream)

  const driver = options.driver ?? (await embeddedDriver())
  const { transport, store } = driver
  const observers = new Observers((name, error) => logger.error(`a '${name}' listener threw`, { error }))
  const telemetry = await loadTelemetry(options.telemetry, transport).catch(async (error: unknown) => {
    await Promise.allSettled([transport.close(), store.close()])
    throw error
  })
  telemetry?.observe(observers)
  // Partitions this process holds, for the command lag gauge.
  const held = new Map<string, { lease: PartitionLease; processor: PartitionProcessor<object> }>()
  const partitions = new Map<string, PartitionStatus>()
  // The processor of each partition this process holds, for its owner token and position.
  const processors = new Map<string, PartitionProcessor<object>>()
  const watched = new WeakSet<AbortSignal>()
  observers.on('state', (change) => {
    const key = `${change.aggregate}/${change.partition}`
    if (change.state === 'closed') {
      partitions.delete(key)
      processors.delete(key)
      return
    }
    const previous = partitions.get(key)
    partitions.set(key, {
      aggregate: change.aggregate,
      partition: change.partition,
      state: change.state,
      since: Date.now(),
      ...(change.error !== undefined && { error: describe(change.error) }),
      ...(previous?.lastBatchAt !== undefined && { lastBatchAt: previous.lastBatchAt }),
    })
  })
  observers.on('batch', (batch) => {
    const status = partitions.get(`${batch.aggregate}/${batch.partition}`)
    if (status) status.lastBatchAt = Date.now()
  })
  for (const [name, listener] of Object.entries(options.listeners ?? {})) {
    observers.on(name as keyof EskEventMap, listener as Listener<EskEventMap[keyof EskEventMap]>)
  }
  observers.on('error', (e) => {
    const fields = { aggregate: e.aggregate, partition: e.partition, error: e.error }
    const healing = selfHealing(e.error)
    if (healing) logger.warn(`${healing.text} (during ${e.during})`, { code: healing.code, ...fields })
    else logger.error(`background failure during ${e.during}`, fields)
  })
  let state: 'open' | 'closing' | 'closed' = 'open'
  // Aborted when close() starts, so calls waiting for an outcome or a version return at once.
  const closingSignal = new AbortController()
  // Every call in flight listens to it: hundreds at once are normal, not a leak.
  setMaxListeners(0, closingSignal.signal)
  let closing: Promise<void> | undefined
  const assertOpen = (): void => {
    if (state !== 'open') throw new ClosedError('this esk application')
  }

  let readSide: ReadSide
  try {
    // Event types by the streams that produce them, so each read model knows which logs to read.
    const producers = new Map<string, StreamSpec[]>()
    for (const { runtime, stream } of runtimes.values()) {
      for (const type of runtime.model.events.keys()) producers.set(type, [...(producers.get(type) ?? []), stream])
    }
    readSide = new ReadSide(options.projections ?? [], {
      transport,
      store: store.projections,
      observers,
      logger,
      producers,
      pollMs: settings.projectionPollMs,
      readTimeoutMs: settings.readTimeoutMs,
      closing: closingSignal.signal,
      ...(telemetry && { telemetry }),
    })
    telemetry?.gauges({
      partitions: () => [...partitions.values()],
      projectionLag: () => readSide.lags(),
      commandLag: async () => {
        const lags = await Promise.all(
          [...held.values()].map(async ({ lease, processor }) => {
            const end = await lease.commandLogEnd?.().catch(() => undefined)
            if (end === undefined) return []
            return [{ aggregate: lease.stream.aggregate, partition: lease.partition, lag: Math.max(0, end - processor.commandPosition - 1) }]
          }),
        )
        return lags.flat()
      },
    })
    await transport.provision(streams)
    if (settings.processing) {
      const host: PartitionHost = {
        async open(lease: PartitionLease) {
          const runtime = byName.get(lease.stream.aggregate)
          if (!runtime) throw new ConfigurationError(`no aggregate named '${lease.stream.aggregate}' is registered`)
          const where = { aggregate: runtime.model.name, partition: lease.partition }
          observers.emit('state', { ...where, state: 'opening' })
          const processor: PartitionProcessor<object> = new PartitionProcessor(
            {
              runtime,
              transport,
              snapshots: store.snapshots,
              outcomes: store.outcomes,
              observers,
              logger,
              rebuild: settings.rebuild,
              maxEventBytes: settings.maxEventBytes,
              dedupWindow: settings.dedupWindow,
              handlerTimeoutMs: settings.handlerTimeoutMs,
              snapshotCacheSize: settings.snapshotCacheSize,
              replayCacheSize: settings.replayCacheSize,
              ...(telemetry && { telemetry }),
            },
            lease,
          )
          processors.set(`${where.aggregate}/${where.partition}`, processor)
          try {
            await processor.open()
          } catch (error) {
            if (processor.state !== 'failed') observers.emit('state', { ...where, state: 'failed', error })
            // Reported as failed until the transport opens it again, or gives it up. A transport
            // may retry with the same lease: one listener per lease.
            if (!watched.has(lease.signal)) watched.add(lease.signal)
            else throw error
            lease.signal.addEventListener(
              'abort',
              () => {
                if (partitions.get(`${where.aggregate}/${where.partition}`)?.state === 'failed') {
                  observers.emit('state', { ...where, state: 'closed' })
                }
              },
              { once: true },
            )
            throw error
          }
          // Taken away while recovering: it never was assigned.
          if (lease.signal.aborted) {
            await processor.close()
            throw new ClosedError(`partition ${where.aggregate}/${where.partition}`, `${where.aggregate}/${where.partition} was revoked while it recovered`)
          }
          observers.emit('partition', { ...where, change: 'assigned' })
          const key = `${where.aggregate}/${where.partition}`
          held.set(key, { lease, processor: processor as PartitionProcessor<object> })
          lease.signal.addEventListener(
            'abort',
            () => {
              if (held.get(key)?.lease === lease) held.delete(key)
              observers.emit('partition', { ...where, change: 'revoked' })
            },
            { once: true },
          )
          return processor
        },
        reportError(error, context) {
          observers.emit('error', { error, aggregate: context.stream, partition: context.partition, during: 'transport' })
        },
      }
      await transport.startProcessing(streams, host)
    }
    await readSide.start()
  } catch (error) {
    await Promise.allSettled([transport.close(), store.close()])
    throw error
  }

  const localStatus = (): EskStatus => {
    const list = [...partitions.values()]
      .map((p) => {
        const processor = processors.get(`${p.aggregate}/${p.partition}`)
        return {
          ...p,
          ...(processor?.owner && { owner: processor.owner, commandPosition: processor.commandPosition }),
        }
      })
      .sort((a, b) => a.aggregate.localeCompare(b.aggregate) || a.partition - b.partition)
    return { ready: list.every((p) => p.state === 'ready'), partitions: list }
  }
  const withLag = async (status: EskStatus): Promise<EskStatus> => {
    if (transport.commandLogPositions) {
      const held = new Set(status.partitions.map((p) => p.aggregate))
      const positions = new Map<string, Awaited<ReturnType<NonNullable<Transport['commandLogPositions']>>>>()
      for (const stream of streams.filter((s) => held.has(s.aggregate))) {
        positions.set(stream.aggregate, await transport.commandLogPositions(stream))
      }
      for (const p of status.partitions) {
        const position = positions.get(p.aggregate)?.[p.partition]
        if (!position) continue
        // The processor may be ahead of what the log shows as committed (its commit just returned).
        const next = Math.max(position.committed, (p.commandPosition ?? -1) + 1)
        p.commandLogEnd = position.end
        p.lag = Math.max(0, position.end - next)
      }
    }
    const projections: ProjectionLag[] = []
    for (const { view, runs } of readSide.list()) {
      try {
        const projection = await view.status()
        projections.push({
          name: view.name,
          runs,
          lag: projection.lag,
          caughtUp: projection.caughtUp,
          failed: projection.lanes
            .filter((l) => l.state === 'failed')
            .map((l) => ({ aggregate: l.aggregate, partition: l.partition, ...(l.error && { error: l.error }) })),
        })
      } catch (error) {
        projections.push({ name: view.name, runs, lag: 0, caughtUp: false, failed: [], error: messageOf(error) })
      }
    }
    return { ...status, projections }
  }

  const repositories = new Map<Class, Repository<object>>()
  return {
    streams,
    repository<T extends object>(aggregate: Class<T>): Repository<T> {
      assertOpen()
      const registered = runtimes.get(aggregate)
      if (!registered) {
        throw new ConfigurationError(`${aggregate.name} is not registered; add it to createEsk({ aggregates })`)
      }
      let repository = repositories.get(aggregate)
      if (!repository) {
        repository = new Repository(
          registered.runtime,
          registered.stream,
          transport,
          store.snapshots,
          store.outcomes,
          settings,
          assertOpen,
          closingSignal.signal,
          telemetry,
        )
        repositories.set(aggregate, repository)
      }
      return repository as unknown as Repository<T>
    },
    projection: (model) => {
      assertOpen()
      return readSide.view(model)
    },
    on: (name, listener) => observers.on(name, listener),
    status: ((options?: { lag?: boolean }) => {
      const status = localStatus()
      return options?.lag ? withLag(status) : status
    }) as Esk['status'],
    async readiness(options = {}) {
      const reasons: string[] = []
      if (state !== 'open') return { ready: false, reasons: [`the application is ${state}`] }
      const measure = options.maxCommandLag !== undefined || options.maxProjectionLag !== undefined
      const status = measure ? await withLag(localStatus()) : localStatus()
      for (const p of status.partitions) {
        const where = `${p.aggregate}/${p.partition}`
        if (p.state !== 'ready') reasons.push(`partition ${where} is ${p.state}${p.error ? `: ${p.error.message}` : ''}`)
        else if (options.maxCommandLag !== undefined && (p.lag ?? 0) > options.maxCommandLag) {
          reasons.push(`partition ${where} has ${plural(p.lag ?? 0, 'command')} waiting (more than ${options.maxCommandLag})`)
        }
      }
      for (const { view, runs } of readSide.list()) {
        if (!runs) continue
        let projection: Awaited<ReturnType<ProjectionView['status']>>
        try {
          projection = await view.status()
        } catch (error) {
          reasons.push(`read model ${view.name}: its status cannot be read (${messageOf(error)})`)
          continue
        }
        if (projection.kind !== 'external' && (!projection.live || projection.live.version < projection.version)) {
          reasons.push(`read model ${view.name} has no live generation of version ${projection.version} yet`)
        }
        for (const lane of projection.lanes) {
          if (lane.state === 'failed') {
            reasons.push(`read model ${view.name}: partition ${lane.aggregate}/${lane.partition} failed${lane.error ? `: ${lane.error.message}` : ''}`)
          }
        }
        if (options.maxProjectionLag !== undefined && projection.lag > options.maxProjectionLag) {
          reasons.push(`read model ${view.name} has ${plural(projection.lag, 'event')} to apply (more than ${options.maxProjectionLag})`)
        }
      }
      return { ready: reasons.length === 0, reasons }
    },
    close() {
      // Every call, even one made while an earlier one is still stopping, waits for the same close.
      closing ??= (async () => {
        state = 'closing'
        closingSignal.abort()
        try {
          await readSide.stop().catch((error: unknown) => logger.warn('stopping read models failed', { error }))
          await transport.stopProcessing()
        } finally {
          await Promise.allSettled([transport.close(), store.close()])
          state = 'closed'
        }
      })()
      return closing
    },
  }
}

async function embeddedDriver(): Promise<Driver> {
  // Resolved at run time so core never depends on a driver; the embedded one is the default.
  const specifier = '@esk/memory'
  try {
    const memory = (await import(specifier)) as { memoryDriver: () => Driver }
    return memory.memoryDriver()
  } catch (error) {
    throw new ConfigurationError(
      `no driver given and the embedded driver could not be loaded (${(error as Error).message}); ` +
        `install @esk/memory, or pass driver: { transport, store }`,
    )
  }
}

function describe(error: unknown): { code?: string; message: string } {
  const code = (error as { code?: unknown } | undefined)?.code
  return { ...(typeof code === 'string' && { code }), message: messageOf(error) }
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}

function checkTimeout(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigurationError(`${name} must be a positive number of milliseconds, got ${String(value)}`)
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>
}

/** A process-unique reply address for outcome channels. */
export function newClientAddress(): string {
  return randomUUID()
}
