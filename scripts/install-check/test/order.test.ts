import assert from 'node:assert/strict'
import { test } from 'node:test'
import { defineProjection, on } from '@esk/core'
import { FixtureMismatch, given, projectionFixture, rejected } from '@esk/testing'
import { Order, OrderPlaced, OrderShipped, ShipOrder } from '../src/domain.js'

// @esk/testing under node:test, with no vitest installed.

const placed = Object.assign(new OrderPlaced(), { item: 'book', at: new Date('2026-01-02T00:00:00.000Z') })
const at = new Date('2026-01-03T00:00:00.000Z')
const ship = Object.assign(new ShipOrder(), { at })

test('ships a placed order', async () => {
  const result = await given(Order, [placed]).when(ship).then([Object.assign(new OrderShipped(), { at })])
  assert.ok(result.state.shippedAt instanceof Date)
  assert.equal(result.state.shippedAt.getTime(), at.getTime())
})

test('refuses to ship an order twice', async () => {
  await given(Order, [placed, Object.assign(new OrderShipped(), { at })]).when(ship).then(rejected('ESK_COMMAND_REJECTED', 'ALREADY_SHIPPED'))
})

test('a wrong expectation fails with a FixtureMismatch naming both sides', async () => {
  const wrong = Object.assign(new OrderShipped(), { at: new Date('2026-01-04T00:00:00.000Z') })
  await assert.rejects(given(Order, [placed]).when(ship).then([wrong]), (error: unknown) => {
    assert.ok(error instanceof FixtureMismatch)
    assert.match(error.message, /^the events differ:\n  expected .*2026-01-04.*\n  got .*2026-01-03/)
    return true
  })
})

test('the projection fixture builds a view from events with Dates', async () => {
  const shipments = defineProjection({
    name: 'shipments',
    handlers: [on(OrderShipped, (e, meta, store) => store.hash('shipped').set(meta.aggregateId, e.at.toISOString()))],
  })
  await projectionFixture(shipments, { aggregates: [Order] })
    .given([placed, Object.assign(new OrderShipped(), { at })])
    .then({ hashes: { shipped: { 'id-1': at.toISOString() } } })
})
