export { KafkaTransport, kafkaTransport } from './transport.js'
/** kafkajs's log levels, for the `logLevel` option. */
export { logLevel } from './kafkajs.js'
export { KAFKA_DEFAULTS, resolveOptions as resolveKafkaOptions, streamNames } from './options.js'
export type { KafkaTransportOptions, ResolvedKafkaOptions, StreamNames } from './options.js'
export { DeadLetterHeaders, EventHeaders, TransactionalWriter } from './writer.js'
export { replayPartition, decodeEvent } from './replay.js'
export type { ReplayOptions } from './replay.js'
export { isFenced, isConcurrentTransactions, kafkaErrorType } from './errors.js'
