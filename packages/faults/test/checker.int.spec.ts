import { randomUUID } from 'node:crypto'
import { createEsk, type Esk } from '@esk/core'
import { kafkaTransport } from '@esk/kafka'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { localStack } from '@esk/testing/stack'
import { Redis } from 'ioredis'
import { Kafka, logLevel, type Producer } from 'kafkajs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { check, type CheckReport } from '../src/checker.js'
import { classify } from '../src/history.js'
import { Account, Deposit, OpenAccount, Withdraw } from '../src/domain.js'
import type { Attempt } from '../src/history.js'
import { EventHeader, readLog } from '../src/log.js'
import { partitionOf } from '../src/model.js'
import { partitionKeys, readStore, type StoreLocation } from '../src/store-view.js'

/*
 * The checker on the real broker and redis-server: a correct run reads clean, and each deliberately
 * broken variant of the log or the store (written behind esk's back, with a plain producer or a
 * plain Redis client) is reported by the check it breaks.
 */

const stack = localStack()
const PARTITIONS = 3
const id = randomUUID().slice(0, 8)
const topicPrefix = `esk-faults-it-${id}.`
const keyPrefix = `esk-faults-it-${id}:`
const location: StoreLocation = { prefix: keyPrefix, aggregate: 'account', partitions: PARTITIONS }
const topic = { events: `${topicPrefix}account.events`, commands: `${topicPrefix}account.commands` }

let app: Esk
let redis: Redis
let producer: Producer
const history: Attempt[] = []

async function record(op: Attempt['op'], aggregateId: string, payload: Attempt['payload'], command: object, expectedVersion?: number): Promise<Attempt> {
  const accounts = app.repository(Account)
  const commandId = randomUUID()
  const start = Date.now()
  let result: Attempt['result']
  try {
    const r = op === 'save' ? await accounts.save(command, { id: aggregateId, commandId }) : await accounts.update(aggregateId, command, { commandId, ...(expectedVersion !== undefined && { expectedVersion }) })
    result = { kind: 'accepted', version: r.version }
  } catch (error) {
    result = classify(error)
  }
  const attempt: Attempt = { client: 'test', op, aggregateId, commandId, ...(expectedVersion !== undefined && { expectedVersion }), payload, start, end: Date.now(), result }
  history.push(attempt)
  return attempt
}

async function runCheck(): Promise<CheckReport> {
  const log = await readLog({ brokers: stack.brokers, eventsTopic: topic.events, commandsTopic: topic.commands, timeoutMs: 60_000 })
  const store = await readStore(redis, location)
  return check({ history, log, partitions: PARTITIONS, store, healed: true })
}

/**
 * Appends an event record with the headers earlier versions of esk wrote, one per field, as any
 * producer with access to the topic could. The app below writes the current header beside them, so
 * the checker reads both formats in one topic.
 */
async function writeEvent(e: { aggregateId: string; version: number; commandId: string; commandOffset: number; type: string; payload: object }): Promise<void> {
  await producer.send({
    topic: topic.events,
    acks: -1,
    messages: [
      {
        partition: partitionOf(e.aggregateId, PARTITIONS),
        key: e.aggregateId,
        value: JSON.stringify(e.payload),
        headers: {
          [EventHeader.type]: e.type,
          [EventHeader.aggregateId]: e.aggregateId,
          [EventHeader.version]: String(e.version),
          [EventHeader.commandId]: e.commandId,
          [EventHeader.commandOffset]: String(e.commandOffset),
        },
      },
    ],
  })
}

describe('the checker against a real broker and redis-server', () => {
  beforeAll(async () => {
    app = await createEsk({
      aggregates: [{ aggregate: Account, partitions: PARTITIONS }],
      driver: {
        transport: kafkaTransport({ brokers: stack.brokers, topicPrefix, logLevel: logLevel.ERROR }),
        store: redisStore({ url: stack.redisUrl, keyPrefix }),
      },
    })
    redis = new Redis(stack.redisUrl)
    producer = new Kafka({ brokers: stack.brokers, logLevel: logLevel.NOTHING }).producer()
    await producer.connect()
    for (const n of [1, 2, 3, 4, 5, 6]) {
      const aggregateId = `acct-${n}`
      await record('save', aggregateId, { type: 'faults.OpenAccount', owner: aggregateId, initialDeposit: 100, overdraftLimit: 50 }, new OpenAccount(aggregateId, 100, 50))
      await record('update', aggregateId, { type: 'faults.Deposit', amount: 10 }, new Deposit(10), 1)
      await record('update', aggregateId, { type: 'faults.Withdraw', amount: 1_000 }, new Withdraw(1_000)) // refused
    }
  })

  afterAll(async () => {
    await app?.close()
    await producer?.disconnect()
    if (redis) {
      await deleteKeysWithPrefix(redis, keyPrefix)
      redis.disconnect()
    }
  })

  it('reads a correct run as clean', async () => {
    expect(history.filter((a) => a.result.kind === 'accepted')).toHaveLength(12)
    expect(history.filter((a) => a.result.kind === 'refused')).toHaveLength(6)
    const report = await runCheck()
    expect(report.details).toEqual([])
    expect(report.stats.events).toBe(12)
  })

  it('reports each broken variant under the check it breaks', async () => {
    const log = await readLog({ brokers: stack.brokers, eventsTopic: topic.events, commandsTopic: topic.commands })
    const lastEvent = (aggregateId: string) => log.events.partitions[partitionOf(aggregateId, PARTITIONS)]!.filter((e) => e.aggregateId === aggregateId).at(-1)!

    // Events written twice for one command id: a second writer that nothing fenced.
    const dup = lastEvent('acct-1')
    await writeEvent({ aggregateId: 'acct-1', version: 3, commandId: dup.commandId!, commandOffset: dup.commandOffset!, type: dup.type!, payload: JSON.parse(dup.value) as object })
    let report = await runCheck()
    expect(report.counts['one-application']).toBe(1)
    expect(report.details.find((d) => d.check === 'one-application')?.message).toMatch(/applied 2 times/)

    // A snapshot edited so that it no longer equals the fold.
    const p2 = partitionOf('acct-2', PARTITIONS)
    const keys = partitionKeys(location, p2)
    const snapshot = JSON.parse((await redis.hget(keys.state, 's:acct-2'))!) as { state: string }
    snapshot.state = JSON.stringify({ ...(JSON.parse(snapshot.state) as object), balance: 999_999 })
    await redis.hset(keys.state, 's:acct-2', JSON.stringify(snapshot))
    report = await runCheck()
    expect(report.details.some((d) => d.check === 'snapshots' && d.aggregateId === 'acct-2' && /999999/.test(d.message))).toBe(true)

    // A version gap: version 7 after version 2, for a command a client sent and never heard back about.
    const gap = lastEvent('acct-3')
    history.push({ client: 'test', op: 'update', aggregateId: 'acct-3', commandId: 'gap-command', payload: { type: 'faults.Deposit', amount: 1 }, start: Date.now(), end: Date.now(), result: { kind: 'timeout' } })
    await writeEvent({ aggregateId: 'acct-3', version: 7, commandId: 'gap-command', commandOffset: gap.commandOffset!, type: 'faults.MoneyDeposited', payload: { amount: 1 } })
    report = await runCheck()
    expect(report.details.some((d) => d.check === 'versions' && d.aggregateId === 'acct-3' && /version 7/.test(d.message))).toBe(true)

    // Events for a refused command.
    const refused = history.find((a) => a.aggregateId === 'acct-4' && a.result.kind === 'refused')!
    await writeEvent({ aggregateId: 'acct-4', version: 3, commandId: refused.commandId, commandOffset: lastEvent('acct-4').commandOffset! + 1, type: 'faults.MoneyWithdrawn', payload: { amount: 1_000 } })
    report = await runCheck()
    expect(report.details.some((d) => d.check === 'refusals' && d.commandId === refused.commandId)).toBe(true)
    // ... which also broke the invariant: 1000 out of 110 with a limit of 50.
    expect(report.details.some((d) => d.check === 'invariant' && d.aggregateId === 'acct-4')).toBe(true)

    // A checkpoint moved past the end of the log.
    const p5 = partitionOf('acct-5', PARTITIONS)
    await redis.hset(partitionKeys(location, p5).state, '@offset', '1000000')
    report = await runCheck()
    expect(report.details.some((d) => d.check === 'snapshots' && d.partition === p5 && /beyond the event log/.test(d.message))).toBe(true)

    // A retry told another version than the first answer.
    const accepted = history.find((a) => a.aggregateId === 'acct-6' && a.result.kind === 'accepted' && a.op === 'update')!
    history.push({ ...accepted, client: 'retry', result: { kind: 'accepted', version: 5 } })
    report = await runCheck()
    expect(report.details.some((d) => d.check === 'outcomes' && d.commandId === accepted.commandId)).toBe(true)
  })
})
