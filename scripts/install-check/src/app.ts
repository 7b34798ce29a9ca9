import { ErrorCode, createEsk, hasCode } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { Order, PlaceOrder, ShipOrder } from './domain.js'
import { kafkaRedisDriver } from './drivers.js'

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`app: ${what}`)
}

function sameDate(value: unknown, expected: Date): boolean {
  return value instanceof Date && value.getTime() === expected.getTime()
}

const placedAt = new Date('2026-01-02T03:04:05.678Z')
const shippedAt = new Date('2026-01-03T08:00:00.000Z')
const backend = new MemoryBackend()

const app = await createEsk({ aggregates: [Order], driver: memoryDriver({ backend }) })
const orders = app.repository(Order)
const placed = await orders.save(Object.assign(new PlaceOrder(), { item: 'book', at: placedAt }))
const shipped = await orders.update(placed.id, Object.assign(new ShipOrder(), { at: shippedAt }), { expectedVersion: placed.version })
const found = await orders.find(placed.id, { atLeastVersion: shipped.version })
check(found !== undefined && found.version === 2, `find after update: expected version 2, got ${JSON.stringify(found)}`)
check(sameDate(found?.state.placedAt, placedAt), `placedAt is not the Date saved: ${String(found?.state.placedAt)}`)
check(sameDate(found?.state.shippedAt, shippedAt), `shippedAt is not the Date saved: ${String(found?.state.shippedAt)}`)
try {
  await orders.update(placed.id, Object.assign(new ShipOrder(), { at: shippedAt }))
  check(false, 'a second ShipOrder was accepted')
} catch (error) {
  check(hasCode(error, ErrorCode.CommandRejected), `a second ShipOrder: expected ${ErrorCode.CommandRejected}, got ${String(error)}`)
}
await app.close()

// A restart over the same backend reads the state back from its snapshot.
const restarted = await createEsk({ aggregates: [Order], driver: memoryDriver({ backend }) })
const reloaded = await restarted.repository(Order).find(placed.id)
check(sameDate(reloaded?.state.shippedAt, shippedAt), `after a restart, shippedAt is ${String(reloaded?.state.shippedAt)}`)
await restarted.close()

// Without a driver, createEsk loads @esk/memory from where npm installed it.
const embedded = await createEsk({ aggregates: [Order] })
const other = await embedded.repository(Order).save(Object.assign(new PlaceOrder(), { item: 'pen', at: placedAt }))
check(sameDate((await embedded.repository(Order).find(other.id))?.state.placedAt, placedAt), 'createEsk without a driver')
await embedded.close()

check(typeof kafkaRedisDriver === 'function', '@esk/kafka and @esk/redis did not load')
console.log(`app: saved, updated and found order ${placed.id} at version ${found?.version}; its Dates came back as Dates, also after a restart and on the default driver`)
