/**
 * What full de-duplication windows cost the Redis store: bytes sent to Redis and redis-server time
 * per command in the save script, and bytes per aggregate retained. The store is driven directly,
 * as a processor drives it: each save carries every aggregate's next snapshot (one new command
 * each) with the memo its last save left, until every window is full; then the last rounds are
 * measured. Run it on two checkouts to compare store layouts:
 *
 *   node packages/bench/dist/windows.js [--redis URL] [--aggregates N] [--window W]
 */
import { randomUUID } from 'node:crypto'
import { parseArgs } from 'node:util'
import type { RecentCommand, StoredSnapshot } from '@esk/core/driver'
import { RedisSnapshotStore } from '@esk/redis/driver'
import { Redis } from 'ioredis'
import { dropKeys } from './memory.js'

const { values } = parseArgs({
  options: {
    redis: { type: 'string', default: process.env.ESK_REDIS_URL ?? `redis://127.0.0.1:${process.env.ESK_REDIS_PORT ?? 6379}` },
    aggregates: { type: 'string', default: '1000' },
    window: { type: 'string', default: '32' },
  },
})
const aggregates = Number(values.aggregates)
const window = Number(values.window)
if (!Number.isInteger(aggregates) || aggregates < 1 || !Number.isInteger(window) || window < 1) {
  throw new Error('--aggregates and --window must be positive integers')
}
/** Rounds measured once every window is full. */
const MEASURED = 10

const client = new Redis(values.redis)
const prefix = `esk-bench-windows-${process.pid}:`
const stream = { aggregate: 'windows', partitions: 1 }
const key = `${prefix}{windows:0}:state`
const stat = async (section: string, pattern: RegExp): Promise<number> => Number((await client.info(section)).match(pattern)?.[1] ?? 0)
const bytesIn = () => stat('stats', /total_net_input_bytes:(\d+)/)
const scriptMicros = () => stat('commandstats', /cmdstat_evalsha:calls=\d+,usec=(\d+)/)

try {
  const store = new RedisSnapshotStore(client, { keyPrefix: prefix })
  const token = randomUUID()
  await store.acquire(stream, 0, token)
  const ids = Array.from({ length: aggregates }, () => randomUUID())
  const last = new Map<string, StoredSnapshot>()
  let offset = 0
  let before = { bytes: 0, micros: 0 }
  const rounds = window + MEASURED
  for (let round = 0; round < rounds; round++) {
    if (round === window) before = { bytes: await bytesIn(), micros: await scriptMicros() }
    const snapshots = ids.map((aggregateId): StoredSnapshot => {
      const previous = last.get(aggregateId)
      offset += 1
      const entry: RecentCommand = { commandId: randomUUID(), version: round + 1, events: 1, offset }
      const recent = [...(previous?.recent ?? []), entry].slice(-window)
      const state = JSON.stringify({ owner: 'owner', balance: round, deposits: round })
      const snapshot = { aggregateId, version: round + 1, schemaVersion: 1, offset, state, recent, windowMemo: previous?.windowMemo }
      last.set(aggregateId, snapshot)
      return snapshot
    })
    const checkpoint = { offset: offset + 1, commandPosition: offset, schemaVersion: 1 }
    await store.save(stream, 0, token, { snapshots, checkpoint, unlogged: [], ready: true })
  }
  const commands = MEASURED * aggregates
  const sent = ((await bytesIn()) - before.bytes) / commands
  const micros = ((await scriptMicros()) - before.micros) / commands
  const retained = Number(await client.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) / aggregates
  console.log(`${aggregates} aggregates, windows of ${window} entries, the last ${MEASURED} saves of ${rounds}:`)
  console.log(`  sent to Redis per command        ${Math.round(sent)} bytes`)
  console.log(`  redis-server time per command    ${micros.toFixed(2)} µs in the save script`)
  console.log(`  Redis memory per aggregate       ${Math.round(retained)} bytes (MEMORY USAGE of the state hash)`)
} finally {
  await dropKeys(values.redis, prefix)
  client.disconnect()
}
