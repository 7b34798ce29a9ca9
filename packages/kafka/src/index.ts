/**
 * The Kafka transport for esk: `kafkaTransport(options)`, its options and defaults, the topic
 * names it uses and the headers of the records it writes. The writer, the log reader, the
 * assigner and the feed it is built from are in `@esk/kafka/driver`.
 *
 * @packageDocumentation
 */
export { KafkaTransport, kafkaTransport } from './transport.js'
/** kafkajs's log levels, for the `logLevel` option. */
export { logLevel } from './kafkajs.js'
export { KAFKA_DEFAULTS, resolveOptions as resolveKafkaOptions, streamNames } from './options.js'
export type { KafkaTransportOptions, ResolvedKafkaOptions, StreamNames } from './options.js'
export { DeadLetterHeaders, EVENT_HEADER, EventHeaders, decodeEventHeader, encodeEventHeader, type EventHeaderFields } from './writer.js'
export { LOG_REPEATED_CODE, kafkaLogCreator } from './logging.js'
export type { KafkaLogOptions } from './logging.js'
