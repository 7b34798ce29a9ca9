import type { Logger } from '@esk/core'
import type { Redis } from 'ioredis'
import { closeConnection } from './connection.js'

/** What a {@link ReplySubscription} tells its owner. */
export interface SubscriptionEvents {
  /** A message arrived on the channel. */
  message(text: string): void
  /** SUBSCRIBE was acknowledged: from now on every PUBLISH to the channel reaches us. */
  live(): void
  /** The connection dropped: messages published from now until the next `live` are lost. */
  lost(): void
}

/**
 * One pub/sub channel on a dedicated connection, kept subscribed across reconnects. It says
 * exactly when the subscription is live, because a message published before that is lost and the
 * owner must then read what it may have missed.
 */
export class ReplySubscription {
  private connection: Redis | undefined
  private live = false
  private closed = false
  private closing: Promise<void> | undefined

  constructor(
    private readonly source: Redis,
    private readonly channel: string,
    private readonly events: SubscriptionEvents,
    private readonly logger: Logger,
  ) {}

  /** True while SUBSCRIBE is acknowledged on a connection that has not dropped since. */
  get isLive(): boolean {
    return this.live
  }

  /** Opens the connection and subscribes; later calls do nothing. */
  start(): void {
    if (this.connection || this.closed) return
    // We subscribe on every 'ready' ourselves instead of ioredis's autoResubscribe, to know when
    // each re-subscription is acknowledged. The offline queue is off: SUBSCRIBE is only ever sent
    // on 'ready', and nothing else goes over this connection.
    const connection = this.source.duplicate({
      lazyConnect: false,
      autoResubscribe: false,
      enableOfflineQueue: false,
    })
    this.connection = connection
    connection.on('message', (channel: string, message: string) => {
      if (channel === this.channel) this.events.message(message)
    })
    connection.on('ready', () => this.subscribe(connection))
    connection.on('close', () => {
      if (!this.live) return
      this.live = false
      this.events.lost()
    })
    connection.on('error', (error: Error) => {
      this.logger.warn('redis reply connection failed; waiting clients fall back to reading outcomes', {
        channel: this.channel,
        error,
      })
    })
  }

  /** Unsubscribes by closing the connection. Idempotent. */
  close(): Promise<void> {
    this.closed = true
    this.live = false
    this.closing ??= this.connection ? closeConnection(this.connection) : Promise.resolve()
    return this.closing
  }

  private subscribe(connection: Redis): void {
    connection.subscribe(this.channel).then(
      () => {
        if (this.closed || this.live || connection.status !== 'ready') return
        this.live = true
        this.events.live()
      },
      (error: unknown) => {
        if (this.closed) return
        // The next 'ready' subscribes again; until then clients poll the recorded outcomes.
        this.logger.warn('subscribing to outcome replies failed; retrying on reconnect', { channel: this.channel, error })
      },
    )
  }
}
