import { FencedError, UnavailableError } from '@esk/core'
import {
  commandKey,
  type Checkpoint,
  type CommandKey,
  type LoadedBatch,
  type Outcome,
  type RecentCommand,
  type SnapshotStore,
  type SnapshotWrite,
  type StoredSnapshot,
  type StreamSpec,
  type UnloggedKeys,
} from '@esk/core/driver'
import type { Redis } from 'ioredis'
import {
  checkWrite,
  decodeCheckpoint,
  decodeOutcome,
  decodeSnapshot,
  decodeStoredSnapshot,
  encodeOutcome,
  encodeSnapshot,
  encodeWindow,
  replyMessages,
} from './codec.js'
import { CHECKPOINT_FIELDS, PartitionKeys, StateFields } from './keys.js'
import { resolveSnapshotOptions, type RedisSnapshotStoreOptions } from './options.js'
import { RESET_SCRIPT, SAVE_SCRIPT, defineScript, type ScriptCall } from './scripts.js'

/**
 * Snapshots, checkpoints and outcomes in Redis. Every write goes through a Lua script that first
 * checks the partition's owner token, so a processor that lost the partition (or whose data was
 * flushed under it) can never write into it again; saves are atomic and only forward. It uses the
 * client it is given and never closes it; see {@link PartitionKeys} for the key layout.
 */
export class RedisSnapshotStore implements SnapshotStore {
  private readonly keyPrefix: string
  private readonly unloggedWindow: number
  private readonly saveScript: ScriptCall
  private readonly resetScript: ScriptCall
  /** Replies ride with the save script: one round trip per batch instead of two. */
  readonly publishesReplies = true

  constructor(
    private readonly client: Redis,
    options: RedisSnapshotStoreOptions = {},
  ) {
    const resolved = resolveSnapshotOptions(options)
    this.keyPrefix = resolved.keyPrefix
    this.unloggedWindow = resolved.unloggedWindow
    this.saveScript = defineScript(client, 'save', SAVE_SCRIPT)
    this.resetScript = defineScript(client, 'reset', RESET_SCRIPT)
  }

  async acquire(stream: StreamSpec, partition: number, token: string): Promise<void> {
    await this.client.hset(this.keys(stream, partition).state, StateFields.owner, token)
  }

  /** Reads ownership, checkpoint, snapshots and unlogged outcomes in one MULTI (one round trip, one consistent view). */
  async load(
    stream: StreamSpec,
    partition: number,
    token: string,
    aggregateIds: string[],
    commands: CommandKey[],
  ): Promise<LoadedBatch> {
    const keys = this.keys(stream, partition)
    const fields: string[] = [StateFields.owner, ...CHECKPOINT_FIELDS]
    for (const id of aggregateIds) fields.push(StateFields.snapshot(id), StateFields.window(id))
    const commandKeys = commands.map(commandKey)
    const transaction = this.client.multi()
    transaction.hmget(keys.state, ...fields)
    if (commandKeys.length > 0) transaction.hmget(keys.unlogged, ...commandKeys)
    const replies = await this.exec(transaction, `loading ${where(stream, partition)}`)
    const values = replies[0] as Array<string | null>
    const checkpoint = decodeCheckpoint(values.slice(1, 4), keys.state)
    const snapshots = new Map<string, StoredSnapshot>()
    aggregateIds.forEach((id, i) => {
      const text = values[4 + 2 * i]
      if (text == null) return
      const { snapshot, windowInField } = decodeStoredSnapshot(text, keys.state, StateFields.snapshot(id), values[5 + 2 * i])
      // Its window is stored on its own: the next save of this aggregate builds on its text.
      if (windowInField) snapshot.windowMemo = WindowMemo.of(snapshot.recent, values[5 + 2 * i]!)
      snapshots.set(id, snapshot)
    })
    const unlogged = new Map<string, Outcome>()
    if (commandKeys.length > 0) {
      const texts = replies[1] as Array<string | null>
      commandKeys.forEach((key, i) => {
        const text = texts[i]
        if (text != null) unlogged.set(key, decodeOutcome(text, keys.unlogged))
      })
    }
    return { owned: values[0] === token, claimed: values[0] != null, snapshots, unlogged, checkpoint }
  }

  async read(stream: StreamSpec, partition: number, aggregateId: string): Promise<StoredSnapshot | undefined> {
    const keys = this.keys(stream, partition)
    const [text, window, ready] = await this.client.hmget(
      keys.state,
      StateFields.snapshot(aggregateId),
      StateFields.window(aggregateId),
      StateFields.ready,
    )
    if (ready !== '1') {
      throw new UnavailableError(
        `the snapshots of ${where(stream, partition)} are being rebuilt from the log (or no processor has ` +
          `recovered it yet); retry shortly`,
        { aggregate: stream.aggregate, partition },
      )
    }
    return text == null ? undefined : decodeSnapshot(text, keys.state, StateFields.snapshot(aggregateId), window)
  }

  async readOutcome(stream: StreamSpec, partition: number, command: CommandKey): Promise<Outcome | undefined> {
    return (await this.readOutcomes(stream, partition, [command])).get(commandKey(command))
  }

  /**
   * Reads the recorded outcomes of many commands of one partition in one round trip: their
   * aggregates' snapshots (accepted commands are in their windows) and the unlogged outcomes.
   * Returns those found, by {@link commandKey}.
   */
  async readOutcomes(stream: StreamSpec, partition: number, commands: readonly CommandKey[]): Promise<Map<string, Outcome>> {
    const found = new Map<string, Outcome>()
    if (commands.length === 0) return found
    const keys = this.keys(stream, partition)
    const ids = [...new Set(commands.map((c) => c.aggregateId))]
    const transaction = this.client.multi()
    transaction.hmget(keys.state, ...ids.flatMap((id) => [StateFields.snapshot(id), StateFields.window(id)]))
    transaction.hmget(keys.unlogged, ...commands.map(commandKey))
    const [snapshotTexts, outcomeTexts] = (await this.exec(transaction, `reading outcomes of ${where(stream, partition)}`)) as [
      Array<string | null>,
      Array<string | null>,
    ]
    const windows = new Map<string, StoredSnapshot['recent']>()
    ids.forEach((id, i) => {
      const text = snapshotTexts[2 * i]
      if (text != null) windows.set(id, decodeSnapshot(text, keys.state, StateFields.snapshot(id), snapshotTexts[2 * i + 1]).recent)
    })
    commands.forEach((command, i) => {
      const entry = windows.get(command.aggregateId)?.find((r) => r.commandId === command.commandId)
      const text = outcomeTexts[i]
      if (entry) found.set(commandKey(command), { status: 'accepted', aggregateId: command.aggregateId, ...entry })
      else if (text != null) found.set(commandKey(command), decodeOutcome(text, keys.unlogged))
    })
    return found
  }

  async checkpoint(stream: StreamSpec, partition: number): Promise<Checkpoint | undefined> {
    const key = this.keys(stream, partition).state
    return decodeCheckpoint(await this.client.hmget(key, ...CHECKPOINT_FIELDS), key)
  }

  /** The unlogged outcomes' command keys, oldest first (one LRANGE), and the window they are kept in. */
  async unloggedKeys(stream: StreamSpec, partition: number): Promise<UnloggedKeys> {
    const keys = await this.client.lrange(this.keys(stream, partition).unloggedOrder, 0, -1)
    return { keys, window: this.unloggedWindow }
  }

  /**
   * Runs the save script: fenced by `token`; snapshots forward-only, checkpoint field by field
   * forward-only; then the write's replies are published on the clients' reply channels (see
   * `RedisOutcomeChannel`), in the same script, so only once the outcomes are recorded.
   */
  async save(stream: StreamSpec, partition: number, token: string, write: SnapshotWrite): Promise<void> {
    checkWrite(write, where(stream, partition))
    const keys = this.keys(stream, partition)
    const doing = `saving ${write.snapshots.length} snapshots and ${write.unlogged.length} outcomes of ${where(stream, partition)}`
    const windows = write.snapshots.map((snapshot) => windowText(snapshot.recent, snapshot.windowMemo))
    await this.run(this.saveScript, keys, this.saveArgs(token, write, windows), stream, partition, doing)
    write.snapshots.forEach((snapshot, i) => (snapshot.windowMemo = WindowMemo.of(snapshot.recent, windows[i]!)))
  }

  private saveArgs(token: string, write: SnapshotWrite, windows: string[]): string[] {
    const { snapshots, checkpoint, unlogged } = write
    const args: string[] = [
      token,
      String(snapshots.length),
      String(checkpoint.offset),
      String(checkpoint.commandPosition),
      String(checkpoint.schemaVersion),
      write.ready ? '1' : '0',
      String(this.unloggedWindow),
      String(unlogged.length),
    ]
    snapshots.forEach((snapshot, i) => args.push(snapshot.aggregateId, String(snapshot.offset), encodeSnapshot(snapshot), windows[i]!))
    for (const outcome of unlogged) args.push(commandKey(outcome), encodeOutcome(outcome))
    if (write.replies) args.push(...replyMessages(this.keyPrefix, write.replies))
    return args
  }

  /** Drops snapshots, checkpoint and unlogged outcomes in one fenced script; the owner stays. */
  async reset(stream: StreamSpec, partition: number, token: string): Promise<void> {
    await this.run(this.resetScript, this.keys(stream, partition), [token], stream, partition, `resetting ${where(stream, partition)}`)
  }

  /** Does nothing: the client belongs to whoever passed it in. */
  async close(): Promise<void> {}

  /** Runs a fenced script and returns its reply; `doing` names the write and its partition in errors. */
  private async run(script: ScriptCall, keys: PartitionKeys, args: string[], stream: StreamSpec, partition: number, doing: string): Promise<unknown> {
    try {
      return await script(3, ...keys.all, ...args)
    } catch (error) {
      const message = (error as Error).message
      if (message.startsWith('ESK_FENCED')) {
        const owner = message.startsWith('ESK_FENCED none') ? 'none' : 'other'
        throw new FencedError(
          `${doing} was refused: another processor owns the partition in Redis, or its ` +
            `state was flushed; this processor must take the partition back (replaying it) before it writes again`,
          { aggregate: stream.aggregate, partition, owner },
        )
      }
      throw new Error(`${doing} failed: ${message}`, { cause: error })
    }
  }

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

/**
 * The text of a window as this store last loaded or sent it, with the entry that was its newest:
 * kept on the snapshot (`windowMemo`), so the aggregate's next save builds on it. Only the text
 * matters, not whether Redis kept it (a save older than the stored snapshot writes nothing): every
 * save sends its window whole, so the text only has to match the processor's window.
 */
class WindowMemo {
  private constructor(
    readonly newest: RecentCommand,
    readonly text: string,
    /** Entries (lines) in `text`. */
    readonly length: number,
  ) {}

  /** The memo of `text`, the encoding of `recent`; undefined for an empty window. */
  static of(recent: readonly RecentCommand[], text: string): WindowMemo | undefined {
    const newest = recent[recent.length - 1]
    return newest && new WindowMemo(newest, text, recent.length)
  }
}

/**
 * The text of a window, built on the memo of the last text of its aggregate when there is one and
 * it still applies: a window only gains entries at its end and loses them at its start, so that
 * text, less its oldest lines, and the new entries make the whole. A window is up to `dedupWindow`
 * entries and changes by one entry a command: encoding every entry of it at every save would cost
 * more than the rest of the save. The memo applies when its newest entry (the same object, not an
 * equal one) is still in the window.
 */
function windowText(recent: readonly RecentCommand[], memo: unknown): string {
  if (memo instanceof WindowMemo) {
    const at = recent.lastIndexOf(memo.newest)
    const kept = at < 0 ? undefined : keptLines(memo, memo.length - (at + 1))
    if (kept !== undefined) return at === recent.length - 1 ? kept : `${kept}\n${encodeWindow(recent.slice(at + 1))}`
  }
  return encodeWindow(recent)
}

/** The text of the memo's window without its `drop` oldest lines; undefined when that leaves no line. */
function keptLines(memo: WindowMemo, drop: number): string | undefined {
  if (drop < 0 || drop >= memo.length) return undefined
  let from = 0
  for (let d = 0; d < drop; d++) {
    const end = memo.text.indexOf('\n', from)
    if (end < 0) return undefined
    from = end + 1
  }
  return memo.text.slice(from)
}

function where(stream: StreamSpec, partition: number): string {
  return `${stream.aggregate}/${partition}`
}
