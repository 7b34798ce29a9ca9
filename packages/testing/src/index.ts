/**
 * Test kits for esk applications that run under any test runner (node:test, jest, vitest): the
 * given/when/then aggregate fixture, the projection fixture, stores that fail on demand, and a
 * seeded random source. The fixtures fail with a plain `FixtureMismatch` error. The driver
 * contract suites, which need vitest, are in `@esk/testing/contract`; the local stack's addresses
 * in `@esk/testing/stack`.
 *
 * @packageDocumentation
 */
export { given, rejected, GivenStep, WhenStep, FixtureMismatch } from './fixture.js'
export { projectionFixture, ProjectionFixture, ProjectionStep } from './projection-fixture.js'
export type { ExpectedView, GivenEvent, ProjectionFixtureOptions, ProjectionFixtureResult } from './projection-fixture.js'
export type { ExpectedRejection, FixtureResult } from './fixture.js'
export { failingApplies, failingSaves } from './faults.js'
export type { FailingApplies, FailingStore } from './faults.js'
export { seededRandom } from './random.js'
