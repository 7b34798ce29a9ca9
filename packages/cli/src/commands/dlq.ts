import { randomUUID } from 'node:crypto'
import { InvalidArgumentError } from '@esk/core'
import {
  decodeEnvelope,
  encodeEnvelope,
  isUndecodable,
  partitionFor,
  sleep,
  type CommandEnvelope,
  type Outcome,
} from '@esk/core/driver'
import { DeadLetterHeaders } from '@esk/kafka'
import type { CliContext, Target } from '../context.js'
import { readTopic, type TopicRecord } from '../records.js'

/** A dead letter: a command record refused as poison, with why. */
export interface DeadLetterEntry {
  aggregate: string
  /** `<partition>:<offset>` in the dead-letter topic: what `dlq show` and `dlq replay` take. */
  entry: string
  partition: number
  offset: number
  /** When it was dead-lettered, ISO 8601. */
  at: string
  code: string | null
  reason: string | null
  /** Its position in the command topic partition. */
  commandOffset: number | null
  aggregateId: string | null
  commandId: string | null
  /** The command type, when the record can be decoded. */
  type: string | null
}

/** A dead letter in full: also the record as it was read from the command topic, parsed when it is JSON. */
export interface DeadLetterDetail extends DeadLetterEntry {
  headers: Record<string, string>
  command: unknown
}

/** What `dlq replay` did. */
export interface ReplayReport {
  aggregate: string
  entry: string
  aggregateId: string
  /** The id the command was first sent with. */
  originalCommandId: string
  /** The id it was sent again with (a new one: see {@link replayDeadLetter}). */
  commandId: string
  /** The command topic partition it went to. */
  partition: number
  /** With `wait`: the outcome recorded for it, or null when none came in time. */
  outcome?: Outcome | null
}

/** Every dead letter of every (or one) aggregate type, oldest first per partition. */
export async function listDeadLetters(context: CliContext, aggregate?: string): Promise<DeadLetterEntry[]> {
  const entries: DeadLetterEntry[] = []
  for (const target of await context.targets(aggregate)) {
    if (target.stream.partitions === 0) continue
    for (const record of await read(context, target)) entries.push(summary(target, record))
  }
  return entries
}

/** One dead letter in full. */
export async function showDeadLetter(context: CliContext, aggregate: string, entry: string): Promise<DeadLetterDetail> {
  const target = await context.target(aggregate)
  const record = await findRecord(context, target, entry)
  return { ...summary(target, record), headers: record.headers, command: parse(record.value) }
}

/**
 * Sends a dead-lettered command to its command topic again, once the cause is fixed (a handler
 * deployed, a command type registered). It goes with a NEW command id and no reply address: the
 * first refusal is recorded under the original id, and a command sent again with that id would be
 * answered with it, from the dedup records, without running. The report gives both ids; with
 * `wait`, the outcome too.
 */
export async function replayDeadLetter(
  context: CliContext,
  aggregate: string,
  entry: string,
  options: { wait?: boolean; timeoutMs?: number } = {},
): Promise<ReplayReport> {
  const target = await context.target(aggregate)
  const record = await findRecord(context, target, entry)
  const decoded = decodeEnvelope(record.value ?? '')
  if (isUndecodable(decoded)) {
    throw new InvalidArgumentError(
      `dead letter ${entry} of '${aggregate}' cannot be sent again: ${decoded.error.message}; it would be refused the same way`,
      { aggregate, entry },
    )
  }
  const { replyTo: _replyTo, ...rest } = decoded
  const envelope: CommandEnvelope = { ...rest, commandId: randomUUID(), sentAt: Date.now() }
  const partition = partitionFor(envelope.aggregateId, target.stream.partitions)
  await context.transport.send(target.stream, partition, envelope.aggregateId, encodeEnvelope(envelope))
  const report: ReplayReport = {
    aggregate: target.name,
    entry,
    aggregateId: envelope.aggregateId,
    originalCommandId: decoded.commandId,
    commandId: envelope.commandId,
    partition,
  }
  if (options.wait) {
    const deadline = Date.now() + (options.timeoutMs ?? 30_000)
    const command = { aggregateId: envelope.aggregateId, commandId: envelope.commandId }
    let outcome: Outcome | undefined
    while (!(outcome = await context.store.snapshots.readOutcome(target.stream, partition, command)) && Date.now() < deadline) await sleep(200)
    report.outcome = outcome ?? null
  }
  return report
}

/** Parses `<partition>:<offset>`. */
export function parseEntry(entry: string): { partition: number; offset: number } {
  const match = /^(\d+):(\d+)$/.exec(entry)
  if (!match) throw new InvalidArgumentError(`a dead letter is named <partition>:<offset> (as dlq list shows it), got '${entry}'`)
  return { partition: Number(match[1]), offset: Number(match[2]) }
}

async function read(context: CliContext, target: Target, partitions?: number[]): Promise<TopicRecord[]> {
  const admin = await context.admin()
  if (!(await admin.listTopics()).includes(target.names.deadLetters)) return []
  return readTopic(context.transport.client, admin, target.names.deadLetters, {
    groupPrefix: context.config.topicPrefix,
    ...(partitions && { partitions }),
  })
}

async function findRecord(context: CliContext, target: Target, entry: string): Promise<TopicRecord> {
  const { partition, offset } = parseEntry(entry)
  const record = (await read(context, target, [partition])).find((r) => r.offset === offset)
  if (!record) {
    throw new InvalidArgumentError(`no dead letter ${entry} in ${target.names.deadLetters}; see esk dlq list ${target.name}`, {
      aggregate: target.name,
      entry,
    })
  }
  return record
}

function summary(target: Target, record: TopicRecord): DeadLetterEntry {
  const h = record.headers
  const command = parse(record.value)
  const type = typeof command === 'object' && command !== null && typeof (command as { type?: unknown }).type === 'string' ? (command as { type: string }).type : null
  const commandOffset = h[DeadLetterHeaders.commandOffset]
  return {
    aggregate: target.name,
    entry: `${record.partition}:${record.offset}`,
    partition: record.partition,
    offset: record.offset,
    at: new Date(record.timestamp).toISOString(),
    code: h[DeadLetterHeaders.code] ?? null,
    reason: h[DeadLetterHeaders.reason] ?? null,
    commandOffset: commandOffset === undefined ? null : Number(commandOffset),
    aggregateId: h[DeadLetterHeaders.aggregateId] ?? null,
    commandId: h[DeadLetterHeaders.commandId] ?? null,
    type,
  }
}

function parse(text: string | null): unknown {
  if (text === null) return null
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}
