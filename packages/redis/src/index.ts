/**
 * The Redis store for esk: `redisStore(options)`, its options and defaults, and
 * `deleteKeysWithPrefix` for clearing a prefix. The snapshot store, outcome channel, projection
 * store and key layouts it is built from are in `@esk/redis/driver`.
 *
 * @packageDocumentation
 */
export { RedisStore, redisStore } from './store.js'
export { REDIS_CONNECTION_DEFAULTS, REDIS_STORE_DEFAULTS } from './options.js'
export type { RedisOutcomeChannelOptions, RedisSnapshotStoreOptions, RedisStoreOptions } from './options.js'
export { deleteKeysWithPrefix } from './prefix.js'
export type { DeleteKeysOptions } from './prefix.js'
export type { RedisProjectionStoreOptions } from './projection-store.js'
export { decodeCheckpoint, decodeOutcome, decodeSnapshot } from './codec.js'
