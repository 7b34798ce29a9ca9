import { ConfigurationError, describeDifference, firstDifference } from '@esk/core'
import { AggregateRuntime, messageOf, type StoredEvent, type StoredSnapshot } from '@esk/core/driver'
import { decodeSnapshot } from '@esk/redis'
import { PartitionKeys, StateFields, snapshotFields } from '@esk/redis/driver'
import type { CliContext } from '../context.js'

/** What `esk inspect` found for one aggregate. */
export interface InspectReport {
  aggregate: string
  id: string
  partition: number
  /** The aggregate's events in the event log, oldest first. */
  events: Array<Pick<StoredEvent, 'offset' | 'type' | 'version' | 'commandId' | 'commandPosition'> & { payload: unknown }>
  /** The snapshot in Redis, its state parsed; null when there is none. */
  snapshot: (Omit<StoredSnapshot, 'state'> & { state: unknown }) | null
  /** Whether Redis says the partition is recovered (its snapshots are served). */
  ready: boolean
  /**
   * `agree`: folding the events gives the snapshot's version, offset and state; `disagree`: they
   * differ (see `difference`); `unchecked`: no class to fold with, or a snapshot of another schema
   * version; `empty`: neither events nor a snapshot.
   */
  verdict: 'agree' | 'disagree' | 'unchecked' | 'empty'
  /** The first difference, or why it was not checked. */
  difference?: string
}

/**
 * Reads an aggregate's events from its event log partition (filtered by aggregate id) and its
 * snapshot from Redis, and folds the events with the configured class to compare.
 */
export async function inspect(context: CliContext, aggregate: string, id: string): Promise<InspectReport> {
  const target = await context.target(aggregate)
  const partition = context.partitionOf(target, id)
  const events: StoredEvent[] = []
  for await (const batch of context.transport.readEvents(target.stream, partition, 0)) {
    for (const event of batch) if (event.aggregateId === id) events.push(event)
  }
  const key = new PartitionKeys(context.config.keyPrefix, target.stream, partition).state
  const [text, window, tail, ready] = await context.store.client.hmget(key, ...snapshotFields(id), StateFields.ready)
  const snapshot = text == null ? undefined : decodeSnapshot(text, key, StateFields.snapshot(id), window, tail)
  const report: InspectReport = {
    aggregate: target.name,
    id,
    partition,
    events: events.map((e) => ({
      offset: e.offset,
      type: e.type,
      version: e.version,
      commandId: e.commandId,
      commandPosition: e.commandPosition,
      payload: parse(e.payload),
    })),
    snapshot: snapshot ? { ...snapshot, state: parse(snapshot.state) } : null,
    ready: ready === '1',
    verdict: 'unchecked',
  }
  const { verdict, difference } = compare(target.cls, events, snapshot)
  report.verdict = verdict
  if (difference !== undefined) report.difference = difference
  return report
}

function compare(
  cls: (new (...args: never[]) => unknown) | undefined,
  events: StoredEvent[],
  snapshot: StoredSnapshot | undefined,
): { verdict: InspectReport['verdict']; difference?: string } {
  if (events.length === 0 && !snapshot) return { verdict: 'empty' }
  if (!snapshot) return { verdict: 'disagree', difference: `the log holds ${events.length} events but Redis has no snapshot` }
  const last = events[events.length - 1]
  if (!last) return { verdict: 'disagree', difference: `Redis has a snapshot at version ${snapshot.version} but the log holds no event of this aggregate` }
  if (snapshot.version !== last.version) {
    return { verdict: 'disagree', difference: `version: the snapshot is at ${snapshot.version}, the log's last event at ${last.version}` }
  }
  if (snapshot.offset !== last.offset) {
    return { verdict: 'disagree', difference: `offset: the snapshot includes events up to ${snapshot.offset}, the log's last event is at ${last.offset}` }
  }
  if (!cls) return { verdict: 'unchecked', difference: 'no aggregate class configured: versions and offsets agree, the state was not folded' }
  let runtime: AggregateRuntime<object>
  try {
    runtime = new AggregateRuntime(cls as never)
  } catch (error) {
    throw new ConfigurationError(`the configured class cannot fold events: ${messageOf(error)}`)
  }
  if (snapshot.schemaVersion !== runtime.model.schemaVersion) {
    return {
      verdict: 'unchecked',
      difference: `the snapshot has schema version ${snapshot.schemaVersion}, the configured class ${runtime.model.schemaVersion}`,
    }
  }
  let folded: object
  let stored: object
  try {
    folded = runtime.fold(events)
  } catch (error) {
    return { verdict: 'disagree', difference: `the events cannot be folded: ${messageOf(error)}` }
  }
  try {
    stored = runtime.hydrate(snapshot.state)
  } catch (error) {
    return { verdict: 'disagree', difference: `the snapshot cannot be read: ${messageOf(error)}` }
  }
  const difference = firstDifference(folded, stored)
  return difference ? { verdict: 'disagree', difference: `state ${describeDifference(difference)}` } : { verdict: 'agree' }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}
