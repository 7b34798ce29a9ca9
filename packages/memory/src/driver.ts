/**
 * `@esk/memory/driver`: the embedded driver's parts (transport, store, read-side feed), to combine
 * with another driver's parts or to test them. Applications use `memoryDriver` from `@esk/memory`.
 *
 * @packageDocumentation
 */
export type { MemoryPartitionLog, MemoryPartitionState } from './backend.js'
export { MemoryStore, MemorySnapshotStore, MemoryOutcomeChannel } from './store.js'
export { MemoryTransport } from './transport.js'
export { MemoryFeed, MemoryFeedGroup } from './feed.js'
