import { InvalidArgumentError } from '@esk/core'
import { type StreamSpec } from '@esk/core/driver'

/**
 * The keys of one (stream, partition). They all carry the hash tag `{<aggregate>:<partition>}`, so
 * Redis Cluster puts them in one slot and a Lua script or MULTI may touch all of them at once:
 *
 * - `<prefix>{<aggregate>:<partition>}:state` HASH, everything a processor needs, in one key so that
 *   it is flushed or evicted as a whole, never in part:
 *   - `s:<aggregateId>`: JSON of the StoredSnapshot, its `recent` set to `"separate"` (snapshots
 *     written by earlier versions hold the de-duplication window there instead);
 *   - `w:<aggregateId>`: its de-duplication window, one JSON entry per line, oldest first, so the
 *     store builds each save's text from the last one (see `RedisSnapshotStore.save`) without
 *     encoding the old entries again;
 *   - `o:<aggregateId>`: the offset of that snapshot, so the save script compares without decoding JSON;
 *   - `@owner`: the owner token of the processor that may write; `@ready`: `1` once recovered;
 *   - `@offset`, `@position`, `@schema`: the checkpoint (next event offset, highest command position
 *     included, schema version).
 * - `<prefix>{<aggregate>:<partition>}:unlogged` HASH `["<aggregateId>","<commandId>"]` (JSON) -> JSON of an
 *   outcome that left nothing in the log (a refusal, or an acceptance without events);
 * - `<prefix>{<aggregate>:<partition>}:unlogged-order` LIST of those fields, oldest first, trimmed to
 *   `unloggedWindow`.
 */
export class PartitionKeys {
  /** Snapshots, offsets, ownership and checkpoint. */
  readonly state: string
  /** Unlogged outcomes by command key. */
  readonly unlogged: string
  /** Insertion order of {@link unlogged}. */
  readonly unloggedOrder: string

  constructor(prefix: string, stream: StreamSpec, partition: number) {
    if (!Number.isSafeInteger(partition) || partition < 0) {
      throw new InvalidArgumentError(`partition must be a non-negative integer, got ${String(partition)}`, {
        aggregate: stream.aggregate,
      })
    }
    const base = `${prefix}{${stream.aggregate}:${partition}}:`
    this.state = `${base}state`
    this.unlogged = `${base}unlogged`
    this.unloggedOrder = `${base}unlogged-order`
  }

  /** Every key, for scripts that take them all. */
  get all(): [string, string, string] {
    return [this.state, this.unlogged, this.unloggedOrder]
  }
}

/** Field names inside {@link PartitionKeys.state}. */
export const StateFields = {
  owner: '@owner',
  ready: '@ready',
  offset: '@offset',
  position: '@position',
  schema: '@schema',
  snapshot: (aggregateId: string) => `s:${aggregateId}`,
  window: (aggregateId: string) => `w:${aggregateId}`,
  offsetOf: (aggregateId: string) => `o:${aggregateId}`,
} as const

/** The checkpoint fields, in the order {@link decodeCheckpoint} expects them. */
export const CHECKPOINT_FIELDS = [StateFields.offset, StateFields.position, StateFields.schema] as const

/**
 * How the reply address of a client that reads several outcomes per message ends. Such a client
 * gets one message per batch from a processor, its outcomes one JSON text per line (see
 * {@link replyMessages}); a client of an earlier version, whose address lacks this, gets one
 * message per outcome, as it expects.
 */
export const LINES_ADDRESS_SUFFIX = '.lines'

/** The pub/sub channel a client with this reply address listens on. */
export function replyChannel(prefix: string, address: string): string {
  return `${prefix}replies:${address}`
}
