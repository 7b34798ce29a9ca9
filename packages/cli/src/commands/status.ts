import { decodeCheckpoint } from '@esk/redis'
import { PartitionKeys, StateFields } from '@esk/redis/driver'
import { messageOf, type Checkpoint } from '@esk/core/driver'
import kafkajs from 'kafkajs'
import { projectionName, registered } from '../config.js'
import type { CliContext, Target } from '../context.js'

const { AssignerProtocol } = kafkajs

/** One partition of an aggregate type, as `esk status` reports it. */
export interface PartitionReport {
  partition: number
  /** The owner token in Redis (`@owner`): the processor that may write its snapshots; null when none. */
  owner: string | null
  /** Redis says it is recovered (`@ready`): `find` trusts its snapshots. */
  ready: boolean
  /** The checkpoint in Redis; null when none is stored. */
  checkpoint: Checkpoint | null
  /** The member of the processor group it is assigned to (`clientId@host`); null when none. */
  member: string | null
  /** The position the command topic gives its next command (high watermark). */
  commandEnd: number
  /** The processor group's committed offset on the command topic; null when it committed none. */
  committed: number | null
  /** Commands waiting: `commandEnd` minus the committed offset (or the topic's first offset). */
  lag: number
  /**
   * The event topic's last stable offset. Transaction markers take offsets too, so a store that has
   * every event has a checkpoint one or two below it, not equal.
   */
  eventEnd: number
}

/** One aggregate type, as `esk status` reports it. */
export interface AggregateReport {
  aggregate: string
  /** Partitions of its command topic (0 when the topic does not exist). */
  partitions: number
  /** The processor consumer group: its state and member count. */
  group: { id: string; state: string; members: number }
  rows: PartitionReport[]
}

/** One read model, as `esk status` reports it. */
export interface ProjectionReport {
  name: string
  kind?: string
  version?: number
  /** `global`: kept in each instance's memory, so nothing the CLI can see is live. */
  scope?: string
  /** The live generation's id and version; null when none was built. */
  live?: { id: number; version: number } | null
  caughtUp?: boolean
  lag?: number
  lanes?: Array<{ aggregate: string; partition: number; position: number | null; end: number; lag: number }>
  /** Why its status could not be read. */
  error?: string
}

/** What `esk status` reports. */
export interface StatusReport {
  aggregates: AggregateReport[]
  projections: ProjectionReport[]
}

/** Reads the state of every (or one) aggregate type's partitions from Kafka and Redis, and of every configured read model. */
export async function status(context: CliContext, options: { aggregate?: string } = {}): Promise<StatusReport> {
  const targets = await context.targets(options.aggregate)
  const aggregates: AggregateReport[] = []
  for (const target of targets) aggregates.push(await aggregateStatus(context, target))
  const projections: ProjectionReport[] = []
  if (options.aggregate === undefined && context.config.projections.length > 0) {
    let app: Awaited<ReturnType<CliContext['app']>> | undefined
    let failure: string | undefined
    try {
      app = await context.app()
    } catch (error) {
      failure = messageOf(error)
    }
    for (const entry of context.config.projections) {
      const name = projectionName(entry)
      if (!app) {
        projections.push({ name, error: failure! })
        continue
      }
      try {
        const s = await app.projection(registered(entry)).status()
        projections.push({
          name,
          kind: s.kind,
          version: s.version,
          scope: s.scope,
          live: s.live ? { id: s.live.id, version: s.live.version } : null,
          caughtUp: s.caughtUp,
          lag: s.lag,
          lanes: s.lanes.map((l) => ({ aggregate: l.aggregate, partition: l.partition, position: l.position ?? null, end: l.end, lag: l.lag })),
        })
      } catch (error) {
        projections.push({ name, error: messageOf(error) })
      }
    }
  }
  return { aggregates, projections }
}

async function aggregateStatus(context: CliContext, target: Target): Promise<AggregateReport> {
  const { names, stream } = target
  const admin = await context.admin()
  const group = { id: names.group, state: 'Unknown', members: 0 }
  if (stream.partitions === 0) return { aggregate: target.name, partitions: 0, group, rows: [] }
  const [commandOffsets, eventOffsets, [committed], described] = await Promise.all([
    admin.fetchTopicOffsets(names.commands),
    admin.fetchTopicOffsets(names.events).catch(() => []),
    admin.fetchOffsets({ groupId: names.group, topics: [names.commands] }),
    admin.describeGroups([names.group]),
  ])
  const { state, count, members } = groupMembers(described.groups[0], names.commands)
  group.state = state
  group.members = count
  const client = context.store.client
  const rows: PartitionReport[] = []
  const fields = [StateFields.owner, StateFields.ready, StateFields.offset, StateFields.position, StateFields.schema]
  const states = await Promise.all(
    Array.from({ length: stream.partitions }, (_, p) => client.hmget(new PartitionKeys(context.config.keyPrefix, stream, p).state, ...fields)),
  )
  for (let p = 0; p < stream.partitions; p++) {
    const [owner, ready, ...checkpointFields] = states[p]!
    const checkpoint = decodeCheckpoint(checkpointFields, new PartitionKeys(context.config.keyPrefix, stream, p).state) ?? null
    const commands = commandOffsets.find((o) => o.partition === p)
    const events = eventOffsets.find((o) => o.partition === p)
    const offset = Number(committed?.partitions.find((c) => c.partition === p)?.offset ?? -1)
    const commandEnd = Number(commands?.high ?? 0)
    const eventEnd = Number(events?.offset ?? 0)
    rows.push({
      partition: p,
      owner: owner ?? null,
      ready: ready === '1',
      checkpoint,
      member: members.get(p) ?? null,
      commandEnd,
      committed: offset >= 0 ? offset : null,
      lag: Math.max(0, commandEnd - (offset >= 0 ? offset : Number(commands?.low ?? 0))),
      eventEnd,
    })
  }
  return { aggregate: target.name, partitions: stream.partitions, group, rows }
}

/** The state of a processor group, its member count, and the member (`clientId@host`) holding each partition of the command topic. */
export function groupMembers(
  description: { state: string; members: Array<{ clientId: string; clientHost: string; memberAssignment: Buffer }> } | undefined,
  topic: string,
): { state: string; count: number; members: Map<number, string> } {
  const members = new Map<number, string>()
  if (!description) return { state: 'Unknown', count: 0, members }
  for (const member of description.members) {
    for (const partition of decodeAssignment(member.memberAssignment)[topic] ?? []) {
      members.set(partition, `${member.clientId}@${member.clientHost.replace(/^\//, '')}`)
    }
  }
  return { state: description.state, count: description.members.length, members }
}

function decodeAssignment(buffer: Buffer): Record<string, number[]> {
  if (!buffer || buffer.length === 0) return {}
  try {
    return AssignerProtocol.MemberAssignment.decode(buffer)?.assignment ?? {}
  } catch {
    return {}
  }
}
