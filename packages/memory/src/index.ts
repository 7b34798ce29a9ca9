/**
 * The embedded driver for esk: `memoryDriver()`, and the backend that outlives a driver to
 * simulate a restart. The classes it is built from are in `@esk/memory/driver`.
 *
 * @packageDocumentation
 */
import type { Driver } from '@esk/core'
import { MemoryBackend } from './backend.js'
import { MemoryStore, type MemoryStoreOptions } from './store.js'
import { MemoryTransport, type MemoryTransportOptions } from './transport.js'

export { MemoryBackend } from './backend.js'
export type { MemoryStoreOptions } from './store.js'
export type { MemoryTransportOptions } from './transport.js'

/** Options of {@link memoryDriver}. */
export interface MemoryDriverOptions extends MemoryTransportOptions, MemoryStoreOptions {
  /** Where data lives; pass the same backend to a later driver to simulate a restart. Default: a new one. */
  backend?: MemoryBackend
}

/**
 * The embedded driver: command log, event log, snapshots and outcomes in this process's memory.
 * The default of `createEsk`, for development and tests; nothing survives the process.
 */
export function memoryDriver(options: MemoryDriverOptions = {}): Driver {
  const backend = options.backend ?? new MemoryBackend()
  return { transport: new MemoryTransport(backend, options), store: new MemoryStore(backend, options) }
}
