import { randomUUID } from 'node:crypto'
import { ClosedError, ErrorCode, ProjectionFailedError, UnavailableError, errorToPayload, hasCode, type EskError } from '../errors.js'
import type { StoredEvent } from '../records.js'
import type { StreamSpec } from '../ports.js'
import { messageOf } from '../runtime.js'
import type { Telemetry } from '../telemetry.js'
import { sleep } from '../util.js'
import type { EventMeta, HandlerEntry, ReadModelSpec } from './model.js'
import type { LaneState } from './observe.js'
import {
  laneOf,
  type EventFeedHandle,
  type GenerationInfo,
  type ProjectionDeadLetter,
  type ProjectionStore,
} from './ports.js'
import { StagedView, ViewReadFailed, type HashWriter, type SortedSetWriter, type ViewStore } from './view.js'

/** Conflicting batches (another partition changed a value read) handled again before giving up for now. */
const MAX_CONFLICTS = 50

/** An event decoded for its handler. */
export interface Decoded {
  entry: HandlerEntry
  event: object
  meta: EventMeta
}

/** What a lane needs from the read model it belongs to. */
export interface LaneHost {
  readonly spec: ReadModelSpec
  readonly store: ProjectionStore | undefined
  /** The generation lanes of this read model open on now (live, or the one built for this version). */
  resolve(): Promise<GenerationInfo>
  /** Where to start: the stored position, checked against the log (see `onTruncated`). */
  startAt(stream: StreamSpec, partition: number, stored: number | undefined, generation: GenerationInfo | undefined): Promise<number>
  /** The event decoded for this read model's handler, or undefined when it has none for its type. */
  decode(stream: StreamSpec, partition: number, event: StoredEvent): Decoded | undefined
  laneState(stream: StreamSpec, partition: number, state: LaneState, error?: unknown): void
  parked(deadLetter: ProjectionDeadLetter): void
  /** A write of the lane succeeded, with `count` events handled (rebuild progress; clears a failure streak). */
  applied(stream: StreamSpec, partition: number, count: number): void
  /** Traces of event handling, when on. */
  readonly telemetry?: Telemetry | undefined
}

type Attempt = { ok: true; handled: number } | { ok: false; error: unknown; attempts: number }

/**
 * The consuming side of one partition of a read model: takes the lane, starts at its stored position,
 * and applies deliveries in order, one at a time.
 */
abstract class LaneBase implements EventFeedHandle {
  position = 0
  protected closed = false
  /** Aborted by close or by the lease: ends backoffs at once. */
  protected readonly stopping = new AbortController()
  private tail: Promise<void> = Promise.resolve()
  protected readonly lane: string

  constructor(
    protected readonly host: LaneHost,
    readonly stream: StreamSpec,
    readonly partition: number,
    protected readonly signal: AbortSignal,
  ) {
    this.lane = laneOf(stream.aggregate, partition)
    signal.addEventListener('abort', this.forward, { once: true })
  }

  private readonly forward = (): void => this.stopping.abort()

  /** Lets go of the lease's signal: for a lane that failed to open, or once closed. */
  dispose(): void {
    this.signal.removeEventListener('abort', this.forward)
  }

  /** Takes the lane and finds where to start; throws when it cannot be read here (the transport retries). */
  abstract open(): Promise<void>

  /** Applies events (all of them at or after `position`), and moves the position to `to`. */
  protected abstract apply(events: StoredEvent[], to: number): Promise<void>

  deliver(events: StoredEvent[], next: number): Promise<void> {
    const run = this.tail.then(async () => {
      const fresh = events.filter((e) => e.offset >= this.position)
      const max = this.host.spec.maxBatchSize
      if (fresh.length === 0) {
        this.assertOpen()
        if (next > this.position) await this.apply([], next)
        return
      }
      for (let i = 0; i < fresh.length; i += max) {
        this.assertOpen()
        const chunk = fresh.slice(i, i + max)
        const end = chunk[chunk.length - 1]!.offset + 1
        const traced = this.host.telemetry?.delivery(this.host.spec.name, this.stream, this.partition, chunk)
        const applying = this.stubborn(() => this.apply(chunk.filter((e) => e.offset >= this.position), i + max >= fresh.length ? Math.max(next, end) : end))
        await (traced ? applying.then(() => traced.end(), (error: unknown) => (traced.end(error), Promise.reject(error))) : applying)
      }
    })
    this.tail = run.catch(() => undefined)
    return run
  }

  async close(): Promise<void> {
    this.closed = true
    this.stopping.abort()
    this.dispose()
    await this.tail
    this.host.laneState(this.stream, this.partition, 'closed')
  }

  /**
   * Applies, and while an event keeps failing (`onFailure: 'stop'`), stays on it: the lane reports
   * `failed` and tries again with backoff, never going past it, until it succeeds or is closed.
   */
  private async stubborn(apply: () => Promise<void>): Promise<void> {
    for (let failures = 0; ; failures++) {
      try {
        await apply()
        if (failures > 0) this.host.laneState(this.stream, this.partition, 'running')
        return
      } catch (error) {
        if (!hasCode(error, ErrorCode.ProjectionFailed)) throw error
        await sleep(Math.min(250 * 2 ** failures, 30_000), this.stopping.signal)
        this.assertOpen()
      }
    }
  }

  protected assertOpen(): void {
    if (this.closed || this.signal.aborted) {
      throw new ClosedError(`lane ${this.lane} of '${this.host.spec.name}'`)
    }
  }

  /** Calls a handler at most `maxAttempts` times; a failure of the store itself is thrown, not counted. */
  protected async attempt(call: (attempt: number) => Promise<void>, undo?: () => void): Promise<Attempt> {
    const { maxAttempts } = this.host.spec
    let last: unknown
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      try {
        await call(attempt)
        return { ok: true, handled: 1 }
      } catch (error) {
        undo?.()
        if (error instanceof ViewReadFailed || hasCode(error, ErrorCode.Fenced) || hasCode(error, ErrorCode.Closed)) throw error
        last = error
        if (attempt < maxAttempts) await sleep(10 * 2 ** attempt, this.stopping.signal)
        this.assertOpen()
      }
    }
    return { ok: false, error: last, attempts: maxAttempts }
  }

  /**
   * Runs `work` with the read model's handler timeout; a late handler is abandoned. A handler that
   * returns synchronously cannot be interrupted anyway, so only a promise is raced with the timer.
   */
  protected async inTime(work: () => unknown, what: string): Promise<void> {
    const result = work()
    if (typeof (result as PromiseLike<unknown> | undefined)?.then !== 'function') return
    const running = Promise.resolve(result)
    // An abandoned handler may still fail later; that is already counted.
    running.catch(() => undefined)
    const ms = this.host.spec.handlerTimeoutMs
    let timer: ReturnType<typeof setTimeout> | undefined
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not return within ${ms} ms (handlerTimeoutMs)`)), ms)
    })
    try {
      await Promise.race([running, late])
    } finally {
      clearTimeout(timer)
    }
  }

  protected failed(event: StoredEvent, error: unknown, attempts: number): ProjectionFailedError {
    return this.stopped(
      new ProjectionFailedError(
        `projection '${this.host.spec.name}' cannot handle ${event.type} at ${this.lane}@${event.offset} ` +
          `(aggregate ${event.aggregateId}, version ${event.version}) after ${attempts} attempt(s): ${messageOf(error)}. ` +
          `The partition waits on this event and retries it with backoff; fix the handler, or set onFailure: 'park'`,
        { projection: this.host.spec.name, aggregate: this.stream.aggregate, partition: this.partition, offset: event.offset, type: event.type },
        error,
      ),
    )
  }

  /** Reports the lane stopped on `failure`, and returns it to be thrown. */
  protected stopped(failure: ProjectionFailedError): ProjectionFailedError {
    this.host.laneState(this.stream, this.partition, 'failed', failure)
    return failure
  }

  protected deadLetter(event: StoredEvent, error: unknown, attempts: number): ProjectionDeadLetter {
    return {
      aggregate: this.stream.aggregate,
      partition: this.partition,
      offset: event.offset,
      type: event.type,
      aggregateId: event.aggregateId,
      version: event.version,
      payload: event.payload,
      error: payloadOf(error),
      attempts,
      parkedAt: Date.now(),
    }
  }

  protected decode(event: StoredEvent): Decoded | undefined | { error: unknown } {
    try {
      return this.host.decode(this.stream, this.partition, event)
    } catch (error) {
      return { error }
    }
  }
}

/** A lane of a projection kept in a {@link ProjectionStore}: its changes and position are written together. */
export class ViewLane extends LaneBase {
  private readonly token = randomUUID()
  private generation = 0
  /** The position as stored (undefined until the lane's first write). */
  private stored: number | undefined

  constructor(host: LaneHost, stream: StreamSpec, partition: number, signal: AbortSignal, private readonly pinned?: GenerationInfo) {
    super(host, stream, partition, signal)
  }

  async open(): Promise<void> {
    this.host.laneState(this.stream, this.partition, 'opening')
    const store = this.host.store!
    const generation = this.pinned ?? (await this.host.resolve())
    this.generation = generation.id
    this.stored = await store.acquire(this.host.spec.name, generation.id, this.lane, this.token)
    this.position = await this.host.startAt(this.stream, this.partition, this.stored, this.pinned ? undefined : generation)
    this.host.laneState(this.stream, this.partition, 'running')
  }

  protected async apply(events: StoredEvent[], to: number): Promise<void> {
    const { spec } = this.host
    const store = this.host.store!
    // Events whose failure is already decided in this delivery (their changes cannot be applied).
    const decided = new Map<number, { error: unknown; attempts: number }>()
    for (let round = 0; ; round++) {
      this.assertOpen()
      const view = new StagedView((reads) => store.read(spec.name, this.generation, reads))
      const parked: ProjectionDeadLetter[] = []
      let stop: { index: number; error: unknown; attempts: number } | undefined
      let handled = 0
      for (let i = 0; i < events.length; i++) {
        view.current = i
        const event = events[i]!
        const known = decided.get(event.offset)
        const result: Attempt = known ? { ok: false, ...known } : await this.handle(event, view)
        if (result.ok) {
          handled += result.handled
          continue
        }
        if (spec.onFailure === 'park') {
          parked.push(this.deadLetter(event, result.error, result.attempts))
          continue
        }
        stop = { index: i, error: result.error, attempts: result.attempts }
        break
      }
      const upTo = stop ? events[stop.index]!.offset : to
      if (upTo > this.position || view.changes.length > 0 || parked.length > 0) {
        const result = await store.apply(spec.name, this.generation, this.lane, this.token, {
          from: this.stored,
          to: upTo,
          changes: view.changes,
          guards: view.guards,
          deadLetters: parked,
        })
        if (result.status === 'conflict') {
          if (round >= MAX_CONFLICTS) {
            throw new UnavailableError(
              `projection '${spec.name}' lane ${this.lane}: values its handlers read kept changing under it ` +
                `(${MAX_CONFLICTS} attempts); it is retried shortly. Write values shared by several partitions with incr`,
              { projection: spec.name, lane: this.lane },
            )
          }
          continue
        }
        if (result.status === 'invalid') {
          const event = events[view.owners[result.change]!]!
          decided.set(event.offset, { error: new Error(`the store refused its change: ${result.reason}`), attempts: 1 })
          continue
        }
        this.stored = this.position = upTo
        for (const letter of parked) this.host.parked(letter)
        this.host.applied(this.stream, this.partition, handled)
      }
      if (stop) throw this.failed(events[stop.index]!, stop.error, stop.attempts)
      return
    }
  }

  private async handle(event: StoredEvent, view: StagedView): Promise<Attempt> {
    const decoded = this.decode(event)
    if (decoded === undefined) return { ok: true, handled: 0 }
    if ('error' in decoded) return { ok: false, error: decoded.error, attempts: 1 }
    let mark = view.mark()
    return this.attempt(
      async () => {
        mark = view.mark()
        const gate = { open: true }
        try {
          await this.inTime(
            () => decoded.entry.call(decoded.event, decoded.meta, gated(view, gate)),
            `handler of ${decoded.entry.type} in projection '${this.host.spec.name}'`,
          )
        } finally {
          // A handler abandoned on timeout must not stage anything later.
          gate.open = false
        }
      },
      () => view.rollback(mark),
    )
  }
}

/** A lane of a subscription: runs side effects, then stores the position (at least once per event). */
export class SubscriptionLane extends LaneBase {
  private readonly token = randomUUID()
  private generation = 0
  private stored: number | undefined

  async open(): Promise<void> {
    this.host.laneState(this.stream, this.partition, 'opening')
    const generation = await this.host.resolve()
    this.generation = generation.id
    this.stored = await this.host.store!.acquire(this.host.spec.name, generation.id, this.lane, this.token)
    this.position = await this.host.startAt(this.stream, this.partition, this.stored, generation)
    this.host.laneState(this.stream, this.partition, 'running')
  }

  protected async apply(events: StoredEvent[], to: number): Promise<void> {
    for (const event of events) {
      this.assertOpen()
      const decoded = this.decode(event)
      if (decoded === undefined) continue
      const result: Attempt =
        'error' in decoded
          ? { ok: false, error: decoded.error, attempts: 1 }
          : await this.attempt(() =>
              this.inTime(
                () => decoded.entry.call(decoded.event, decoded.meta, undefined),
                `handler of ${decoded.entry.type} in subscription '${this.host.spec.name}'`,
              ),
            )
      if (result.ok) {
        await this.store(event.offset + 1, [])
        continue
      }
      if (this.host.spec.onFailure === 'park') {
        const letter = this.deadLetter(event, result.error, result.attempts)
        await this.store(event.offset + 1, [letter])
        this.host.parked(letter)
        continue
      }
      await this.store(event.offset, [])
      throw this.failed(event, result.error, result.attempts)
    }
    await this.store(to, [])
  }

  private async store(to: number, deadLetters: ProjectionDeadLetter[]): Promise<void> {
    if (to <= this.position && deadLetters.length === 0) return
    await this.host.store!.apply(this.host.spec.name, this.generation, this.lane, this.token, {
      from: this.stored,
      to,
      changes: [],
      guards: [],
      deadLetters,
    })
    this.stored = this.position = to
    this.host.applied(this.stream, this.partition, 1)
  }
}

/** A lane of a projection whose state and positions the application keeps in its own store. */
export class ExternalLane extends LaneBase {
  async open(): Promise<void> {
    this.host.laneState(this.stream, this.partition, 'opening')
    const [stored] = await this.host.spec.external!.loadPositions([{ aggregate: this.stream.aggregate, partition: this.partition }])
    if (stored !== undefined && !(Number.isSafeInteger(stored) && stored >= 0)) {
      throw new ProjectionFailedError(
        `loadPositions of '${this.host.spec.name}' returned ${String(stored)} for ${this.lane}; return the stored offset (an integer >= 0) or undefined`,
      )
    }
    this.position = await this.host.startAt(this.stream, this.partition, stored, undefined)
    this.host.laneState(this.stream, this.partition, 'running')
  }

  protected async apply(events: StoredEvent[], to: number): Promise<void> {
    const delivered: Array<{ event: object; meta: EventMeta }> = []
    for (const event of events) {
      const decoded = this.decode(event)
      if (decoded === undefined) continue
      if ('error' in decoded) throw this.failed(event, decoded.error, 1)
      delivered.push({ event: decoded.event, meta: decoded.meta })
    }
    const batch = { aggregate: this.stream.aggregate, partition: this.partition, from: this.position, to, events: delivered }
    const result = await this.attempt(() =>
      this.inTime(() => this.host.spec.external!.handleBatch(batch), `handleBatch of '${this.host.spec.name}'`),
    )
    if (!result.ok) {
      throw this.stopped(
        new ProjectionFailedError(
          `handleBatch of '${this.host.spec.name}' failed for ${this.lane} from ${batch.from} to ${to} after ${result.attempts} ` +
            `attempt(s): ${messageOf(result.error)}. The partition waits on this batch and retries it with backoff`,
          { projection: this.host.spec.name, aggregate: this.stream.aggregate, partition: this.partition, from: batch.from, to },
          result.error,
        ),
      )
    }
    this.position = to
    this.host.applied(this.stream, this.partition, delivered.length)
  }
}

/** The view a handler gets: the batch's view while `gate` is open, refused after (a handler abandoned on timeout). */
function gated(view: StagedView, gate: { open: boolean }): ViewStore {
  const check = (): void => {
    if (!gate.open) throw new Error('this handler call was abandoned (handlerTimeoutMs); its view is closed')
  }
  const wrap = <T extends object>(target: T): T =>
    new Proxy(target, {
      get(object, property, receiver) {
        const value = Reflect.get(object, property, receiver) as unknown
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          check()
          const result = (value as (...a: unknown[]) => unknown).apply(object, args)
          return property === 'hash' || property === 'sortedSet' ? wrap(result as HashWriter | SortedSetWriter) : result
        }
      },
    })
  return wrap(view as ViewStore)
}

function payloadOf(error: unknown): ProjectionDeadLetter['error'] {
  if (typeof (error as EskError | undefined)?.code === 'string') return errorToPayload(error as EskError)
  return { code: ErrorCode.ProjectionFailed, message: messageOf(error) }
}
