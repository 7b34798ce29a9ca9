/**
 * Measures what a partition takeover costs on the broker it is pointed at. Not a test (it asserts
 * nothing): it prints figures for docs/operations.md. Run it against a broker with a production
 * group join delay:
 *
 *   ESK_KAFKA_INITIAL_REBALANCE_DELAY_MS=3000 scripts/stack.sh start
 *   cd packages/kafka && node ../../node_modules/.pnpm/vite-node@*\/node_modules/vite-node/vite-node.mjs \
 *     --config ../../vitest.config.ts test/measure-takeover.ts
 */
import { randomUUID } from 'node:crypto'
import { createEsk, type Esk } from '@esk/core'
import { partitionFor, type StreamSpec } from '@esk/core/driver'
import { kafkaTransport, logLevel, resolveKafkaOptions, streamNames, type KafkaTransportOptions } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { ContractAccount, Deposit, Open } from '@esk/testing/model'
import { localStack } from '@esk/testing/stack'
import { Redis } from 'ioredis'

const stack = localStack()
const ROUNDS = 5

function prefix(): string {
  return `esk-measure-${randomUUID().slice(0, 8)}`
}

function transportOptions(p: string): KafkaTransportOptions {
  return { brokers: stack.brokers, topicPrefix: `${p}.`, logLevel: logLevel.NOTHING }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

/** Replays of a 20-event partition through one transport: the first one, then the next ones. */
async function replays(): Promise<{ firstMs: number; nextMedianMs: number }> {
  const p = prefix()
  const transport = kafkaTransport(transportOptions(p))
  try {
    const stream: StreamSpec = { aggregate: 'measure', partitions: 1 }
    await transport.provision([stream])
    const writer = await TransactionalWriter.open(transport.client, resolveKafkaOptions(transportOptions(p)), streamNames(`${p}.`, 'measure'), 0)
    const events = Array.from({ length: 20 }, (_, i) => ({
      aggregateId: 'a',
      type: 't',
      version: i + 1,
      commandId: `c${i}`,
      commandPosition: i,
      payload: '{}',
    }))
    await writer.commit(events, 19)
    await writer.close()
    const times: number[] = []
    for (let round = 0; round <= ROUNDS; round++) {
      const started = performance.now()
      let count = 0
      for await (const batch of transport.readEvents(stream, 0, 0, 20)) count += batch.length
      times.push(performance.now() - started)
      if (count !== 20) throw new Error(`replayed ${count} events, not 20`)
    }
    return { firstMs: times[0]!, nextMedianMs: median(times.slice(1)) }
  } finally {
    await transport.close()
  }
}

/**
 * Two processors share 4 partitions; one stops. Returns the time from its `close()` to the first
 * command answered on each partition it had, and the recovery times the other one reported.
 */
async function takeover(): Promise<{ answeredMs: number[]; recoveryMs: number[]; startMs: number; restartMs: number; closeMs: number }> {
  const p = prefix()
  const redis = new Redis(stack.redisUrl)
  const apps: Esk[] = []
  const driver = () => ({
    transport: kafkaTransport(transportOptions(p)),
    store: redisStore({ url: stack.redisUrl, keyPrefix: `${p}:` }),
  })
  try {
    const recoveryMs: number[] = []
    const owned = { a: new Set<number>(), b: new Set<number>() }
    const started = performance.now()
    const a = await createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions: 4 }],
      driver: driver(),
      listeners: {
        partition: (e) => (e.change === 'assigned' ? owned.a.add(e.partition) : owned.a.delete(e.partition)),
        recovery: (e) => {
          if (e.phase === 'end') recoveryMs.push(e.elapsedMs)
        },
      },
    })
    const startMs = performance.now() - started
    apps.push(a)
    const b = await createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions: 4 }],
      driver: driver(),
      listeners: { partition: (e) => (e.change === 'assigned' ? owned.b.add(e.partition) : owned.b.delete(e.partition)) },
    })
    apps.push(b)
    const accounts = a.repository(ContractAccount)
    const ids: string[] = []
    for (let i = 0; ids.length < 4; i++) {
      if (partitionFor(`m-${i}`, 4) === ids.length) ids.push(`m-${i}`)
    }
    // Until the split settles, commands are answered by whoever owns the partition.
    await Promise.all(ids.map((id) => accounts.save(new Open(id, 1), { id })))
    for (let i = 0; i < 50 && owned.b.size === 0; i++) await new Promise((r) => setTimeout(r, 200))
    const moved = [...owned.b]
    recoveryMs.length = 0
    // The commands go out as the close starts, as a client's would: they wait in the command log
    // for whoever owns their partition next, and the close itself is not waited for.
    const closing = performance.now()
    const closed = b.close()
    const answeredMs = await Promise.all(
      moved.map(async (partition) => {
        await accounts.update(ids[partition]!, new Deposit(1), { timeoutMs: 60_000 })
        return performance.now() - closing
      }),
    )
    await closed
    const closeMs = performance.now() - closing
    // A restart of the only processor: every partition has events, and checkpoints.
    await a.close()
    const restarting = performance.now()
    const again = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 4 }], driver: driver() })
    apps.push(again)
    await again.repository(ContractAccount).update(ids[0]!, new Deposit(1), { timeoutMs: 60_000 })
    const restartMs = performance.now() - restarting
    return { answeredMs, recoveryMs: [...recoveryMs], startMs, restartMs, closeMs }
  } finally {
    for (const app of apps.reverse()) await app.close().catch(() => undefined)
    await deleteKeysWithPrefix(redis, `${p}:`)
    redis.disconnect()
  }
}

const replay = await replays()
console.log(`replay of a 20-event partition: first ${replay.firstMs.toFixed(0)} ms, then median ${replay.nextMedianMs.toFixed(0)} ms`)
for (let round = 0; round < 2; round++) {
  const t = await takeover()
  console.log(
    `createEsk with 4 partitions: ${t.startMs.toFixed(0)} ms; takeover of ${t.answeredMs.length} partitions: ` +
      `answered after ${t.answeredMs.map((m) => m.toFixed(0)).join(', ')} ms (close() returned after ${t.closeMs.toFixed(0)} ms); ` +
      `recovery (replay) ${t.recoveryMs.map((m) => m.toFixed(0)).join(', ')} ms; ` +
      `restart with history to a command answered: ${t.restartMs.toFixed(0)} ms`,
  )
}
process.exit(0)
