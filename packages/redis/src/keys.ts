import { InvalidArgumentError, type StreamSpec } from '@esk/core'

/**
 * The keys of one (stream, partition). They all carry the hash tag `{<aggregate>:<partition>}`, so
 * Redis Cluster puts them in one slot and a Lua script or MULTI may touch all of them at once:
 *
 * - `<prefix>{<aggregate>:<partition>}:snapshots`  HASH aggregate id -> JSON of the StoredSnapshot
 * - `<prefix>{<aggregate>:<partition>}:offsets`    HASH aggregate id -> offset of that snapshot
 * - `<prefix>{<aggregate>:<partition>}:checkpoint` HASH offset, commandPosition, schemaVersion
 * - `<prefix>{<aggregate>:<partition>}:outcome:<commandId>` STRING JSON of the Outcome, with a TTL
 *
 * Outcomes are keys of their own, not hash fields, because each expires on its own.
 */
export class PartitionKeys {
  /** Snapshot JSON by aggregate id. */
  readonly snapshots: string
  /** Snapshot offset by aggregate id, so the save script compares without decoding JSON. */
  readonly offsets: string
  /** The partition's checkpoint. */
  readonly checkpoint: string
  private readonly base: string

  constructor(prefix: string, stream: StreamSpec, partition: number) {
    if (!Number.isSafeInteger(partition) || partition < 0) {
      throw new InvalidArgumentError(`partition must be a non-negative integer, got ${String(partition)}`, {
        aggregate: stream.aggregate,
      })
    }
    this.base = `${prefix}{${stream.aggregate}:${partition}}:`
    this.snapshots = `${this.base}snapshots`
    this.offsets = `${this.base}offsets`
    this.checkpoint = `${this.base}checkpoint`
  }

  /** The key of one command's outcome. */
  outcome(commandId: string): string {
    return `${this.base}outcome:${commandId}`
  }
}

/** The pub/sub channel a client with this reply address listens on. */
export function replyChannel(prefix: string, address: string): string {
  return `${prefix}replies:${address}`
}
