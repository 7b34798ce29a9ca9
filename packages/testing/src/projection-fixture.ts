import { isDeepStrictEqual } from 'node:util'
import {
  ConfigurationError,
  ErrorCode,
  hasCode,
  type Class,
  type Logger,
  type ProjectionDeadLetter,
  type ReadModel,
  type ViewDump,
  type ViewReader,
} from '@esk/core'
import {
  AggregateRuntime,
  InMemoryProjectionStore,
  Observers,
  ReadModelRunner,
  partitionFor,
  readModelSpec,
  type StreamSpec,
} from '@esk/core/driver'
import { MemoryBackend } from '@esk/memory'
import { MemoryTransport } from '@esk/memory/driver'
import { FixtureMismatch } from './fixture.js'

/** An event given to a projection fixture, with where it comes from. A bare event object stands for `{ event }`. */
export interface GivenEvent {
  event: object
  /** Its aggregate's id. Default `id-1`. */
  aggregateId?: string
  /** When it was written (the handler's `meta.timestamp`). Default: 2024-01-01T00:00:00Z plus one second per event. */
  timestamp?: number | Date
}

/** What a projection built from the given events. */
export interface ProjectionFixtureResult {
  /** Everything the view holds, decoded (the same form as {@link ProjectionStep.then}'s expectation). */
  state: ViewDump
  /** Events parked by `onFailure: 'park'`. */
  deadLetters: ProjectionDeadLetter[]
  /** Reads of the view, as `app.projection(p)` offers them. */
  view: ViewReader
}

/** Options of {@link projectionFixture}. */
export interface ProjectionFixtureOptions {
  /** The aggregate classes whose events the projection handles (they name the event streams). */
  aggregates: Class[]
  /** Partitions per aggregate type; ids are spread over them as on a real log. Default 1. */
  partitions?: number
}

/** The expected state of a view: every section given must equal the view's; a missing one must be empty. */
export type ExpectedView = Partial<ViewDump>

const BASE_TIME = Date.UTC(2024, 0, 1)

/** The events a projection is given, and what it must build from them. */
export class ProjectionStep {
  private result: Promise<ProjectionFixtureResult> | undefined

  constructor(
    private readonly model: ReadModel,
    private readonly options: ProjectionFixtureOptions,
    private readonly events: ReadonlyArray<object | GivenEvent>,
  ) {}

  /** Builds the view once, through the runtime a running application uses. */
  run(): Promise<ProjectionFixtureResult> {
    this.result ??= build(this.model, this.options, this.events)
    return this.result
  }

  /**
   * Checks the view: against an expected state (`values`, `hashes`, `sortedSets`), or with a
   * function of the result. Rejects with {@link FixtureMismatch} when they differ.
   */
  then<R1 = ProjectionFixtureResult, R2 = never>(
    expected?: ExpectedView | ((value: ProjectionFixtureResult) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2 | ProjectionFixtureResult> {
    if (typeof expected === 'function' || expected === undefined || expected === null) {
      return this.run().then(expected ?? undefined, onRejected ?? undefined)
    }
    return this.run().then((result) => {
      const wanted: ViewDump = { values: {}, hashes: {}, sortedSets: {}, ...expected }
      if (!isDeepStrictEqual(plain(result.state), plain(wanted))) {
        throw new FixtureMismatch(`the view differs:\n  expected ${JSON.stringify(wanted)}\n  built    ${JSON.stringify(result.state)}`)
      }
      return result
    })
  }
}

/** A projection under test, without any driver. */
export class ProjectionFixture {
  constructor(
    private readonly model: ReadModel,
    private readonly options: ProjectionFixtureOptions,
  ) {}

  /** The events the projection reads, in log order. */
  given(events: ReadonlyArray<object | GivenEvent>): ProjectionStep {
    return new ProjectionStep(this.model, this.options, events)
  }
}

/**
 * Starts a given/then test of a projection (a `@Projection` class or a `defineProjection`):
 * `await projectionFixture(ByOwner, { aggregates: [Account] }).given([new AccountOpened('ada', 10)]).then({ hashes: ... })`.
 * Events go through the same serialisation and handlers a running application uses; a handler that
 * keeps failing with `onFailure: 'stop'` fails the test with its error.
 */
export function projectionFixture(model: ReadModel, options: ProjectionFixtureOptions): ProjectionFixture {
  return new ProjectionFixture(model, options)
}

async function build(model: ReadModel, options: ProjectionFixtureOptions, entries: ReadonlyArray<object | GivenEvent>): Promise<ProjectionFixtureResult> {
  const spec = readModelSpec(model)
  if (spec.kind !== 'projection') throw new ConfigurationError(`the projection fixture tests projections; '${spec.name}' is a ${spec.kind}`)
  const partitions = options.partitions ?? 1
  const runtimes = options.aggregates.map((cls) => new AggregateRuntime(cls as Class<object>))
  const streams = new Map<string, StreamSpec>(runtimes.map((r) => [r.model.name, { aggregate: r.model.name, partitions }]))
  const producers = new Map<string, StreamSpec[]>()
  for (const runtime of runtimes) {
    for (const type of runtime.model.events.keys()) producers.set(type, [...(producers.get(type) ?? []), streams.get(runtime.model.name)!])
  }
  const backend = new MemoryBackend()
  const transport = new MemoryTransport(backend)
  await transport.provision([...streams.values()])
  const versions = new Map<string, number>()
  entries.forEach((entry, i) => {
    const given = isGiven(entry) ? entry : { event: entry }
    const runtime = runtimes.find((r) => r.model.eventsByClass.has(given.event.constructor as Class))
    if (!runtime) {
      throw new FixtureMismatch(`${given.event.constructor.name} is not an event of any aggregate given in options.aggregates`)
    }
    let encoded
    try {
      encoded = runtime.roundTripEvents([given.event]).encoded[0]!
    } catch (error) {
      if (hasCode(error, ErrorCode.HandlerFailed)) throw new FixtureMismatch(`the given events cannot be used: ${error.message}`)
      throw error
    }
    const aggregateId = given.aggregateId ?? 'id-1'
    const key = `${runtime.model.name}/${aggregateId}`
    const version = (versions.get(key) ?? 0) + 1
    versions.set(key, version)
    const log = backend.log(runtime.model.name, partitionFor(aggregateId, partitions))
    const timestamp = given.timestamp === undefined ? BASE_TIME + i * 1000 : Number(given.timestamp)
    log.events.push({
      aggregateId,
      type: encoded.type,
      version,
      commandId: `given-${i + 1}`,
      commandPosition: i,
      payload: encoded.payload,
      offset: log.events.length,
      timestamp,
    })
  })

  const closing = new AbortController()
  const observers = new Observers()
  let failure: unknown
  observers.on('projection', (o) => {
    if (o.kind === 'lane' && o.state === 'failed') failure ??= o.error
  })
  const store = new InMemoryProjectionStore()
  const runner = new ReadModelRunner(spec, {
    transport,
    store,
    observers,
    logger: silent,
    producers,
    pollMs: 60_000,
    readTimeoutMs: 10_000,
    closing: closing.signal,
  })
  await runner.start()
  try {
    const ready = runner.view.ready({ timeoutMs: 10_000 })
    const failed = new Promise<never>((_, reject) => {
      const check = setInterval(() => {
        if (failure === undefined) return
        clearInterval(check)
        reject(new FixtureMismatch(`the projection stopped on an event: ${(failure as Error).message ?? String(failure)}`))
      }, 5)
      void ready.finally(() => clearInterval(check)).catch(() => undefined)
    })
    await Promise.race([ready, failed])
    const holder = runner.store as InMemoryProjectionStore
    return {
      state: holder.dump(spec.name),
      deadLetters: await runner.view.deadLetters(),
      view: { get: runner.view.get, hash: runner.view.hash, sortedSet: runner.view.sortedSet },
    }
  } finally {
    closing.abort()
    await runner.stop()
    await transport.close()
  }
}

function isGiven(entry: object | GivenEvent): entry is GivenEvent {
  return Object.getPrototypeOf(entry) === Object.prototype && typeof (entry as GivenEvent).event === 'object' && (entry as GivenEvent).event !== null
}

/** Plain data for comparison (objects without prototype compare equal to literals). */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown
}

const silent: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined }
