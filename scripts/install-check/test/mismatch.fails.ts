import { test } from 'node:test'
import { given } from '@esk/testing'
import { Order, OrderPlaced, OrderShipped, ShipOrder } from '../src/domain.js'

// Fails on purpose: the install check runs it to see how a fixture failure reads in node:test.
test('expects the wrong shipping date', async () => {
  const placed = Object.assign(new OrderPlaced(), { item: 'book', at: new Date('2026-01-02T00:00:00.000Z') })
  const ship = Object.assign(new ShipOrder(), { at: new Date('2026-01-03T00:00:00.000Z') })
  await given(Order, [placed]).when(ship).then([Object.assign(new OrderShipped(), { at: new Date('2026-01-04T00:00:00.000Z') })])
})
