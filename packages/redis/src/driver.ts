/**
 * `@esk/redis/driver`: the parts the Redis store is built from (snapshot store, outcome channel,
 * projection store) and its key layouts, for tools and tests. Applications use `redisStore` from
 * `@esk/redis`.
 *
 * @packageDocumentation
 */
export { RedisSnapshotStore } from './snapshot-store.js'
export { RedisOutcomeChannel } from './outcome-channel.js'
export { PartitionKeys, StateFields, replyChannel, snapshotFields } from './keys.js'
export { RedisProjectionStore } from './projection-store.js'
export { ProjectionKeys } from './projection-keys.js'
