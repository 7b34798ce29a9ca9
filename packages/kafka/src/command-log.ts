import { CommandLogTruncatedError } from '@esk/core'
import { decodeEnvelope } from '@esk/core/driver'
import type { Admin } from 'kafkajs'
import type { StreamNames } from './options.js'
import type { LogReader } from './replay.js'

/** The offset a command topic partition will give its next record (its high watermark). */
export async function commandLogEnd(admin: Admin, names: StreamNames, partition: number): Promise<number> {
  const entry = (await admin.fetchTopicOffsets(names.commands)).find((o) => o.partition === partition)
  if (!entry) throw new Error(`topic ${names.commands} has no partition ${partition}`)
  return Number(entry.high)
}

/**
 * Checks that a command topic partition is the log the event log speaks of. Every event records
 * the offset of the command that produced it, and the processor skips commands at or below the
 * highest such offset. If the command topic was deleted and recreated (its offsets start at 0
 * again) or lost its tail, new commands would take those offsets and be skipped as done. So:
 *
 * - the group's committed position must not be past the log's end;
 * - the command named by the last event must be inside the log, and, unless retention has
 *   deleted it since, be that very command (same command id).
 *
 * Throws a `CommandLogTruncatedError` (`ESK_COMMAND_LOG_TRUNCATED`) otherwise. Runs after the partition's writer was
 * initialised, so no transaction of a previous owner can still change the event log's end.
 */
export async function checkCommandLog(admin: Admin, reader: LogReader, names: StreamNames, partitions: number, partition: number): Promise<void> {
  const topic = names.commands
  const [offsets, [committed], last] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId: names.group, topics: [topic] }),
    reader.lastEvent(names, partitions, partition),
  ])
  const entry = offsets.find((o) => o.partition === partition)
  if (!entry) throw new Error(`topic ${topic} has no partition ${partition}`)
  const end = Number(entry.high)
  const low = Number(entry.low)
  const fix =
    `partition ${partition} is not processed, because new commands would be taken for ones already handled and ` +
    `skipped; restore the command topic (see docs/operations.md, "A command topic was deleted or truncated")`

  const position = Number(committed?.partitions.find((p) => p.partition === partition)?.offset ?? -1)
  if (position > end) {
    throw new CommandLogTruncatedError(
      `the processor group has consumed ${topic}[${partition}] up to offset ${position}, but the topic now ends at ` +
        `${end}: it was recreated or lost records; ${fix}`,
      { topic, partition, end, committed: position },
    )
  }

  if (!last) return
  const consumed = last.commandPosition
  if (consumed >= end) {
    throw new CommandLogTruncatedError(
      `${names.events}[${partition}] records command ${consumed} of ${topic}[${partition}] as handled, but that topic ` +
        `now ends at ${end}: it was recreated or lost records; ${fix}`,
      { topic, partition, end, consumed, commandId: last.commandId },
    )
  }
  if (consumed < low) return
  const record = await reader.commandAt(names, partitions, partition, consumed)
  const found = record?.value ? decodeEnvelope(record.value.toString('utf8')).commandId : undefined
  if (found !== last.commandId) {
    throw new CommandLogTruncatedError(
      `${names.events}[${partition}] says command ${last.commandId} was at offset ${consumed} of ${topic}[${partition}], ` +
        `but the record there is ${found === undefined ? 'not an esk command' : `command ${found}`}: the topic was ` +
        `recreated since; ${fix}`,
      { topic, partition, end, consumed, commandId: last.commandId, found },
    )
  }
}
