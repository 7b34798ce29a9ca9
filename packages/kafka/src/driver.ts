/**
 * `@esk/kafka/driver`: the parts the Kafka transport is built from (the transactional writer, the
 * log reader, the sticky assigner, the read-side feed, the command log checks and the kafkajs error
 * tests), for tools and tests. Applications use `kafkaTransport` from `@esk/kafka`.
 *
 * @packageDocumentation
 */
export { TransactionalWriter } from './writer.js'
export { LogReader, decodeEvent } from './replay.js'
export type { LogReaderOptions } from './replay.js'
export type { KafkaPartitionLease, PartitionState } from './processing.js'
export { STICKY_PROTOCOL, stickyAssigner, stickyAssignment } from './assigner.js'
export type { StickyMember } from './assigner.js'
export { checkCommandLog, commandLogEnd } from './command-log.js'
export { isFenced, isConcurrentTransactions, isGroupChange, kafkaErrorType } from './errors.js'
export { KafkaFeed, feedEvent } from './feed.js'
export { COORDINATOR_CACHE_TTL_MS, cacheCoordinators, coordinatorCacheActive, producerWithCoordinatorCache } from './coordinators.js'
