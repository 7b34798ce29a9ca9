// OpenTelemetry support. `@opentelemetry/api` is an optional peer dependency: it is loaded with a
// dynamic import, and none of its types appear in an exported signature, so an application
// without it type-checks and runs as before. Everything here is reached through the `Telemetry`
// interface below; when the package is absent (or `telemetry: false`) core holds `undefined`
// instead, and the hot path pays one property check per command.
import type * as OtelApi from '@opentelemetry/api'
import { ConfigurationError, ErrorCode, EskError } from './errors.js'
import type { BatchProcessed, Observers, RecoveryProgress } from './observe.js'
import type { StreamSpec, Transport, TransportDestinations } from './ports.js'
import type { CommandEnvelope, CommandRecord, EventToAppend, Outcome, RecordHeaders, StoredEvent } from './records.js'
import type { UndecodableCommand } from './codec.js'

type Api = typeof OtelApi

/** Name of esk's tracer and meter (the instrumentation scope). */
export const TELEMETRY_SCOPE = 'esk'

/**
 * How a command ended on the client, for its span and its duration: its outcome, or the error
 * `save`/`update` threw.
 */
type Settled = { ok: true; version: number } | { ok: false; error: unknown }

/** The client side of one command: its `send` span and its duration. */
export interface CommandTelemetry {
  /** Trace context to send beside the command, or undefined when no trace is recorded. */
  readonly headers: RecordHeaders | undefined
  /** Ends the span and records the duration once `result` settles; returns `result`. */
  settle<R extends { version: number }>(result: Promise<R>): Promise<R>
}

/** What a batch of commands records: a processing span per command, a commit span, outcome counts. */
export interface BatchTelemetry {
  /** Gives each event the trace context of its command's processing span, and starts the commit span. */
  committing(events: EventToAppend[]): void
  /**
   * The batch committed: ends the spans with each command's outcome and counts the outcomes.
   * `outcomes` follows the batch's records; undefined for a duplicate answered with an earlier outcome.
   */
  done(outcomes: ReadonlyArray<Outcome | undefined>): void
  /** The batch failed before its outcomes were final: its spans end with the error. */
  failed(error: unknown): void
}

/** What a read model's delivery of events records: a handling span per event. */
export interface DeliveryTelemetry {
  /** Ends the spans, with the error when the delivery failed. */
  end(error?: unknown): void
}

/** A decoded command record, as the processor has it. */
export interface DecodedRecord {
  record: CommandRecord
  command: CommandEnvelope | UndecodableCommand
}

/** esk's telemetry: traces and metrics through `@opentelemetry/api`. Created by {@link loadTelemetry}. */
export interface Telemetry {
  /** A command leaves `save`/`update`; undefined when neither traces nor metrics record anything. */
  command(stream: StreamSpec, partition: number, envelope: CommandEnvelope): CommandTelemetry | undefined
  /** A processor starts handling a batch; undefined when nothing records. */
  batch(stream: StreamSpec, partition: number, decoded: readonly DecodedRecord[]): BatchTelemetry | undefined
  /** A read model handles events; undefined when no trace is recorded. */
  delivery(model: string, stream: StreamSpec, partition: number, events: readonly StoredEvent[]): DeliveryTelemetry | undefined
  /** Feeds the metrics that come from observations (batches, recoveries). */
  observe(observers: Observers): void
  /** Sources of the observable gauges: partitions held here and read models run here. */
  gauges(sources: GaugeSources): void
}

/** What the observable gauges read when a metric reader collects. */
export interface GaugeSources {
  /** Commands waiting in each partition this process holds. */
  commandLag(): Promise<Array<{ aggregate: string; partition: number; lag: number }>>
  /** Partitions this process holds, by lifecycle state. */
  partitions(): Array<{ state: string }>
  /** Offsets each read model run here still has to read. */
  projectionLag(): Promise<Array<{ projection: string; lag: number }>>
}

/**
 * `telemetry` of `createEsk`: `true` requires `@opentelemetry/api` (a configuration error without
 * it), `false` switches telemetry off, and by default it is on when the package can be loaded.
 */
export type TelemetryOption = boolean

/**
 * Loads `@opentelemetry/api` when it is installed (or required by `option: true`). Returns undefined
 * when telemetry is off or the package is absent.
 */
export async function loadTelemetry(option: TelemetryOption | undefined, transport: Transport): Promise<Telemetry | undefined> {
  if (option === false) return undefined
  // A variable specifier: bundlers and type-checkers of applications without the package leave it alone.
  const specifier = '@opentelemetry/api'
  let api: Api
  try {
    const loaded = (await import(specifier)) as Api & { default?: Api }
    api = loaded.trace ? loaded : (loaded.default as Api)
  } catch (error) {
    if (option === true) {
      throw new ConfigurationError(
        `telemetry: true needs the package @opentelemetry/api, which could not be loaded (${(error as Error).message}); ` +
          `install it beside esk, or leave telemetry unset to use it only when installed`,
      )
    }
    return undefined
  }
  return new OtelTelemetry(api, transport)
}

/** Histogram boundaries in seconds, for command, batch and commit durations. */
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** Histogram boundaries for batch sizes, in commands. */
const SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

interface Instruments {
  provider: OtelApi.MeterProvider
  commands: OtelApi.Counter
  commandDuration: OtelApi.Histogram
  batchSize: OtelApi.Histogram
  batchDuration: OtelApi.Histogram
  commitDuration: OtelApi.Histogram
  events: OtelApi.Counter
  recovered: OtelApi.Counter
}

/** Attributes every messaging span of a log carries. */
function messaging(names: TransportDestinations, destination: string, partition: number, operation: string, type: string): OtelApi.Attributes {
  return {
    'messaging.system': names.system,
    'messaging.destination.name': destination,
    'messaging.destination.partition.id': String(partition),
    'messaging.operation.name': operation,
    'messaging.operation.type': type,
  }
}

/** The error code of an error or an error payload, else its class name. */
function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code
  if (typeof code === 'string') return code
  return error instanceof Error ? error.name : 'unknown'
}

class OtelTelemetry implements Telemetry {
  private readonly tracer: OtelApi.Tracer
  /** The tracer provider the API hands out while no SDK is registered. */
  private readonly noopTracers: OtelApi.TracerProvider
  private readonly noopMeter: OtelApi.Meter
  private instruments: Instruments | undefined
  private readonly names = new Map<string, TransportDestinations>()
  private sources: GaugeSources | undefined
  /** Events replayed so far by each recovery in progress, to count only the new ones. */
  private readonly replayed = new Map<string, number>()

  constructor(
    private readonly api: Api,
    private readonly transport: Transport,
  ) {
    this.tracer = api.trace.getTracer(TELEMETRY_SCOPE)
    this.noopTracers = new api.ProxyTracerProvider().getDelegate()
    this.noopMeter = api.createNoopMeter()
  }

  /** True when an SDK's tracer provider is registered (a cheap check, no allocation). */
  private tracing(): boolean {
    const provider = this.api.trace.getTracerProvider()
    return !(provider instanceof this.api.ProxyTracerProvider) || provider.getDelegate() !== this.noopTracers
  }

  /**
   * The instruments of the registered meter provider, made again when another one is registered
   * (an SDK started after `createEsk`); undefined while none is.
   */
  private meters(): Instruments | undefined {
    const provider = this.api.metrics.getMeterProvider()
    if (this.instruments?.provider === provider) return this.instruments
    const meter = provider.getMeter(TELEMETRY_SCOPE)
    if (meter === this.noopMeter) return undefined
    const seconds = { unit: 's', advice: { explicitBucketBoundaries: SECONDS } }
    this.instruments = {
      provider,
      commands: meter.createCounter('esk.commands', { unit: '{command}', description: 'Commands processed, by outcome' }),
      commandDuration: meter.createHistogram('esk.command.duration', {
        ...seconds,
        description: 'Time from save/update until the outcome arrived, on the client',
      }),
      batchSize: meter.createHistogram('esk.batch.size', {
        unit: '{command}',
        advice: { explicitBucketBoundaries: SIZES },
        description: 'Commands per processed batch',
      }),
      batchDuration: meter.createHistogram('esk.batch.duration', {
        ...seconds,
        description: 'Time to process a batch: load, handle, commit, save',
      }),
      commitDuration: meter.createHistogram('esk.commit.duration', {
        ...seconds,
        description: 'Time of the Kafka transaction (or embedded commit) of a batch',
      }),
      events: meter.createCounter('esk.events', { unit: '{event}', description: 'Events committed by processors' }),
      recovered: meter.createCounter('esk.recovery.events', { unit: '{event}', description: 'Events replayed by recoveries' }),
    }
    const sources = (): GaugeSources | undefined => this.sources
    meter
      .createObservableGauge('esk.command.lag', { unit: '{command}', description: 'Commands waiting in a partition this process holds' })
      .addCallback(async (result) => {
        for (const p of (await sources()?.commandLag()) ?? []) {
          result.observe(p.lag, { 'esk.aggregate.type': p.aggregate, 'messaging.destination.partition.id': String(p.partition) })
        }
      })
    meter
      .createObservableGauge('esk.partitions', { unit: '{partition}', description: 'Partitions this process holds, by state' })
      .addCallback((result) => {
        const counts = new Map<string, number>()
        for (const p of sources()?.partitions() ?? []) counts.set(p.state, (counts.get(p.state) ?? 0) + 1)
        for (const [state, count] of counts) result.observe(count, { 'esk.partition.state': state })
      })
    meter
      .createObservableGauge('esk.projection.lag', { unit: '{event}', description: 'Events a read model run here still has to read' })
      .addCallback(async (result) => {
        for (const p of (await sources()?.projectionLag()) ?? []) result.observe(p.lag, { 'esk.projection.name': p.projection })
      })
    return this.instruments
  }

  private destinations(stream: StreamSpec): TransportDestinations {
    let names = this.names.get(stream.aggregate)
    if (!names) {
      names = this.transport.destinations?.(stream) ?? {
        system: 'esk',
        commands: `${stream.aggregate}.commands`,
        events: `${stream.aggregate}.events`,
      }
      this.names.set(stream.aggregate, names)
    }
    return names
  }

  /** The trace context of `span` as record headers. */
  private headersOf(span: OtelApi.Span): RecordHeaders {
    const carrier: Record<string, string> = {}
    this.api.propagation.inject(this.api.trace.setSpan(this.api.context.active(), span), carrier)
    return carrier
  }

  /** The context a record's headers carry, or the root context when they carry none. */
  private contextOf(headers: RecordHeaders | undefined): OtelApi.Context {
    const root = this.api.ROOT_CONTEXT
    return headers ? this.api.propagation.extract(root, headers) : root
  }

  command(stream: StreamSpec, partition: number, envelope: CommandEnvelope): CommandTelemetry | undefined {
    const tracing = this.tracing()
    const meters = this.meters()
    if (!tracing && !meters) return undefined
    const api = this.api
    const names = this.destinations(stream)
    const started = performance.now()
    const span = tracing
      ? this.tracer.startSpan(`send ${names.commands}`, {
          kind: api.SpanKind.PRODUCER,
          attributes: {
            ...messaging(names, names.commands, partition, 'send', 'send'),
            'messaging.kafka.message.key': envelope.aggregateId,
            'messaging.message.id': envelope.commandId,
            'esk.aggregate.type': stream.aggregate,
            'esk.aggregate.id': envelope.aggregateId,
            'esk.command.type': envelope.type,
            'esk.command.id': envelope.commandId,
            'esk.command.kind': envelope.kind,
          },
        })
      : undefined
    const end = (settled: Settled): void => {
      const outcome = settled.ok ? 'accepted' : rejectedOrFailed(settled.error)
      const code = settled.ok ? undefined : codeOf(settled.error)
      meters?.commandDuration.record((performance.now() - started) / 1000, {
        'esk.aggregate.type': stream.aggregate,
        'esk.command.type': envelope.type,
        'esk.outcome': outcome,
        ...(code !== undefined && { 'esk.error.code': code }),
      })
      if (!span) return
      span.setAttribute('esk.outcome', outcome)
      if (settled.ok) {
        span.setAttribute('esk.aggregate.version', settled.version)
      } else {
        span.setAttributes({ 'esk.error.code': code!, 'error.type': code! })
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: (settled.error as Error | undefined)?.message ?? String(settled.error) })
      }
      span.end()
    }
    return {
      headers: span ? this.headersOf(span) : undefined,
      settle: (result) =>
        result.then(
          (value) => {
            end({ ok: true, version: value.version })
            return value
          },
          (error: unknown) => {
            end({ ok: false, error })
            throw error
          },
        ),
    }
  }

  batch(stream: StreamSpec, partition: number, decoded: readonly DecodedRecord[]): BatchTelemetry | undefined {
    const tracing = this.tracing()
    const meters = this.meters()
    if (!tracing && !meters) return undefined
    const api = this.api
    const names = this.destinations(stream)
    // One processing span per command record, a child of the context its sender put in its headers.
    const spans = new Map<number, OtelApi.Span>()
    if (tracing) {
      for (const { record, command } of decoded) {
        const known = 'error' in command ? undefined : command
        const span = this.tracer.startSpan(
          `process ${names.commands}`,
          {
            kind: api.SpanKind.CONSUMER,
            attributes: {
              ...messaging(names, names.commands, partition, 'process', 'process'),
              ...(names.group !== undefined && { 'messaging.consumer.group.name': names.group }),
              'messaging.kafka.offset': record.position,
              'esk.aggregate.type': stream.aggregate,
              ...(command.aggregateId !== undefined && {
                'messaging.kafka.message.key': command.aggregateId,
                'esk.aggregate.id': command.aggregateId,
              }),
              ...(command.commandId !== undefined && { 'messaging.message.id': command.commandId, 'esk.command.id': command.commandId }),
              ...(known && { 'esk.command.type': known.type, 'esk.command.kind': known.kind }),
            },
          },
          this.contextOf(record.headers),
        )
        spans.set(record.position, span)
      }
    }
    let commit: OtelApi.Span | undefined
    const endAll = (error?: unknown): void => {
      const code = error === undefined ? undefined : codeOf(error)
      for (const span of [...spans.values(), ...(commit ? [commit] : [])]) {
        if (code !== undefined) {
          span.setAttribute('error.type', code)
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: (error as Error | undefined)?.message ?? String(error) })
        }
        span.end()
      }
      spans.clear()
      commit = undefined
    }
    return {
      committing: (events) => {
        if (!tracing) return
        const links: OtelApi.Link[] = []
        let first: OtelApi.Span | undefined
        for (const span of spans.values()) {
          if (!first) first = span
          else links.push({ context: span.spanContext() })
        }
        // A batch of one command shows as one trace; the processing spans of the others are linked.
        commit = this.tracer.startSpan(
          `commit ${names.events}`,
          {
            kind: api.SpanKind.PRODUCER,
            links,
            attributes: {
              ...messaging(names, names.events, partition, 'commit', 'send'),
              'messaging.batch.message_count': events.length,
              'esk.aggregate.type': stream.aggregate,
              'esk.batch.commands': decoded.length,
            },
          },
          first ? api.trace.setSpan(api.ROOT_CONTEXT, first) : api.ROOT_CONTEXT,
        )
        const byPosition = new Map<number, RecordHeaders>()
        for (const event of events) {
          let headers = byPosition.get(event.commandPosition)
          if (!headers) {
            const span = spans.get(event.commandPosition)
            if (!span) continue
            byPosition.set(event.commandPosition, (headers = this.headersOf(span)))
          }
          event.headers = headers
        }
      },
      done: (outcomes) => {
        for (const [i, { record, command }] of decoded.entries()) {
          let outcome: string
          let code: string | undefined
          let version: number | undefined
          if ('error' in command) {
            outcome = 'rejected'
            code = command.error.code
          } else {
            const result = outcomes[i]
            outcome = result ? result.status : 'duplicate'
            if (result?.status === 'rejected') code = result.error.code
            if (result?.status === 'accepted') version = result.version
          }
          meters?.commands.add(1, {
            'esk.aggregate.type': stream.aggregate,
            'esk.outcome': outcome,
            ...(code !== undefined && { 'esk.error.code': code }),
          })
          const span = spans.get(record.position)
          if (!span) continue
          span.setAttribute('esk.outcome', outcome)
          if (version !== undefined) span.setAttribute('esk.aggregate.version', version)
          if (code !== undefined) {
            span.setAttributes({ 'esk.error.code': code, 'error.type': code })
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: `refused: ${code}` })
          }
        }
        endAll()
      },
      failed: (error) => endAll(error),
    }
  }

  delivery(model: string, stream: StreamSpec, partition: number, events: readonly StoredEvent[]): DeliveryTelemetry | undefined {
    if (events.length === 0 || !this.tracing()) return undefined
    const api = this.api
    const names = this.destinations(stream)
    const spans = events.map((event) =>
      this.tracer.startSpan(
        `process ${names.events}`,
        {
          kind: api.SpanKind.CONSUMER,
          attributes: {
            ...messaging(names, names.events, partition, 'process', 'process'),
            'messaging.kafka.offset': event.offset,
            'messaging.kafka.message.key': event.aggregateId,
            'esk.projection.name': model,
            'esk.aggregate.type': stream.aggregate,
            'esk.aggregate.id': event.aggregateId,
            'esk.aggregate.version': event.version,
            'esk.event.type': event.type,
            'esk.command.id': event.commandId,
          },
        },
        this.contextOf(event.headers),
      ),
    )
    return {
      end: (error) => {
        for (const span of spans) {
          if (error !== undefined) {
            const code = codeOf(error)
            span.setAttribute('error.type', code)
            span.setStatus({ code: api.SpanStatusCode.ERROR, message: (error as Error | undefined)?.message ?? String(error) })
          }
          span.end()
        }
      },
    }
  }

  observe(observers: Observers): void {
    observers.on('batch', (batch: BatchProcessed) => {
      const meters = this.meters()
      if (!meters) return
      const attributes = { 'esk.aggregate.type': batch.aggregate }
      meters.batchSize.record(batch.commands, attributes)
      meters.batchDuration.record((batch.loadMs + batch.handleMs + batch.commitMs + batch.saveMs) / 1000, attributes)
      meters.commitDuration.record(batch.commitMs / 1000, attributes)
      if (batch.events > 0) meters.events.add(batch.events, attributes)
    })
    observers.on('recovery', (progress: RecoveryProgress) => {
      const key = `${progress.aggregate}/${progress.partition}`
      const before = progress.phase === 'start' ? 0 : (this.replayed.get(key) ?? 0)
      if (progress.phase === 'end') this.replayed.delete(key)
      else this.replayed.set(key, progress.events)
      const meters = this.meters()
      if (meters && progress.events > before) {
        meters.recovered.add(progress.events - before, { 'esk.aggregate.type': progress.aggregate, 'esk.recovery.rebuild': progress.rebuild })
      }
    })
  }

  gauges(sources: GaugeSources): void {
    this.sources = sources
    // Registers the gauges now if a meter provider is there already.
    this.meters()
  }
}

/** A refusal by the processor (its code comes back in the outcome) or a failure to get an answer. */
function rejectedOrFailed(error: unknown): 'rejected' | 'failed' {
  if (!(error instanceof EskError)) return 'failed'
  return NO_ANSWER.has(error.code) ? 'failed' : 'rejected'
}

/** Errors of a command that got no outcome: it may still be applied. */
const NO_ANSWER = new Set<string>([ErrorCode.CommandTimeout, ErrorCode.Unavailable, ErrorCode.Closed])
