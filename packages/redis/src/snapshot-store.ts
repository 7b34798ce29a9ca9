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
import { CHECKPOINT_FIELDS, PartitionKeys, StateFields, snapshotFields } from './keys.js'
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
    for (const id of aggregateIds) fields.push(...snapshotFields(id))
    const commandKeys = commands.map(commandKey)
    const transaction = this.client.multi()
    transaction.hmget(keys.state, ...fields)
    if (commandKeys.length > 0) transaction.hmget(keys.unlogged, ...commandKeys)
    const replies = await this.exec(transaction, `loading ${where(stream, partition)}`)
    const values = replies[0] as Array<string | null>
    const checkpoint = decodeCheckpoint(values.slice(1, 4), keys.state)
    const snapshots = new Map<string, StoredSnapshot>()
    aggregateIds.forEach((id, i) => {
      const at = 4 + 3 * i
      const text = values[at]
      if (text == null) return
      const { snapshot, stored } = decodeStoredSnapshot(text, keys.state, StateFields.snapshot(id), values[at + 1], values[at + 2])
      // Its window is stored on its own: the next save of this aggregate builds on its texts.
      if (stored) snapshot.windowMemo = WindowMemo.stored(snapshot, stored.base, stored.tail)
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
    const [text, window, tail, ready] = await this.client.hmget(keys.state, ...snapshotFields(aggregateId), StateFields.ready)
    if (ready !== '1') {
      throw new UnavailableError(
        `the snapshots of ${where(stream, partition)} are being rebuilt from the log (or no processor has ` +
          `recovered it yet); retry shortly`,
        { aggregate: stream.aggregate, partition },
      )
    }
    return text == null ? undefined : decodeSnapshot(text, keys.state, StateFields.snapshot(aggregateId), window, tail)
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
    transaction.hmget(keys.state, ...ids.flatMap(snapshotFields))
    transaction.hmget(keys.unlogged, ...commands.map(commandKey))
    const [snapshotTexts, outcomeTexts] = (await this.exec(transaction, `reading outcomes of ${where(stream, partition)}`)) as [
      Array<string | null>,
      Array<string | null>,
    ]
    const windows = new Map<string, StoredSnapshot['recent']>()
    ids.forEach((id, i) => {
      const [text, window, tail] = snapshotTexts.slice(3 * i, 3 * i + 3)
      if (text != null) windows.set(id, decodeSnapshot(text, keys.state, StateFields.snapshot(id), window, tail).recent)
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
   *
   * Each snapshot's window goes as its newest entries only when the store's memo of what it last
   * wrote for the aggregate still applies (see {@link windowWrite}); the script refuses those
   * parts if Redis holds another snapshot than the memo's, and the write goes again whole.
   */
  async save(stream: StreamSpec, partition: number, token: string, write: SnapshotWrite): Promise<void> {
    checkWrite(write, where(stream, partition))
    const keys = this.keys(stream, partition)
    const doing = `saving ${write.snapshots.length} snapshots and ${write.unlogged.length} outcomes of ${where(stream, partition)}`
    let windows = write.snapshots.map((snapshot) => windowWrite(snapshot, snapshot.windowMemo))
    const written = await this.run(this.saveScript, keys, this.saveArgs(token, write, windows), stream, partition, doing)
    if (Array.isArray(written)) {
      windows = write.snapshots.map((snapshot) => windowWrite(snapshot, undefined))
      const again = await this.run(this.saveScript, keys, this.saveArgs(token, write, windows), stream, partition, doing)
      if (Array.isArray(again)) throw new Error(`${doing} failed: whole windows were refused as stale`)
    }
    write.snapshots.forEach((snapshot, i) => (snapshot.windowMemo = windows[i]!.memo))
  }

  private saveArgs(token: string, write: SnapshotWrite, windows: WindowWrite[]): string[] {
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
    snapshots.forEach((snapshot, i) => {
      const { expected, text } = windows[i]!
      args.push(snapshot.aggregateId, String(snapshot.offset), encodeSnapshot(snapshot), expected, text)
    })
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
 * What this store last wrote (or loaded) of an aggregate's window: the texts of its two fields,
 * the entry that was the window's newest, and the offset of the snapshot written with them. Kept
 * on the snapshot (`windowMemo`), so the aggregate's next save builds on it.
 */
class WindowMemo {
  constructor(
    readonly newest: RecentCommand,
    /** The snapshot's offset as the script stores it in `o:`. */
    readonly offset: string,
    readonly base: string,
    /** Entries (lines) in `base`. */
    readonly baseLines: number,
    readonly tail: string,
    /** Entries (lines) in `tail`. */
    readonly tailLines: number,
  ) {}

  /** The memo of a snapshot read with its window's two texts; undefined for an empty window. */
  static stored(snapshot: StoredSnapshot, base: string, tail: string): WindowMemo | undefined {
    const newest = snapshot.recent[snapshot.recent.length - 1]
    return newest && new WindowMemo(newest, String(snapshot.offset), base, lines(base), tail, lines(tail))
  }
}

/** What a save sends of a window: `text` is the whole window when `expected` is empty, else its newest entries. */
interface WindowWrite {
  expected: string
  text: string
  memo: WindowMemo | undefined
}

/**
 * What a save sends of a snapshot's window, built on the memo of the aggregate's stored texts when
 * there is one and it still applies: it does when its newest entry (the same object, not an equal
 * one) is still in the window, and no older one than the stored texts hold, since a window only
 * gains entries at its end and loses them at its start. Then the entries added since go on the end
 * of the stored newest ones, and only those are sent, until they number more than about the square
 * root of twice the window: then the whole window is sent, built from the stored texts less their
 * oldest lines. A window is up to `dedupWindow` entries and changes by one a command, so a save
 * sends a few entries, not the whole window (about 8 against 32 at the default, counting the whole
 * windows sent now and then): it is most of the bytes a batch writes to Redis. The texts read back
 * always hold the window, and perhaps a few older entries before it, which the snapshot's `recent`
 * (`{split: n}`) drops.
 */
function windowWrite(snapshot: StoredSnapshot, memo: unknown): WindowWrite {
  const { recent } = snapshot
  const offset = String(snapshot.offset)
  const newest = recent[recent.length - 1]
  const whole = (text: string): WindowWrite => ({
    expected: '',
    text,
    memo: newest && new WindowMemo(newest, offset, text, recent.length, '', 0),
  })
  if (!(memo instanceof WindowMemo) || !newest) return whole(encodeWindow(recent))
  const at = recent.lastIndexOf(memo.newest)
  // The stored texts must hold every entry up to the known one (a window that gained older entries does not extend them).
  if (at < 0 || at + 1 > memo.baseLines + memo.tailLines) return whole(encodeWindow(recent))
  const added = recent.length - 1 - at
  const addedText = added === 0 ? '' : encodeWindow(recent.slice(at + 1))
  const tailLines = memo.tailLines + added
  if (tailLines <= Math.max(1, Math.round(Math.sqrt(2 * recent.length)))) {
    const tail = joinLines(memo.tail, addedText)
    return { expected: memo.offset, text: tail, memo: new WindowMemo(newest, offset, memo.base, memo.baseLines, tail, tailLines) }
  }
  const kept = keptLines(joinLines(memo.base, memo.tail), memo.baseLines + memo.tailLines - (at + 1))
  return kept === undefined ? whole(encodeWindow(recent)) : whole(joinLines(kept, addedText))
}

/** Two texts of lines as one. */
function joinLines(first: string, second: string): string {
  return first === '' ? second : second === '' ? first : `${first}\n${second}`
}

/** Lines in a text of lines (none in an empty one). */
function lines(text: string): number {
  if (text === '') return 0
  let count = 1
  for (let at = text.indexOf('\n'); at >= 0; at = text.indexOf('\n', at + 1)) count++
  return count
}

/** `text` without its `drop` oldest lines; undefined when that leaves no line. */
function keptLines(text: string, drop: number): string | undefined {
  let from = 0
  for (let d = 0; d < drop; d++) {
    const end = text.indexOf('\n', from)
    if (end < 0) return undefined
    from = end + 1
  }
  return from < text.length ? text.slice(from) : undefined
}

function where(stream: StreamSpec, partition: number): string {
  return `${stream.aggregate}/${partition}`
}
