// One OpenTelemetry scenario, run on the embedded driver (core unit tests) and on Kafka + Redis
// (kafka int tests): the SDK's in-memory exporters stand where an application's exporter would.
import { SpanKind, SpanStatusCode, context, metrics, propagation, trace } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type DataPoint,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { createEsk, defineProjection, on, type Driver } from '@esk/core'
import { contractModel } from '@esk/testing/contract'
import { expect } from 'vitest'

const { ContractAccount, Open, Deposit, Deposited, Withdraw } = contractModel

/** An SDK registered globally, as an application's setup does, with exporters tests can read. */
export interface TestSdk {
  spans: InMemorySpanExporter
  /** Every metric collected now, by name. */
  collect(): Promise<Map<string, MetricData>>
  /** Unregisters everything, so later tests see no SDK. */
  stop(): Promise<void>
}

/** Registers a tracer provider, the W3C propagator and a meter provider. */
export function registerSdk(): TestSdk {
  const spans = new InMemorySpanExporter()
  const tracers = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })
  const meters = new MeterProvider({ readers: [reader] })
  trace.setGlobalTracerProvider(tracers)
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  metrics.setGlobalMeterProvider(meters)
  return {
    spans,
    async collect() {
      exporter.reset()
      await reader.forceFlush()
      const byName = new Map<string, MetricData>()
      for (const resource of exporter.getMetrics()) {
        for (const scope of resource.scopeMetrics) for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric)
      }
      return byName
    },
    async stop() {
      trace.disable()
      propagation.disable()
      metrics.disable()
      context.disable()
      await Promise.allSettled([tracers.shutdown(), meters.shutdown()])
    },
  }
}

/** Waits (bounded) until `find` returns something from the finished spans. */
export async function waitForSpan(sdk: TestSdk, what: string, find: (spans: ReadableSpan[]) => ReadableSpan | undefined): Promise<ReadableSpan> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const found = find(sdk.spans.getFinishedSpans())
    if (found) return found
    if (Date.now() > deadline) {
      const names = sdk.spans.getFinishedSpans().map((s) => `${s.name} ${JSON.stringify(s.attributes)}`)
      throw new Error(`no span ${what} among:\n${names.join('\n')}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId

/** The data points of a metric whose attributes include `attributes`. */
export function points(metric: MetricData | undefined, attributes: Record<string, unknown>): DataPoint<unknown>[] {
  if (!metric) return []
  return (metric.dataPoints as DataPoint<unknown>[]).filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
}

/**
 * One accepted command and one refused command through an application with a read model: the
 * command's trace goes client -> processing -> commit and -> read model, with the messaging
 * semantic-convention attributes; the refusal records its code; the metrics count both.
 */
export async function runTelemetryScenario(options: { driver: () => Driver; system: string; topicPrefix: string; group?: boolean }): Promise<void> {
  const sdk = registerSdk()
  const name = `otel${Math.random().toString(36).slice(2, 8)}`
  const sums = defineProjection({ name, handlers: [on(Deposited, (e, _m, view) => view.incr('sum', e.amount))] })
  const app = await createEsk({ aggregates: [ContractAccount], driver: options.driver(), projections: [sums], partitions: 2 })
  try {
    const accounts = app.repository(ContractAccount)
    const opened = await accounts.save(new Open('ann', 0))
    const deposited = await accounts.update(opened.id, new Deposit(5))
    await app.projection(sums).waitFor(deposited)
    const refused = await accounts.update(opened.id, new Withdraw(100)).catch((e: unknown) => e as { code: string })
    expect(refused).toMatchObject({ code: 'ESK_COMMAND_REJECTED' })

    const commands = `${options.topicPrefix}contract-account.commands`
    const events = `${options.topicPrefix}contract-account.events`
    const isCommand = (type: string) => (s: ReadableSpan) => s.attributes['esk.command.type'] === type
    // The client's span of the deposit, and the processing span its trace context led to.
    const sent = await waitForSpan(sdk, 'send (deposit)', (all) => all.find((s) => s.kind === SpanKind.PRODUCER && isCommand('contract.Deposit')(s)))
    expect(sent.name).toBe(`send ${commands}`)
    expect(sent.attributes).toMatchObject({
      'messaging.system': options.system,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.destination.name': commands,
      'messaging.kafka.message.key': opened.id,
      'messaging.message.id': deposited.commandId,
      'esk.aggregate.type': 'contract-account',
      'esk.outcome': 'accepted',
      'esk.aggregate.version': deposited.version,
    })
    const processed = await waitForSpan(sdk, 'process (deposit)', (all) =>
      all.find((s) => s.kind === SpanKind.CONSUMER && s.name === `process ${commands}` && isCommand('contract.Deposit')(s)),
    )
    expect(processed.spanContext().traceId).toBe(sent.spanContext().traceId)
    expect(parentOf(processed)).toBe(sent.spanContext().spanId)
    expect(processed.attributes).toMatchObject({
      'messaging.system': options.system,
      'messaging.operation.type': 'process',
      'messaging.destination.name': commands,
      'messaging.destination.partition.id': sent.attributes['messaging.destination.partition.id'],
      'messaging.kafka.message.key': opened.id,
      'esk.outcome': 'accepted',
    })
    expect(typeof processed.attributes['messaging.kafka.offset']).toBe('number')
    if (options.group) expect(processed.attributes['messaging.consumer.group.name']).toEqual(expect.any(String))
    // The batch's transaction, under the processing span of its (only) command.
    const commit = await waitForSpan(sdk, 'commit', (all) => all.find((s) => s.name === `commit ${events}` && parentOf(s) === processed.spanContext().spanId))
    expect(commit.attributes).toMatchObject({ 'messaging.batch.message_count': 1, 'messaging.operation.name': 'commit', 'messaging.destination.name': events })
    // The read model's handling of the event continues the same trace, from the processing span.
    const projected = await waitForSpan(sdk, 'projection handling', (all) =>
      all.find((s) => s.name === `process ${events}` && s.attributes['esk.projection.name'] === name && s.attributes['esk.command.id'] === deposited.commandId),
    )
    expect(projected.spanContext().traceId).toBe(sent.spanContext().traceId)
    expect(parentOf(projected)).toBe(processed.spanContext().spanId)
    expect(projected.kind).toBe(SpanKind.CONSUMER)
    expect(projected.attributes).toMatchObject({
      'messaging.destination.name': events,
      'messaging.kafka.offset': deposited.position!.offset,
      'esk.event.type': 'contract.Deposited',
    })

    // The refusal: the client's span and the processing span carry its code, with an error status.
    const refusedSent = await waitForSpan(sdk, 'send (withdraw)', (all) => all.find((s) => s.kind === SpanKind.PRODUCER && isCommand('contract.Withdraw')(s)))
    expect(refusedSent.status.code).toBe(SpanStatusCode.ERROR)
    expect(refusedSent.attributes).toMatchObject({ 'esk.outcome': 'rejected', 'esk.error.code': 'ESK_COMMAND_REJECTED' })
    const refusedProcessed = await waitForSpan(sdk, 'process (withdraw)', (all) => all.find((s) => s.kind === SpanKind.CONSUMER && isCommand('contract.Withdraw')(s)))
    expect(refusedProcessed.attributes).toMatchObject({ 'esk.outcome': 'rejected', 'esk.error.code': 'ESK_COMMAND_REJECTED' })
    expect(parentOf(refusedProcessed)).toBe(refusedSent.spanContext().spanId)

    // Metrics: outcomes counted by code, client latency per command, batches and commits.
    const collected = await sdk.collect()
    const aggregate = { 'esk.aggregate.type': 'contract-account' }
    const count = (ps: DataPoint<unknown>[]): number => ps.reduce((n, p) => n + (p.value as number), 0)
    expect(count(points(collected.get('esk.commands'), { ...aggregate, 'esk.outcome': 'accepted' }))).toBe(2)
    expect(count(points(collected.get('esk.commands'), { ...aggregate, 'esk.outcome': 'rejected', 'esk.error.code': 'ESK_COMMAND_REJECTED' }))).toBe(1)
    const durations = points(collected.get('esk.command.duration'), aggregate) as DataPoint<Histogram>[]
    expect(durations.reduce((n, p) => n + p.value.count, 0)).toBe(3)
    expect(collected.get('esk.command.duration')?.descriptor.unit).toBe('s')
    const batches = points(collected.get('esk.batch.size'), aggregate) as DataPoint<Histogram>[]
    expect(batches.reduce((n, p) => n + p.value.sum!, 0)).toBe(3)
    expect((points(collected.get('esk.commit.duration'), aggregate) as DataPoint<Histogram>[])[0]?.value.count).toBeGreaterThanOrEqual(1)
    expect(count(points(collected.get('esk.partitions'), { 'esk.partition.state': 'ready' }))).toBe(2)
    expect(points(collected.get('esk.command.lag'), aggregate).map((p) => p.value)).toEqual([0, 0])
    expect(points(collected.get('esk.projection.lag'), { 'esk.projection.name': name }).map((p) => p.value)).toEqual([0])
  } finally {
    await app.close()
    await sdk.stop()
  }
}
