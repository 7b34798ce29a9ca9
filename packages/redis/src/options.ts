import { ConfigurationError, consoleLogger, type Logger } from '@esk/core'
import type { Redis, RedisOptions } from 'ioredis'

/** Options of {@link redisStore}. Every field is optional; defaults are in {@link REDIS_STORE_DEFAULTS}. */
export interface RedisStoreOptions {
  /**
   * Where Redis listens: `redis://[user:password@]host[:port][/db]`, `rediss://` for TLS, or a unix
   * socket path. Default `ESK_REDIS_URL` when set, else `redis://127.0.0.1:6379`. Not with `client`.
   */
  url?: string
  /**
   * An ioredis client you created and own: the store uses it for commands and never closes it.
   * Its own options apply (see {@link REDIS_CONNECTION_DEFAULTS} for what we would choose). The
   * store still opens one connection of its own for replies (`client.duplicate()`) and closes
   * that. Not with `url` or `redisOptions`.
   */
  client?: Redis
  /**
   * Passed to ioredis for the connections the store creates (password, `tls`, `db`, timeouts, ...),
   * over {@link REDIS_CONNECTION_DEFAULTS}. Use `keyPrefix` below, not ioredis's own. Not with
   * `client`; `host`, `port` and `path` not together with `url`.
   */
  redisOptions?: RedisOptions
  /**
   * Prefix of every key and pub/sub channel. Processors and clients of one application must use
   * the same. 1 to 100 characters, no `{` or `}` (they would change the hash tag). Default `esk:`.
   */
  keyPrefix?: string
  /**
   * Outcomes that left nothing in the event log (refusals, and acceptances without events) kept
   * per partition so that a retry gets the same answer; the oldest go first. About 400 bytes each.
   * Accepted commands with events are remembered in their aggregate's snapshot instead (see
   * `dedupWindow` of `createEsk`). Default 10000.
   */
  unloggedWindow?: number
  /**
   * How long a waiting client trusts pub/sub alone before it also reads the recorded outcome, ms;
   * the fallback for a reply that was never published. Replies are published by the same script
   * that records the outcome, so one goes missing only when a client's subscription or a
   * processor dropped between the two (a repair publishes separately). Default 3000.
   */
  outcomePollMs?: number
  /**
   * Longest pause between two such reads; the pause doubles from `outcomePollMs` up to this.
   * Default 10000, or `outcomePollMs` when that is larger.
   */
  outcomePollMaxMs?: number
  /** Where connection problems and other background failures are reported. Default `consoleLogger()`. */
  logger?: Logger
}

/** Defaults of {@link RedisStoreOptions}, in one place. */
export const REDIS_STORE_DEFAULTS = {
  url: 'redis://127.0.0.1:6379',
  keyPrefix: 'esk:',
  unloggedWindow: 10_000,
  outcomePollMs: 3_000,
  outcomePollMaxMs: 10_000,
} as const

/**
 * The ioredis settings of connections the store creates, under any `redisOptions` given. They make
 * a failing Redis visible instead of silent: a processor's save must reject so that core repairs
 * the partition from the log, and a client's read must fail rather than hang.
 *
 * - `enableOfflineQueue: true`: commands issued while connecting or reconnecting wait for the
 *   connection, so start-up needs no "ready" handshake and a brief blip costs nothing.
 * - `maxRetriesPerRequest: 1`: a queued command fails after one failed reconnection attempt
 *   (ioredis's default of 20 keeps a save waiting through 20 attempts: 10 s or, when connecting
 *   times out, minutes).
 * - `commandTimeout: 5000`: a command without a reply within 5 s rejects. Without it, a command
 *   whose reply was in flight when the connection dropped waits until ioredis reconnects and resends
 *   it (maxRetriesPerRequest does not cover those), and a server that stops answering without
 *   closing the connection stalls every command. Every write here is idempotent and forward-only,
 *   and one connection keeps them in order, so a timed-out save that still executes later does no
 *   harm.
 */
export const REDIS_CONNECTION_DEFAULTS = {
  enableOfflineQueue: true,
  maxRetriesPerRequest: 1,
  commandTimeout: 5_000,
} as const satisfies RedisOptions

/** Options of a {@link RedisSnapshotStore} used on its own. */
export type RedisSnapshotStoreOptions = Pick<RedisStoreOptions, 'keyPrefix' | 'unloggedWindow'>

/** Options of a {@link RedisOutcomeChannel} used on its own. */
export type RedisOutcomeChannelOptions = Pick<
  RedisStoreOptions,
  'keyPrefix' | 'outcomePollMs' | 'outcomePollMaxMs' | 'logger'
>

/** How the store reaches Redis: a connection it creates and owns, or the caller's client. */
export type ConnectionPlan =
  | { kind: 'own'; url: string | undefined; redisOptions: RedisOptions }
  | { kind: 'borrowed'; client: Redis }

const ADDRESS_OPTIONS = ['host', 'port', 'path'] as const

/** Checks a key prefix; returns it. */
export function checkKeyPrefix(value: unknown, owner: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 100) {
    throw new ConfigurationError(`${owner}: keyPrefix must be a string of 1 to 100 characters, got ${describe(value)}`, {
      option: 'keyPrefix',
    })
  }
  if (/[{}]/.test(value)) {
    throw new ConfigurationError(
      `${owner}: keyPrefix '${value}' must not contain '{' or '}': Redis would take the hash tag from the ` +
        `prefix and put every partition in one cluster slot; use a prefix like 'esk:'`,
      { option: 'keyPrefix' },
    )
  }
  // Control characters make keys unreadable in redis-cli and logs; nobody means them.
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new ConfigurationError(`${owner}: keyPrefix must not contain control characters`, { option: 'keyPrefix' })
  }
  return value
}

/** Checks that `value` is a positive safe integer of milliseconds; returns it. */
export function checkPositiveMs(value: unknown, name: string, owner: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigurationError(`${owner}: ${name} must be a positive integer of milliseconds, got ${describe(value)}`, {
      option: name,
    })
  }
  return value
}

function checkPositiveInteger(value: unknown, name: string, owner: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigurationError(`${owner}: ${name} must be a positive integer, got ${describe(value)}`, { option: name })
  }
  return value
}

/** The snapshot store's options after defaults, validated. */
export function resolveSnapshotOptions(
  options: RedisSnapshotStoreOptions,
  owner = 'RedisSnapshotStore',
): Required<RedisSnapshotStoreOptions> {
  return {
    keyPrefix: checkKeyPrefix(options.keyPrefix ?? REDIS_STORE_DEFAULTS.keyPrefix, owner),
    unloggedWindow: checkPositiveInteger(options.unloggedWindow ?? REDIS_STORE_DEFAULTS.unloggedWindow, 'unloggedWindow', owner),
  }
}

/** The outcome channel's options after defaults, validated. */
export function resolveChannelOptions(
  options: RedisOutcomeChannelOptions,
  owner = 'RedisOutcomeChannel',
): Required<RedisOutcomeChannelOptions> {
  const outcomePollMs = checkPositiveMs(options.outcomePollMs ?? REDIS_STORE_DEFAULTS.outcomePollMs, 'outcomePollMs', owner)
  const outcomePollMaxMs = checkPositiveMs(
    options.outcomePollMaxMs ?? Math.max(outcomePollMs, REDIS_STORE_DEFAULTS.outcomePollMaxMs),
    'outcomePollMaxMs',
    owner,
  )
  if (outcomePollMaxMs < outcomePollMs) {
    throw new ConfigurationError(
      `${owner}: outcomePollMaxMs (${outcomePollMaxMs}) must not be below outcomePollMs (${outcomePollMs})`,
      { option: 'outcomePollMaxMs' },
    )
  }
  return {
    keyPrefix: checkKeyPrefix(options.keyPrefix ?? REDIS_STORE_DEFAULTS.keyPrefix, owner),
    outcomePollMs,
    outcomePollMaxMs,
    logger: options.logger ?? consoleLogger(),
  }
}

/** Decides how to connect from {@link RedisStoreOptions}, rejecting combinations that would silently ignore an option. */
export function planConnection(options: RedisStoreOptions, owner = 'redisStore'): ConnectionPlan {
  const { url, client, redisOptions } = options
  if (client !== undefined) {
    if (url !== undefined) {
      throw new ConfigurationError(`${owner}: give either url or client, not both; the client is already connected`, {
        option: 'url',
      })
    }
    if (redisOptions !== undefined) {
      throw new ConfigurationError(
        `${owner}: redisOptions would be ignored with client; configure the client you pass instead`,
        { option: 'redisOptions' },
      )
    }
    if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function') {
      throw new ConfigurationError(`${owner}: client must be an ioredis Redis instance`, { option: 'client' })
    }
    if (client.options.keyPrefix) {
      throw new ConfigurationError(
        `${owner}: the client has ioredis's keyPrefix '${client.options.keyPrefix}' set; esk lays out its own keys, ` +
          `so pass a client without keyPrefix and use the store's keyPrefix option`,
        { option: 'client' },
      )
    }
    return { kind: 'borrowed', client }
  }
  if (redisOptions?.keyPrefix) {
    throw new ConfigurationError(
      `${owner}: set keyPrefix on the store, not in redisOptions; ioredis's own prefix would not apply to ` +
        `channels and scans`,
      { option: 'redisOptions' },
    )
  }
  const address = ADDRESS_OPTIONS.filter((name) => redisOptions?.[name] !== undefined)
  if (url !== undefined) {
    checkUrl(url, owner)
    if (address.length > 0) {
      throw new ConfigurationError(
        `${owner}: url and redisOptions.${address[0]} both say where Redis is; give the address once, in url`,
        { option: 'url' },
      )
    }
  }
  const fromEnv = process.env.ESK_REDIS_URL
  if (url === undefined && address.length === 0 && fromEnv) checkUrl(fromEnv, `${owner} (ESK_REDIS_URL)`)
  // ioredis lets the URL win over host/port in options, so the default URL applies only when
  // redisOptions does not name an address itself.
  const resolvedUrl = url ?? (address.length > 0 ? undefined : fromEnv || REDIS_STORE_DEFAULTS.url)
  return { kind: 'own', url: resolvedUrl, redisOptions: { ...REDIS_CONNECTION_DEFAULTS, ...redisOptions } }
}

function checkUrl(url: unknown, owner: string): void {
  if (typeof url !== 'string' || !(/^rediss?:\/\/[^/]/i.test(url) || url.startsWith('/'))) {
    throw new ConfigurationError(
      `${owner}: url must look like redis://host:port, rediss://host:port or /path/to/redis.sock, got ${redacted(url)}`,
      { option: 'url' },
    )
  }
}

/** Names what was given without echoing a password a URL may carry. */
function redacted(url: unknown): string {
  if (typeof url !== 'string') return String(url)
  const scheme = /^[a-z][a-z0-9+.-]*:/i.exec(url)
  return scheme ? `a URL with scheme '${scheme[0]}'` : `'${url.slice(0, 20)}'`
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : String(value)
}
