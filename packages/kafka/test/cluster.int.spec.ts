import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createEsk } from '@esk/core'
import { partitionFor, type StoredEvent } from '@esk/core/driver'
import { kafkaTransport, streamNames } from '@esk/kafka'
import { contractModel } from '@esk/testing/contract'
import { eventually } from '@esk/testing/stack'
import { afterEach, describe, expect, it } from 'vitest'
import { isolatedStack } from './support.js'

const { ContractAccount, Open, Deposit } = contractModel
const run = promisify(execFile)
const stackScript = fileURLToPath(new URL('../../../scripts/stack.sh', import.meta.url))

/** Runs `scripts/stack.sh <args>` with this process's environment (stack dir and ports). */
async function stack(...args: string[]): Promise<void> {
  await run('bash', [stackScript, ...args], { timeout: 120_000 })
}

/**
 * Broker faults on the three-node cluster of `scripts/stack.sh start --cluster`. These tests kill
 * and restart nodes through the script, so they run only when ESK_STACK_MODE=cluster says the
 * stack they reach (ESK_KAFKA_BROKERS listing the three nodes) is that cluster.
 */
describe.runIf(process.env.ESK_STACK_MODE === 'cluster')('kafka on a three-broker cluster', () => {
  const cleanups: Array<() => Promise<void>> = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined)
  })

  it('keeps committing when the leader of a partition is killed, and applies each command once', { timeout: 240_000 }, async () => {
    const env = isolatedStack()
    cleanups.push(() => env.dispose!())
    const partitions = 3
    const esk = await createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions }],
      driver: env.driver(),
      commandTimeoutMs: 10_000,
    })
    cleanups.push(() => esk.close())
    const accounts = esk.repository(ContractAccount)
    const ids = Array.from({ length: 6 }, (_, i) => `acc-${i}`)
    await Promise.all(ids.map((id) => accounts.save(new Open(id, 0), { id })))

    // The node leading the event partition of the first account is the one to kill.
    const names = streamNames(env.topicPrefix, 'contract-account')
    const admin = kafkaTransport(env.transportOptions()).client.admin()
    await admin.connect()
    cleanups.push(() => admin.disconnect())
    const target = partitionFor(ids[0]!, partitions)
    const [topic] = (await admin.fetchTopicMetadata({ topics: [names.events] })).topics
    const leader = topic!.partitions.find((p) => p.partitionId === target)!.leader
    expect(topic!.partitions.every((p) => p.replicas.length === 3)).toBe(true)

    // One sequential writer per account: deposit k is sent once deposit k-1 was accepted, and a
    // failed or timed-out attempt is retried with the same command id until accepted.
    const acked = new Map<string, { version: number; at: number }>()
    let stopping = false
    const deadline = Date.now() + 180_000
    const writers = ids.map(async (id) => {
      for (let k = 1; k <= 2_000 && !stopping; k++) {
        const commandId = `${id}-deposit-${k}`
        for (let attempt = 0; ; attempt++) {
          if (stopping || Date.now() > deadline) return
          try {
            const { version } = await accounts.update(id, new Deposit(k), { commandId })
            acked.set(commandId, { version, at: Date.now() })
            break
          } catch {
            await new Promise((resolve) => setTimeout(resolve, Math.min(50 * 2 ** attempt, 1_000)))
          }
        }
      }
    })
    const ackedOn = (id: string, after: number): number =>
      [...acked].filter(([commandId, a]) => commandId.startsWith(`${id}-`) && a.at > after).length

    let restarted = false
    try {
      await eventually(() => ackedOn(ids[0]!, 0) >= 10, 'load before the fault', 60_000)
      await stack('kill-node', String(leader))
      const killedAt = Date.now()
      const onTarget = ids.filter((id) => partitionFor(id, partitions) === target)
      await eventually(() => onTarget.some((id) => ackedOn(id, killedAt) > 0), 'a commit on the partition after the kill', 90_000)
      const recoveredMs = Date.now() - killedAt
      const [after] = (await admin.fetchTopicMetadata({ topics: [names.events] })).topics
      const newLeader = after!.partitions.find((p) => p.partitionId === target)!.leader
      console.info(`node ${leader} killed; partition ${target} led by node ${newLeader}, committing again after ${recoveredMs} ms`)
      expect(newLeader).not.toBe(leader)

      await stack('start-node', String(leader))
      restarted = true
      const rejoinedAt = Date.now()
      await eventually(() => ids.every((id) => ackedOn(id, rejoinedAt) >= 3), 'commits on every account after the restart', 90_000)
    } finally {
      stopping = true
      await Promise.all(writers)
      if (!restarted) await stack('start-node', String(leader)).catch(() => undefined)
    }

    // The log: per account, versions 1..n in order, every command applied once, deposits in the
    // order they were sent, and every acknowledged command there with the version it was told.
    const events: StoredEvent[] = []
    const reader = kafkaTransport(env.transportOptions())
    cleanups.push(() => reader.close())
    for (let p = 0; p < partitions; p++) {
      for await (const batch of reader.readEvents(esk.streams[0]!, p, 0)) events.push(...batch)
    }
    const byCommand = new Map<string, StoredEvent[]>()
    for (const e of events) byCommand.set(e.commandId, [...(byCommand.get(e.commandId) ?? []), e])
    expect([...byCommand.values()].filter((list) => list.length !== 1)).toEqual([])
    for (const [commandId, { version }] of acked) expect(byCommand.get(commandId)?.[0]?.version, commandId).toBe(version)
    for (const id of ids) {
      const own = events.filter((e) => e.aggregateId === id)
      expect(own.map((e) => e.version)).toEqual(own.map((_, i) => i + 1))
      const amounts = own.slice(1).map((e) => (JSON.parse(e.payload) as { amount: number }).amount)
      expect(amounts).toEqual(amounts.map((_, i) => i + 1))
      const found = await accounts.get(id, { atLeastVersion: own.length })
      expect(found.state.history).toEqual([0, ...amounts])
    }
    console.info(`${acked.size} deposits acknowledged, ${events.length} events in the log`)
  })
})
