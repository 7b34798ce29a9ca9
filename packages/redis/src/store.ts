import type { Store } from '@esk/core/driver'
import type { Redis } from 'ioredis'
import { closeConnection, createConnection } from './connection.js'
import { RedisOutcomeChannel } from './outcome-channel.js'
import { planConnection, resolveChannelOptions, resolveSnapshotOptions, type RedisStoreOptions } from './options.js'
import { RedisProjectionStore } from './projection-store.js'
import { RedisSnapshotStore } from './snapshot-store.js'

/**
 * The Redis storage side of a driver: a {@link RedisSnapshotStore} and a {@link RedisOutcomeChannel}
 * over one command connection, plus the channel's subscriber connection once a client waits.
 * It closes the connections it created and never the `client` it was given.
 */
export class RedisStore implements Store {
  readonly snapshots: RedisSnapshotStore
  readonly outcomes: RedisOutcomeChannel
  /** Views and positions of local projections and subscriptions, on the same connection. */
  readonly projections: RedisProjectionStore
  /** The connection used for commands and PUBLISH: the caller's `client`, or one this store created. */
  readonly client: Redis
  private readonly ownsClient: boolean
  private closing: Promise<void> | undefined

  /**
   * Validates `options`, throwing `ESK_CONFIGURATION` with the option's name, then starts connecting;
   * commands issued meanwhile wait in ioredis's offline queue.
   */
  constructor(options: RedisStoreOptions = {}) {
    const owner = 'redisStore'
    // Validate everything before opening a connection that a later check would leak.
    const snapshotOptions = resolveSnapshotOptions(options, owner)
    const channelOptions = resolveChannelOptions(options, owner)
    const plan = planConnection(options, owner)
    if (plan.kind === 'borrowed') {
      this.client = plan.client
      this.ownsClient = false
    } else {
      this.client = createConnection(plan)
      this.ownsClient = true
      const { logger } = channelOptions
      this.client.on('error', (error: Error) => logger.warn('redis connection failed; retrying', { error }))
    }
    this.snapshots = new RedisSnapshotStore(this.client, snapshotOptions)
    this.outcomes = new RedisOutcomeChannel(this.client, this.snapshots, channelOptions)
    this.projections = new RedisProjectionStore(this.client, { keyPrefix: snapshotOptions.keyPrefix })
  }

  /** Closes the subscriber and, if this store created it, the command connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown()
    return this.closing
  }

  private async shutdown(): Promise<void> {
    await this.outcomes.close()
    await this.snapshots.close()
    if (this.ownsClient) await closeConnection(this.client)
  }
}

/** Creates a {@link RedisStore}; see {@link RedisStoreOptions} for the options and their defaults. */
export function redisStore(options: RedisStoreOptions = {}): RedisStore {
  return new RedisStore(options)
}
