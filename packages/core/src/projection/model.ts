import 'reflect-metadata'
import { ConfigurationError } from '../errors.js'
import { eventTypeOf, type Class } from '../metadata.js'
import type { Lane } from './ports.js'
import type { ViewStore } from './view.js'

// Own metadata keys, read with getOwnMetadata, so a subclass never inherits a persisted name.
const PROJECTION = Symbol.for('esk:projection')
const ON = Symbol.for('esk:projection-handlers')

/** Where a projection lives: `local` splits partitions between instances; `global` gives every instance every partition. */
export type ProjectionScope = 'local' | 'global'

/** What happens to an event whose handler still fails after `maxAttempts`. */
export type FailurePolicy = 'stop' | 'park'

/** Settings shared by every kind of read model. */
export interface ReadModelOptions {
  /**
   * Persisted name: it names the consumer group and the store's keys, so never change it once data
   * exists. Letters, digits, '-' and '_', starting with a letter, at most 63.
   */
  name: string
  /**
   * Version of the handlers' meaning. Bump it when handlers change what they write: the new version
   * is built from the first event beside the live one and replaces it once caught up. Default 1.
   */
  version?: number
  /** Attempts at an event whose handler throws, before `onFailure` applies. Default 3. */
  maxAttempts?: number
  /**
   * After `maxAttempts`: `stop` keeps the partition on that event (reported as failed, retried with
   * backoff, nothing after it applied), `park` records it as a dead letter with the error and goes
   * on. Default `stop`: a view never silently differs from the log.
   */
  onFailure?: FailurePolicy
  /** Longest one handler call may take before it counts as a failed attempt, ms. Default 10000. */
  handlerTimeoutMs?: number
  /** Most events applied in one atomic store write. Default 500. */
  maxBatchSize?: number
  /**
   * A stored position the log no longer holds (events deleted below it, or the topic recreated
   * under it): `fail` stops the partition and reports `ESK_EVENTS_TRUNCATED` until an operator
   * resets or rebuilds; `rebuild` resets the projection and builds it again from what the log holds.
   * Default `fail`.
   */
  onTruncated?: 'fail' | 'rebuild'
}

/** Options of {@link Projection} and {@link defineProjection}. */
export interface ProjectionOptions extends ReadModelOptions {
  /** Default `local`. */
  scope?: ProjectionScope
}

/** Where an event is in the log, and what it says about itself. */
export interface EventMeta {
  /** Aggregate type name. */
  aggregate: string
  aggregateId: string
  /** The aggregate's version after this event. */
  version: number
  /** Persisted event type name. */
  type: string
  partition: number
  /** Offset in the event log partition. */
  offset: number
  /** When the event was written, ms since the epoch, if the log records it. */
  timestamp: number | undefined
  /** The command that produced it. */
  commandId: string
  /**
   * A key unique to this event and the same on every delivery and every rebuild:
   * `<aggregate>/<aggregateId>/<version>`. Pass it as the idempotency key of side effects.
   */
  eventId: string
}

/** A handler of a projection: changes the view through `store`; must not have other side effects. */
export type ProjectionHandler<E> = (event: E, meta: EventMeta, store: ViewStore) => void | Promise<void>

/** A handler of a subscription: performs a side effect, at least once per event. */
export type SubscriptionHandler<E> = (event: E, meta: EventMeta) => void | Promise<void>

/** One event class and its handler, built with {@link on}. */
export interface HandlerBinding<E> {
  readonly event: Class<E>
  readonly handle: ProjectionHandler<E>
}

/** A binding of any event class, as lists of handlers hold them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyHandlerBinding = HandlerBinding<any>

/**
 * Binds a handler to an event class, for {@link defineProjection} (`(event, meta, store)`) and
 * {@link defineSubscription} (`(event, meta)`: a subscription has no store).
 */
export function on<E>(event: Class<E>, handle: ProjectionHandler<E>): HandlerBinding<E> {
  return { event, handle }
}

/** A projection declared as an object of handlers. */
export interface ProjectionDefinition {
  readonly kind: 'projection'
  readonly options: ProjectionOptions
  readonly handlers: ReadonlyArray<AnyHandlerBinding>
}

/** A subscription: side effects for events, at least once, in partition order, with a stored position. */
export interface SubscriptionDefinition {
  readonly kind: 'subscription'
  readonly options: ReadModelOptions
  readonly handlers: ReadonlyArray<AnyHandlerBinding>
}

/** One delivered event of an {@link ExternalBatch}. */
export interface DeliveredEvent {
  event: object
  meta: EventMeta
}

/**
 * A batch for a projection that keeps its state in a store of its own: the events of one lane from
 * `from` (the position it stored last) to `to` (the position to store with their effects).
 */
export interface ExternalBatch extends Lane {
  from: number
  to: number
  events: DeliveredEvent[]
}

/** Options of {@link externalProjection}. */
export interface ExternalProjectionOptions extends ProjectionOptions {
  /** Event classes to deliver; other events only move the position. */
  events: Class[]
  /**
   * The positions stored with the state, per lane: the offset of the next event to read, or
   * undefined when none is stored (the lane starts at the log's first event).
   */
  loadPositions(lanes: Lane[]): Promise<Array<number | undefined>>
  /**
   * Applies a batch and stores `to` as the lane's position in the same transaction. To fence a
   * writer that lost the partition, update the position only where it still equals `from`, and
   * throw when it does not (the batch is then delivered again from the stored position).
   */
  handleBatch(batch: ExternalBatch): Promise<void>
}

/** A projection whose state and positions live in the application's own store (a SQL database, say). */
export interface ExternalDefinition {
  readonly kind: 'external'
  readonly options: ExternalProjectionOptions
}

/** Anything `createEsk({ projections })` takes: a decorated class or a definition. */
export type ReadModel = Class | ProjectionDefinition | SubscriptionDefinition | ExternalDefinition

/** A read model with settings of its own. */
export interface ReadModelRegistration {
  projection: ReadModel
  /**
   * Build it in this process (join its consumer group, or read every partition when global).
   * False only reads it (`app.projection(p)`), as a web tier would. Default true.
   */
  run?: boolean
}

/** Declares a projection class; its methods decorated with {@link On} handle events. */
export function Projection(options: ProjectionOptions): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(PROJECTION, options, target)
  }
}

/** Marks a method of a {@link Projection} class as the handler of an event class: `(event, meta, store)`. */
export function On(event: Class): MethodDecorator {
  return (target, method) => {
    let list = Reflect.getOwnMetadata(ON, target.constructor) as Array<{ event: Class; method: string }> | undefined
    if (!list) {
      list = []
      Reflect.defineMetadata(ON, list, target.constructor)
    }
    list.push({ event, method: String(method) })
  }
}

/** A projection from handlers: `defineProjection({ name, handlers: [on(Opened, (e, meta, store) => ...)] })`. */
export function defineProjection(
  options: ProjectionOptions & { handlers: ReadonlyArray<AnyHandlerBinding> },
): ProjectionDefinition {
  const { handlers, ...rest } = options
  return Object.freeze({ kind: 'projection', options: rest, handlers: [...handlers] })
}

/** A subscription from handlers: `defineSubscription({ name, handlers: [on(Opened, async (e, meta) => ...)] })`. */
export function defineSubscription(
  options: ReadModelOptions & { handlers: ReadonlyArray<AnyHandlerBinding> },
): SubscriptionDefinition {
  const { handlers, ...rest } = options
  return Object.freeze({ kind: 'subscription', options: rest, handlers: [...handlers] })
}

/** A projection whose state and positions the application stores itself; see {@link ExternalProjectionOptions}. */
export function externalProjection(options: ExternalProjectionOptions): ExternalDefinition {
  return Object.freeze({ kind: 'external', options: { ...options } })
}

/** A read model's handlers by persisted event type name. */
export interface HandlerEntry {
  type: string
  cls: Class
  /** Calls the handler; `store` is absent for subscriptions and external projections. */
  call(event: object, meta: EventMeta, store: ViewStore | undefined): unknown
}

/** A read model as esk runs it, validated once at start-up. */
export interface ReadModelSpec {
  kind: 'projection' | 'subscription' | 'external'
  name: string
  version: number
  scope: ProjectionScope
  maxAttempts: number
  onFailure: FailurePolicy
  handlerTimeoutMs: number
  maxBatchSize: number
  onTruncated: 'fail' | 'rebuild'
  handlers: Map<string, HandlerEntry>
  external: Pick<ExternalProjectionOptions, 'loadPositions' | 'handleBatch'> | undefined
}

const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/

/** Defaults of {@link ReadModelOptions}, in one place. */
export const READ_MODEL_DEFAULTS = {
  version: 1,
  scope: 'local',
  maxAttempts: 3,
  onFailure: 'stop',
  handlerTimeoutMs: 10_000,
  maxBatchSize: 500,
  onTruncated: 'fail',
} as const

/**
 * Reads and validates a read model's declaration. Every problem is a {@link ConfigurationError}
 * naming the read model and the fix, raised before anything runs.
 */
export function readModelSpec(model: ReadModel): ReadModelSpec {
  if (typeof model === 'function') return classSpec(model)
  if (typeof model !== 'object' || model === null || !('kind' in model)) {
    throw new ConfigurationError(
      `a projection must be a class decorated with @Projection, or made with defineProjection, defineSubscription or externalProjection`,
    )
  }
  const handlers = new Map<string, HandlerEntry>()
  const label = `${model.kind} '${String(model.options?.name)}'`
  if (model.kind === 'external') {
    if (!Array.isArray(model.options.events) || model.options.events.length === 0) {
      throw new ConfigurationError(`${label} names no event classes in 'events'`)
    }
    if (typeof model.options.loadPositions !== 'function' || typeof model.options.handleBatch !== 'function') {
      throw new ConfigurationError(`${label} needs loadPositions and handleBatch functions`)
    }
    for (const cls of model.options.events) addHandler(handlers, label, cls, 'events', () => undefined)
    return settings(model.options, 'external', handlers, label, {
      loadPositions: model.options.loadPositions,
      handleBatch: model.options.handleBatch,
    })
  }
  if (!Array.isArray(model.handlers) || model.handlers.length === 0) {
    throw new ConfigurationError(`${label} has no handlers; add some with on(EventClass, handler)`)
  }
  for (const binding of model.handlers) {
    if (typeof binding?.handle !== 'function') throw new ConfigurationError(`${label} has a handler that is not a function`)
    const handle = binding.handle as (event: object, meta: EventMeta, store: ViewStore | undefined) => unknown
    addHandler(handlers, label, binding.event, 'a handler', (event, meta, store) => handle(event, meta, store))
  }
  if (model.kind === 'subscription' && (model.options as ProjectionOptions).scope === 'global') {
    throw new ConfigurationError(`${label} cannot be global: every instance would perform its side effects`)
  }
  return settings(model.options, model.kind, handlers, label, undefined)
}

function classSpec(cls: Class): ReadModelSpec {
  const options = Reflect.getOwnMetadata(PROJECTION, cls) as ProjectionOptions | undefined
  if (!options) throw new ConfigurationError(`${cls.name} is not a projection: decorate it with @Projection({ name })`)
  const label = `projection ${cls.name}`
  const records = (Reflect.getOwnMetadata(ON, cls) ?? []) as Array<{ event: Class; method: string }>
  if (records.length === 0) throw new ConfigurationError(`${label} has no handlers; decorate methods with @On(EventClass)`)
  // One instance per application: handlers keep no state of their own, the view is in the store.
  let instance: Record<string, (event: object, meta: EventMeta, store: ViewStore | undefined) => unknown> | undefined
  const handlers = new Map<string, HandlerEntry>()
  for (const { event, method } of records) {
    addHandler(handlers, `${label} (method ${method})`, event, `${cls.name}.${method}`, (e, meta, store) => {
      instance ??= new cls() as typeof instance
      return instance![method]!.call(instance, e, meta, store)
    })
  }
  return settings(options, 'projection', handlers, label, undefined)
}

function addHandler(
  handlers: Map<string, HandlerEntry>,
  label: string,
  cls: Class,
  what: string,
  call: HandlerEntry['call'],
): void {
  if (typeof cls !== 'function') throw new ConfigurationError(`${label}: ${what} names something that is not an event class`)
  const type = eventTypeOf(cls)
  if (typeof type !== 'string' || type.length === 0) {
    throw new ConfigurationError(`${label}: ${cls.name} has no @Event('Type') decorator, so its events cannot be recognised`)
  }
  if (handlers.has(type)) throw new ConfigurationError(`${label} handles event type '${type}' twice; keep one handler per event type`)
  handlers.set(type, { type, cls, call })
}

function settings(
  options: ProjectionOptions,
  kind: ReadModelSpec['kind'],
  handlers: Map<string, HandlerEntry>,
  label: string,
  external: ReadModelSpec['external'],
): ReadModelSpec {
  if (typeof options?.name !== 'string' || !NAME_PATTERN.test(options.name)) {
    throw new ConfigurationError(
      `${label}: name '${String(options?.name)}' must start with a letter and use only letters, digits, '-' and '_' (at most 63)`,
    )
  }
  const d = READ_MODEL_DEFAULTS
  const spec: ReadModelSpec = {
    kind,
    name: options.name,
    version: options.version ?? d.version,
    scope: options.scope ?? d.scope,
    maxAttempts: options.maxAttempts ?? d.maxAttempts,
    onFailure: options.onFailure ?? d.onFailure,
    handlerTimeoutMs: options.handlerTimeoutMs ?? d.handlerTimeoutMs,
    maxBatchSize: options.maxBatchSize ?? d.maxBatchSize,
    onTruncated: options.onTruncated ?? d.onTruncated,
    handlers,
    external,
  }
  const positive = (name: 'version' | 'maxAttempts' | 'handlerTimeoutMs' | 'maxBatchSize'): void => {
    const value = spec[name]
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new ConfigurationError(`${label}: ${name} must be a positive integer, got ${String(value)}`)
    }
  }
  positive('version')
  positive('maxAttempts')
  positive('handlerTimeoutMs')
  positive('maxBatchSize')
  if (spec.scope !== 'local' && spec.scope !== 'global') {
    throw new ConfigurationError(`${label}: scope must be 'local' or 'global', got ${String(spec.scope)}`)
  }
  if (spec.onFailure !== 'stop' && spec.onFailure !== 'park') {
    throw new ConfigurationError(`${label}: onFailure must be 'stop' or 'park', got ${String(spec.onFailure)}`)
  }
  if (spec.onTruncated !== 'fail' && spec.onTruncated !== 'rebuild') {
    throw new ConfigurationError(`${label}: onTruncated must be 'fail' or 'rebuild', got ${String(spec.onTruncated)}`)
  }
  if (kind === 'external' && spec.onFailure === 'park') {
    throw new ConfigurationError(`${label}: an external projection handles whole batches, so it can only stop (onFailure: 'stop')`)
  }
  return spec
}
