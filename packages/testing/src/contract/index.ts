/**
 * `@esk/testing/contract`: the behaviour every driver must show, as vitest suites (vitest is an
 * optional peer dependency, needed only here): the driver contract, the read-side contract and the
 * projection store contract, with the model they run.
 *
 * @packageDocumentation
 */
export { describeDriverContract } from './suite.js'
export type { ContractFixture, ContractOptions } from './suite.js'
export { describeProjectionContract } from './projections.js'
export type { ProjectionContractFixture, ProjectionContractOptions } from './projections.js'
export { describeProjectionStoreContract } from './projection-store.js'
export type { ProjectionStoreContractOptions } from './projection-store.js'
export * as contractModel from './model.js'
