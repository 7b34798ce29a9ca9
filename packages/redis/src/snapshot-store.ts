import type {
  Checkpoint,
  LoadedBatch,
  Outcome,
  SnapshotStore,
  SnapshotWrite,
  StoredSnapshot,
  StreamSpec,
} from '@esk/core'
import type { Redis } from 'ioredis'
import {
  CHECKPOINT_FIELDS,
  checkWrite,
  decodeCheckpoint,
  decodeOutcome,
  decodeSnapshot,
  encodeOutcome,
  encodeSnapshot,
} from './codec.js'
import { PartitionKeys } from './keys.js'
import { resolveSnapshotOptions, type RedisSnapshotStoreOptions } from './options.js'
import { SAVE_SCRIPT, defineScript, type ScriptCall } from './scripts.js'

/**
 * Snapshots, checkpoints and outcomes in Redis, saved atomically and only forward by one Lua
 * script. It uses the client it is given and never closes it; see {@link PartitionKeys} for the
 * key layout.
 */
export class RedisSnapshotStore implements SnapshotStore {
  private readonly keyPrefix: string
  private readonly outcomeRetentionMs: number
  private readonly saveScript: ScriptCall

  constructor(
    private readonly client: Redis,
    options: RedisSnapshotStoreOptions = {},
  ) {
    const resolved = resolveSnapshotOptions(options)
    this.keyPrefix = resolved.keyPrefix
    this.outcomeRetentionMs = resolved.outcomeRetentionMs
    this.saveScript = defineScript(client, 'save', SAVE_SCRIPT)
  }

  /** Reads the snapshots and outcomes in one MULTI (one round trip, one consistent view). */
  async load(stream: StreamSpec, partition: number, aggregateIds: string[], commandIds: string[]): Promise<LoadedBatch> {
    const keys = this.keys(stream, partition)
    const snapshots = new Map<string, StoredSnapshot>()
    const outcomes = new Map<string, Outcome>()
    const outcomeKeys = commandIds.map((id) => keys.outcome(id))
    const transaction = this.client.multi()
    transaction.hmget(keys.checkpoint, ...CHECKPOINT_FIELDS)
    if (aggregateIds.length > 0) transaction.hmget(keys.snapshots, ...aggregateIds)
    if (commandIds.length > 0) transaction.mget(...outcomeKeys)
    const replies = await this.exec(transaction, `loading ${where(stream, partition)}`)
    const checkpoint = decodeCheckpoint(replies[0] as Array<string | null>, keys.checkpoint)
    let next = 1
    if (aggregateIds.length > 0) {
      const values = replies[next++] as Array<string | null>
      aggregateIds.forEach((id, i) => {
        const text = values[i]
        if (text != null) snapshots.set(id, decodeSnapshot(text, keys.snapshots, id))
      })
    }
    if (commandIds.length > 0) {
      const values = replies[next] as Array<string | null>
      commandIds.forEach((id, i) => {
        const text = values[i]
        if (text != null) outcomes.set(id, decodeOutcome(text, outcomeKeys[i]!))
      })
    }
    return { snapshots, outcomes, checkpoint }
  }

  async read(stream: StreamSpec, partition: number, aggregateId: string): Promise<StoredSnapshot | undefined> {
    const keys = this.keys(stream, partition)
    const text = await this.client.hget(keys.snapshots, aggregateId)
    return text === null ? undefined : decodeSnapshot(text, keys.snapshots, aggregateId)
  }

  async readOutcome(stream: StreamSpec, partition: number, commandId: string): Promise<Outcome | undefined> {
    const key = this.keys(stream, partition).outcome(commandId)
    const text = await this.client.get(key)
    return text === null ? undefined : decodeOutcome(text, key)
  }

  async checkpoint(stream: StreamSpec, partition: number): Promise<Checkpoint | undefined> {
    const key = this.keys(stream, partition).checkpoint
    return decodeCheckpoint(await this.client.hmget(key, ...CHECKPOINT_FIELDS), key)
  }

  /** Runs the save script: snapshots forward-only, checkpoint field by field forward-only, outcomes with a TTL. */
  async save(stream: StreamSpec, partition: number, write: SnapshotWrite): Promise<void> {
    checkWrite(write, where(stream, partition))
    const keys = this.keys(stream, partition)
    const { snapshots, checkpoint, outcomes } = write
    const args: string[] = [
      String(snapshots.length),
      String(checkpoint.offset),
      String(checkpoint.commandPosition),
      String(checkpoint.schemaVersion),
      String(this.outcomeRetentionMs),
    ]
    for (const snapshot of snapshots) args.push(snapshot.aggregateId, String(snapshot.offset), encodeSnapshot(snapshot))
    for (const outcome of outcomes) args.push(encodeOutcome(outcome))
    const scriptKeys = [keys.snapshots, keys.offsets, keys.checkpoint, ...outcomes.map((o) => keys.outcome(o.commandId))]
    try {
      await this.saveScript(scriptKeys.length, ...scriptKeys, ...args)
    } catch (error) {
      throw new Error(
        `saving ${snapshots.length} snapshots and ${outcomes.length} outcomes of ${where(stream, partition)} ` +
          `failed: ${(error as Error).message}`,
        { cause: error },
      )
    }
  }

  /** Deletes snapshots, offsets and checkpoint in one UNLINK (atomic); outcomes stay until they expire. */
  async reset(stream: StreamSpec, partition: number): Promise<void> {
    const keys = this.keys(stream, partition)
    await this.client.unlink(keys.snapshots, keys.offsets, keys.checkpoint)
  }

  /** Does nothing: the client belongs to whoever passed it in. */
  async close(): Promise<void> {}

  private keys(stream: StreamSpec, partition: number): PartitionKeys {
    return new PartitionKeys(this.keyPrefix, stream, partition)
  }

  private async exec(transaction: ReturnType<Redis['multi']>, doing: string): Promise<unknown[]> {
    const results = await transaction.exec()
    if (!results) throw new Error(`${doing} failed: the transaction was aborted`)
    return results.map(([error, value]) => {
      if (error) throw new Error(`${doing} failed: ${error.message}`, { cause: error })
      return value
    })
  }
}

function where(stream: StreamSpec, partition: number): string {
  return `${stream.aggregate}/${partition}`
}
