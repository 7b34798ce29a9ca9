import { commandKey, type Outcome, type StoredEvent } from '@esk/core/driver'
import { decodeOutcome, decodeSnapshot } from '@esk/redis'
import { PartitionKeys, StateFields, snapshotFields } from '@esk/redis/driver'
import type { CliContext } from '../context.js'
import { listDeadLetters } from './dlq.js'

/** Where `esk outcome` found a command. */
export type OutcomeSource = 'snapshot' | 'unlogged' | 'event-log' | 'dead-letters'

/** What happened to a command, as `esk outcome` found it. */
export interface OutcomeReport {
  aggregate: string
  id: string
  commandId: string
  partition: number
  found: boolean
  /**
   * `snapshot`: accepted, in the aggregate's dedup window; `unlogged`: a refusal (or an acceptance
   * without events) in the partition's unlogged outcomes; `event-log`: accepted, its events found by
   * their command id (it fell out of the window, or the store was rebuilt); `dead-letters`:
   * refused as poison and dead-lettered. Null when found nowhere.
   */
  source: OutcomeSource | null
  outcome: Outcome | null
  /** With `event-log`: the offsets of its events. */
  offsets?: number[]
}

/**
 * Finds what happened to a command, by its identity (aggregate id, command id): the snapshot's
 * dedup window, then the partition's unlogged outcomes, then the event log, then the dead letters.
 */
export async function outcome(context: CliContext, aggregate: string, id: string, commandId: string): Promise<OutcomeReport> {
  const target = await context.target(aggregate)
  const partition = context.partitionOf(target, id)
  const base = { aggregate: target.name, id, commandId, partition }
  const keys = new PartitionKeys(context.config.keyPrefix, target.stream, partition)
  const client = context.store.client
  const [[snapshotText, windowText, tailText], unloggedText] = await Promise.all([
    client.hmget(keys.state, ...snapshotFields(id)),
    client.hget(keys.unlogged, commandKey({ aggregateId: id, commandId })),
  ])
  if (snapshotText != null) {
    const snapshot = decodeSnapshot(snapshotText, keys.state, StateFields.snapshot(id), windowText, tailText)
    const entry = snapshot.recent.find((r) => r.commandId === commandId)
    if (entry) return { ...base, found: true, source: 'snapshot', outcome: { status: 'accepted', aggregateId: id, ...entry } }
  }
  if (unloggedText != null) return { ...base, found: true, source: 'unlogged', outcome: decodeOutcome(unloggedText, keys.unlogged) }

  const events: StoredEvent[] = []
  for await (const batch of context.transport.readEvents(target.stream, partition, 0)) {
    for (const event of batch) if (event.aggregateId === id && event.commandId === commandId) events.push(event)
  }
  const last = events[events.length - 1]
  if (last) {
    return {
      ...base,
      found: true,
      source: 'event-log',
      outcome: { status: 'accepted', aggregateId: id, commandId, version: last.version, events: events.length, offset: last.offset },
      offsets: events.map((e) => e.offset),
    }
  }
  const dead = (await listDeadLetters(context, target.name)).find((d) => d.commandId === commandId && d.aggregateId === id)
  if (dead) {
    return {
      ...base,
      found: true,
      source: 'dead-letters',
      outcome: { status: 'rejected', aggregateId: id, commandId, error: { code: dead.code ?? 'unknown', message: dead.reason ?? '' } },
    }
  }
  return { ...base, found: false, source: null, outcome: null }
}
