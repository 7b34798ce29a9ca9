import { ClosedError, ErrorCode, hasCode, type Logger } from '@esk/core'
import {
  DelayQueue,
  newClientAddress,
  type Outcome,
  type OutcomeChannel,
  type OutcomeWait,
  PendingOutcome,
  type Reply,
  type CommandKey,
  commandKey,
  type SnapshotStore,
  type StreamSpec,
} from '@esk/core/driver'
import type { Redis } from 'ioredis'
import { decodeOutcome, replyMessages } from './codec.js'
import { LINES_ADDRESS_SUFFIX, replyChannel } from './keys.js'
import { resolveChannelOptions, type RedisOutcomeChannelOptions } from './options.js'
import { ReplySubscription } from './subscription.js'

/**
 * Carries outcomes from processors to clients over Redis pub/sub. Each instance listens on one
 * channel of its own, `<prefix>replies:<address>`, on a dedicated connection opened by the first
 * `wait`, and hands each outcome it hears to the waiters of its command (aggregate id and command
 * id); no client sees another's replies. A processor answers it once per batch: a message holds
 * one outcome per line.
 *
 * Pub/sub is best effort, so a waiter also reads the recorded outcome from the snapshot store:
 * - once, as soon as the subscription is live, if it registered before that (or the connection
 *   dropped since). Processors record an outcome before they publish it, so a reply published
 *   before the subscription took effect is found by this read, and any later one arrives by
 *   pub/sub. This is what lets a caller send its command right after `wait` returns.
 * - periodically, after `outcomePollMs` and then at most every `outcomePollMaxMs`, for outcomes
 *   recorded but never published (a processor that crashed between its save and its publish).
 */
export class RedisOutcomeChannel implements OutcomeChannel {
  /** Ends with {@link LINES_ADDRESS_SUFFIX}: processors may send this client a batch's outcomes in one message. */
  readonly address: string = newClientAddress() + LINES_ADDRESS_SUFFIX
  private readonly pollMs: number
  private readonly pollMaxMs: number
  private readonly logger: Logger
  private readonly keyPrefix: string
  /** The waiting calls by {@link waiterKey}; more than one when calls share a command. */
  private readonly waiters = new Map<string, Waiter[]>()
  private readonly subscription: ReplySubscription
  private closed = false
  /** Reads waiting to be made together (see {@link check}), and the timer that makes them. */
  private readonly due: DueRead[] = []
  private reading: ReturnType<typeof setTimeout> | undefined
  /** Reads left per partition in the current second. */
  private readonly budgets = new Map<string, { since: number; left: number }>()
  /** Each waiter's first read, `outcomePollMs` after its wait began, on one timer (see {@link DelayQueue}). */
  private readonly firstPolls: DelayQueue<Waiter>

  /**
   * `client` publishes and is never closed here; the subscriber connection is `client.duplicate()`
   * and is closed by {@link close}. `snapshots` is where outcomes are recorded.
   */
  constructor(
    private readonly client: Redis,
    private readonly snapshots: SnapshotStore,
    options: RedisOutcomeChannelOptions = {},
  ) {
    const resolved = resolveChannelOptions(options)
    this.keyPrefix = resolved.keyPrefix
    this.pollMs = resolved.outcomePollMs
    this.pollMaxMs = resolved.outcomePollMaxMs
    this.logger = resolved.logger
    this.firstPolls = new DelayQueue(this.pollMs, (waiter) => this.poll(waiter, this.pollMs))
    this.subscription = new ReplySubscription(
      client,
      replyChannel(this.keyPrefix, this.address),
      {
        message: (text) => this.deliver(text),
        live: () => this.catchUp(),
        lost: () => this.uncoverAll(),
      },
      this.logger,
    )
  }

  /**
   * Registers the waiter before it returns, so the command may be sent at once. Its outcome
   * resolves with the command's outcome, or undefined once stopped; it rejects with `ESK_CLOSED`
   * if the channel is closed while waiting.
   */
  wait(stream: StreamSpec, partition: number, command: CommandKey): OutcomeWait {
    if (this.closed) return closedWait()
    this.subscription.start()
    const waiter = new Waiter(stream, partition, command, this.subscription.isLive, this.release)
    const list = this.waiters.get(waiter.key)
    if (list) list.push(waiter)
    else this.waiters.set(waiter.key, [waiter])
    waiter.firstPoll = this.firstPolls.add(waiter)
    return waiter
  }

  /**
   * Publishes the replies to their clients' channels, one PUBLISH per client in one round trip;
   * rejects if any PUBLISH failed.
   */
  async publish(stream: StreamSpec, partition: number, replies: Reply[]): Promise<void> {
    if (replies.length === 0) return
    const messages = replyMessages(this.keyPrefix, replies)
    let failure: Error | undefined
    if (messages.length === 2) {
      // A batch's replies usually go to one client. An ioredis pipeline costs more CPU than the
      // PUBLISH it would carry (it copies every script defined on the client), so none is made.
      failure = await this.client.publish(messages[0]!, messages[1]!).then(
        () => undefined,
        (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
      )
    } else {
      const pipeline = this.client.pipeline()
      for (let i = 0; i < messages.length; i += 2) pipeline.publish(messages[i]!, messages[i + 1]!)
      const results = await pipeline.exec()
      failure = results?.find(([error]) => error)?.[0] ?? undefined
    }
    if (failure) {
      throw new Error(
        `publishing ${replies.length} replies of ${stream.aggregate}/${partition} failed: ${failure.message}; ` +
          `clients find the recorded outcomes by polling`,
        { cause: failure },
      )
    }
  }

  /** Rejects pending waits with `ESK_CLOSED` and closes the subscriber connection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true
    const error = new ClosedError('this Redis outcome channel')
    for (const list of [...this.waiters.values()]) for (const waiter of [...list]) waiter.fail(error)
    clearTimeout(this.reading)
    this.reading = undefined
    for (const item of this.due.splice(0)) item.done()
    await this.subscription.close()
  }

  /** Takes a settled waiter out of {@link waiters}. */
  private readonly release = (waiter: Waiter): void => {
    this.firstPolls.cancel(waiter.firstPoll)
    clearTimeout(waiter.timer)
    const list = this.waiters.get(waiter.key)
    if (!list) return
    const at = list.indexOf(waiter)
    if (at >= 0) list.splice(at, 1)
    if (list.length === 0) this.waiters.delete(waiter.key)
  }

  /** Reads a waiter's recorded outcome after `delay`, and again, doubling, while it waits (after its first read). */
  private schedule(waiter: Waiter, delay: number): void {
    waiter.timer = setTimeout(this.poll, delay, waiter, delay)
  }

  private readonly poll = (waiter: Waiter, delay: number): void => {
    void this.check(waiter).finally(() => {
      if (!waiter.settled) this.schedule(waiter, Math.min(delay * 2, this.pollMaxMs))
    })
  }

  /** A message holds one outcome, or several, one per line (see `replyMessages`). */
  private deliver(message: string): void {
    if (!message.includes('\n')) return this.deliverOne(message)
    for (const text of message.split('\n')) this.deliverOne(text)
  }

  private deliverOne(text: string): void {
    let outcome: Outcome
    try {
      outcome = decodeOutcome(text, replyChannel(this.keyPrefix, this.address), true)
    } catch (error) {
      this.logger.warn('ignoring a malformed reply', { address: this.address, error })
      return
    }
    const list = this.waiters.get(waiterKey(outcome))
    if (list) for (const waiter of list.length === 1 ? list : [...list]) waiter.settle(outcome)
  }

  /** The subscription is live: read once for every waiter whose reply may have been missed. */
  private catchUp(): void {
    for (const list of this.waiters.values()) {
      for (const waiter of list) {
        if (waiter.covered) continue
        waiter.covered = true
        void this.check(waiter)
      }
    }
  }

  private uncoverAll(): void {
    for (const list of this.waiters.values()) for (const waiter of list) waiter.covered = false
  }

  /**
   * Reads the recorded outcome of a waiter and settles it when there is one; resolves once read
   * (or failed). Never rejects. Reads due within {@link READ_COALESCE_MS} of each other go together,
   * one round trip per partition: with many calls waiting (a backlog under overload), polling
   * costs a few reads per interval, not one per waiting call.
   */
  private check(waiter: Waiter): Promise<void> {
    return new Promise((done) => {
      this.due.push({ waiter, done })
      this.reading ??= setTimeout(() => void this.readDue(), READ_COALESCE_MS)
    })
  }

  private async readDue(): Promise<void> {
    this.reading = undefined
    const groups = new Map<string, DueRead[]>()
    for (const item of this.due.splice(0)) {
      // Settled meanwhile (its reply arrived): nothing to read.
      if (item.waiter.settled) {
        item.done()
        continue
      }
      const group = partitionOf(item.waiter)
      let list = groups.get(group)
      if (!list) groups.set(group, (list = []))
      list.push(item)
    }
    await Promise.all([...groups.values()].map((items) => this.readGroup(items)))
  }

  /**
   * Reads the outcomes of one partition's due waiters, in chunks of {@link READ_CHUNK}, at most
   * {@link MAX_READS_PER_SECOND} a second: the others read at their next turn. A backlog of calls
   * under overload is waiting for the processor, not for a lost reply, and reading for all of them
   * would take Redis from the processors that are to answer them.
   */
  private async readGroup(all: DueRead[]): Promise<void> {
    const { stream, partition } = all[0]!.waiter
    const group = partitionOf(all[0]!.waiter)
    const now = Date.now()
    let budget = this.budgets.get(group)
    if (!budget || now - budget.since >= 1_000) this.budgets.set(group, (budget = { since: now, left: MAX_READS_PER_SECOND }))
    const allowed = Math.min(all.length, budget.left)
    budget.left -= allowed
    for (const skipped of all.slice(allowed)) skipped.done()
    const items = all.slice(0, allowed)
    if (items.length === 0) return
    try {
      for (let i = 0; i < items.length; i += READ_CHUNK) {
        const chunk = items.slice(i, i + READ_CHUNK)
        const found = await this.readOutcomes(stream, partition, chunk.map((item) => item.waiter.command))
        for (const { waiter } of chunk) {
          const outcome = found.get(commandKey(waiter.command))
          if (outcome) waiter.settle(outcome)
        }
      }
    } catch (error) {
      if (hasCode(error, ErrorCode.Serialization)) {
        // Some record is corrupt: read one by one, so only its callers hear of it.
        for (const { waiter } of items) await this.checkOne(waiter)
      } else if (!this.closed) {
        this.logger.warn('reading recorded outcomes failed; trying again', {
          aggregate: stream.aggregate,
          partition,
          waiting: items.length,
          error,
        })
      }
    } finally {
      for (const { done } of items) done()
    }
  }

  private async readOutcomes(stream: StreamSpec, partition: number, commands: CommandKey[]): Promise<Map<string, Outcome>> {
    if (this.snapshots.readOutcomes) return this.snapshots.readOutcomes(stream, partition, commands)
    const found = new Map<string, Outcome>()
    for (const command of commands) {
      const outcome = await this.snapshots.readOutcome(stream, partition, command)
      if (outcome) found.set(commandKey(command), outcome)
    }
    return found
  }

  /** Reads one waiter's recorded outcome; a corrupt record fails the waiter. Never rejects. */
  private async checkOne(waiter: Waiter): Promise<void> {
    try {
      const outcome = await this.snapshots.readOutcome(waiter.stream, waiter.partition, waiter.command)
      if (outcome) waiter.settle(outcome)
    } catch (error) {
      // A corrupt record stays corrupt: tell the caller instead of polling until its timeout.
      if (hasCode(error, ErrorCode.Serialization)) return waiter.fail(error)
    }
  }
}

/** The partition a waiter waits on, as a map key. */
function partitionOf(waiter: Waiter): string {
  return `${waiter.stream.aggregate}\u0000${waiter.partition}`
}

/** A waiter whose recorded outcome is to be read, and what to call once it was. */
interface DueRead {
  waiter: Waiter
  done: () => void
}

/** How long reads due are gathered before they are made together, ms. */
const READ_COALESCE_MS = 20

/** Most commands read in one round trip. */
const READ_CHUNK = 500

/** Most commands of one partition whose outcomes are read in a second. */
const MAX_READS_PER_SECOND = 1_000

/** One pending `wait`. */
class Waiter extends PendingOutcome {
  /** {@link waiterKey} of `command`. */
  readonly key: string
  /** The ticket of its first read in `firstPolls`. */
  firstPoll = -1
  /** Its later reads, if it waits that long. */
  timer: ReturnType<typeof setTimeout> | undefined

  /**
   * `covered` is false while a reply to this waiter may have been published without reaching us:
   * it registered before the subscription was live, or the connection dropped since.
   */
  constructor(
    readonly stream: StreamSpec,
    readonly partition: number,
    readonly command: CommandKey,
    public covered: boolean,
    release: (waiter: Waiter) => void,
  ) {
    // Every waiter is a Waiter: the channel's one release function serves them all.
    super(release as (wait: PendingOutcome) => void)
    this.key = waiterKey(command)
  }
}

/**
 * A command's key among the waiters: its aggregate id's length, the aggregate id and the command
 * id, so no two commands share one. Cheaper than {@link commandKey} (JSON), which a client would
 * build twice per call; the store's maps stay keyed by `commandKey`.
 */
function waiterKey(command: CommandKey): string {
  return `${command.aggregateId.length}:${command.aggregateId}${command.commandId}`
}

/** A wait on a closed channel: rejected with `ESK_CLOSED`. */
function closedWait(): OutcomeWait {
  const wait = new PendingOutcome(() => undefined)
  wait.fail(new ClosedError('this Redis outcome channel'))
  return wait
}
