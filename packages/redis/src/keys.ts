import { InvalidArgumentError } from '@esk/core'
import { type StreamSpec } from '@esk/core/driver'

/**
 * The keys of one (stream, partition). They all carry the hash tag `{<aggregate>:<partition>}`, so
 * Redis Cluster puts them in one slot and a Lua script or MULTI may touch all of them at once:
 *
 * - `<prefix>{<aggregate>:<partition>}:state` HASH, everything a processor needs, in one key so that
 *   it is flushed or evicted as a whole, never in part:
 *   - `s:<aggregateId>`: JSON of the StoredSnapshot, its `recent` set to `{"split": n}`: the
 *     de-duplication window is the last n entries of the next two fields (snapshots written by
 *     earlier versions hold `"separate"`, the window being all of `w:`, or the window itself);
 *   - `w:<aggregateId>` and `t:<aggregateId>`: the window's older and newest entries, one JSON entry
 *     per line, oldest first. Most saves rewrite only the few newest entries of `t:`, and now and
 *     then the whole window in `w:` (see `SAVE_SCRIPT` and `RedisSnapshotStore.save`);
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
  /** The older entries of its de-duplication window (all of them in records of the previous layout). */
  window: (aggregateId: string) => `w:${aggregateId}`,
  /** The newest entries of its de-duplication window (see `SAVE_SCRIPT`). */
  tail: (aggregateId: string) => `t:${aggregateId}`,
  offsetOf: (aggregateId: string) => `o:${aggregateId}`,
} as const

/** The fields of an aggregate's snapshot and window, in the order `decodeSnapshot` takes them. */
export function snapshotFields(aggregateId: string): [string, string, string] {
  return [StateFields.snapshot(aggregateId), StateFields.window(aggregateId), StateFields.tail(aggregateId)]
}

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
