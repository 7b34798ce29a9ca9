import { randomUUID } from 'node:crypto'
import { FencedError, createEsk, type BackgroundError, type Esk, type EskOptions } from '@esk/core'
import { sleep, type CommandRecord, type PartitionHost, type PartitionLease, type StreamSpec } from '@esk/core/driver'
import { kafkaTransport, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { failingSaves } from '@esk/testing'
import { contractModel } from '@esk/testing/contract'
import { eventually } from '@esk/testing/stack'
import { describe, expect, it } from 'vitest'
import { holdingStore, idsPerPartition, readAll, testScope } from './support.js'

const { ContractAccount, Open, Deposit } = contractModel

/** The error code of a reported background error, if it has one. */
function codeOf(e: BackgroundError): unknown {
  return (e.error as { code?: unknown } | undefined)?.code
}

describe('kafka partition lifecycle', () => {
  const { defer, env, app, connect } = testScope({ partitions: 2, commandTimeoutMs: 30_000 })

  /** Listeners that track the partitions an application owns and collect its background errors. */
  function watch(): { owned: Set<number>; errors: BackgroundError[]; listeners: NonNullable<EskOptions['listeners']> } {
    const owned = new Set<number>()
    const errors: BackgroundError[] = []
    return {
      owned,
      errors,
      listeners: {
        partition: (e) => (e.change === 'assigned' ? owned.add(e.partition) : owned.delete(e.partition)),
        error: (e) => errors.push(e),
      },
    }
  }

  it('fails createEsk with ESK_UNAVAILABLE naming the brokers when Kafka does not answer', async () => {
    // Fails before the fix: kafkajs's KafkaJSNumberOfRetriesExceeded reached the caller as is (no
    // EskError code), and the fault suite's client ended on it when it started during a stack restart.
    const stack = env()
    const attempt = createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions: 1 }],
      driver: {
        transport: kafkaTransport({ brokers: ['127.0.0.1:1'], kafka: { connectionTimeout: 200, retry: { retries: 1, initialRetryTime: 50 } } }),
        store: stack.driver().store,
      },
    })
    await expect(attempt).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE', retriable: true, message: expect.stringContaining('127.0.0.1:1') })
  })

  it('reopens a partition whose writer was fenced while the group still assigns it to this process', async () => {
    // Fails before the fix: the fenced partition was paused until a rebalance that never came, so
    // every later command on it timed out.
    const stack = env()
    const seen = watch()
    const a = await app(stack, { listeners: seen.listeners }, 1)
    const accounts = a.repository(ContractAccount)
    const { id } = await accounts.save(new Open('lee', 1))
    const stream = a.streams[0]!

    // Another writer initialises the partition's transactional id: the processor's writer is fenced
    // (the same thing happens when the broker times a transaction out, KIP-588).
    const outside = connect(stack)
    const options = resolveKafkaOptions(stack.transportOptions())
    const intruder = await TransactionalWriter.open(outside.client, options, streamNames(stack.topicPrefix, stream.aggregate), 0)
    defer(() => intruder.close())

    // The first commit fails fenced; the partition reopens and takes the same command again.
    expect((await accounts.update(id, new Deposit(5))).version).toBe(2)
    expect((await accounts.update(id, new Deposit(6))).version).toBe(3)
    expect(seen.errors.some((e) => codeOf(e) === 'ESK_FENCED' && e.partition === 0)).toBe(true)
    const events = await readAll(stack, stream, 0, 3)
    expect(events.map((e) => e.version)).toEqual([1, 2, 3])
    expect((await accounts.get(id, { atLeastVersion: 3 })).state.history).toEqual([1, 5, 6])
    // The reopened writer fenced the intruder in turn.
    await expect(intruder.commit([], 0)).rejects.toMatchObject({ code: 'ESK_FENCED' })
  })

  it('reopens the partition when its handle reports ESK_FENCED, and feeds it again from the failed batch', async () => {
    // Fails before the fix: only a rebalance could bring a fenced partition back. (The processor
    // raises ESK_FENCED when the snapshot store refuses its owner token.)
    const stack = env()
    const transport = connect(stack)
    const stream: StreamSpec = { aggregate: 'fenced-handle', partitions: 1 }
    await transport.provision([stream])
    await transport.send(stream, 0, 'k', 'first')
    const leases: PartitionLease[] = []
    const batches: Array<{ lease: number; records: CommandRecord[] }> = []
    const reported: unknown[] = []
    const host: PartitionHost = {
      async open(lease) {
        leases.push(lease)
        const n = leases.length
        return {
          async process(records) {
            batches.push({ lease: n, records })
            if (n === 1) throw new FencedError('the snapshot store refused this owner')
            await lease.writer.commit([], records[records.length - 1]!.position)
          },
          async close() {},
        }
      },
      reportError: (error) => reported.push(error),
    }
    await transport.startProcessing([stream], host)
    const again = await eventually(() => batches.find((b) => b.lease === 2), 'the reopened partition to get the command again')
    expect(again.records[0]).toEqual({ position: 0, value: 'first' })
    expect(leases[0]!.signal.aborted).toBe(true)
    expect(leases[1]!.signal.aborted).toBe(false)
    expect(reported).toContainEqual(expect.objectContaining({ code: 'ESK_FENCED' }))
  })

  it('yields to a rebalance while a batch waits on a stalled store, so a joining member gets its share at once', async () => {
    // Fails before the fix: the member waited for the batch without heartbeating, the group could
    // not rebalance until its session expired, and the joining member then took every partition.
    const stack = env()
    const base = stack.driver()
    const store = holdingStore(base.store)
    const a = await app(stack, { driver: { transport: base.transport, store }, commandTimeoutMs: 60_000 }, 2)
    defer(async () => store.release())
    const accounts = a.repository(ContractAccount)
    const ids = idsPerPartition(2)
    await Promise.all(ids.map((id) => accounts.save(new Open(id, 1), { id })))

    // The save: the aggregate is held in memory, so the batch does not read the store.
    store.hold('save', 0)
    const pending = accounts.update(ids[0]!, new Deposit(2))
    await store.held()
    const b = watch()
    await app(stack, { listeners: b.listeners }, 2)
    expect(b.owned.size).toBe(1)
    store.release()
    expect((await pending).version).toBe(2)
  })

  it('returns from createEsk when one partition cannot recover, reports it, retries it, and runs the others', async () => {
    // Fails before the fix: createEsk waited for every partition, and this one never recovers.
    const stack = env()
    const stream: StreamSpec = { aggregate: 'contract-account', partitions: 2 }
    const transport = connect(stack)
    await transport.provision([stream])
    // A command, and its event of a type this code does not know, in partition 0 (written by a
    // newer version, say).
    const command = { commandId: 'c-ghost', type: 'contract.Vanish', aggregateId: 'ghost', kind: 'update', payload: {}, sentAt: 0 }
    await transport.send(stream, 0, 'ghost', JSON.stringify(command))
    const producer = transport.client.producer({ transactionalId: `poison-${randomUUID()}`, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const transaction = await producer.transaction()
    await transaction.send({
      topic: streamNames(stack.topicPrefix, stream.aggregate).events,
      messages: [
        {
          partition: 0,
          key: 'ghost',
          value: '{}',
          headers: {
            'esk-type': 'contract.Vanished',
            'esk-aggregate-id': 'ghost',
            'esk-version': '1',
            'esk-command-id': 'c-ghost',
            'esk-command-offset': '0',
          },
        },
      ],
    })
    await transaction.commit()
    await producer.disconnect()

    const seen = watch()
    const starting = app(stack, { listeners: seen.listeners }, 2)
    const result = await Promise.race([starting, sleep(45_000).then(() => 'still starting')])
    if (result === 'still starting') defer(async () => (await starting).close())
    expect(result).not.toBe('still starting')
    const esk = result as Esk
    expect(seen.errors.some((e) => e.partition === 0)).toBe(true)
    expect([...seen.owned]).toEqual([1])
    const [, id1] = idsPerPartition(2)
    expect((await esk.repository(ContractAccount).save(new Open('kim', 3), { id: id1! })).version).toBe(1)
    // It keeps trying, with backoff, and keeps saying why.
    await eventually(() => seen.errors.filter((e) => e.partition === 0).length >= 3, 'more recovery attempts of partition 0')
  })

  it('detects a deleted and recreated command topic and refuses its partitions instead of skipping commands', async () => {
    // Fails before the fix: the new topic's offsets restart at 0, and every command at or below the
    // recorded position was skipped with a debug log.
    const stack = env()
    const ids = idsPerPartition(2)
    const first = await app(stack, {}, 2)
    const accounts = first.repository(ContractAccount)
    await accounts.save(new Open('ann', 1), { id: ids[0]! })
    await accounts.update(ids[0]!, new Deposit(1))
    await accounts.update(ids[0]!, new Deposit(2))
    const names = streamNames(stack.topicPrefix, first.streams[0]!.aggregate)
    await first.close()

    // An operator deletes the command topic; the next start creates it again, empty.
    const outside = connect(stack)
    const admin = outside.client.admin()
    await admin.connect()
    defer(() => admin.disconnect())
    await admin.deleteTopics({ topics: [names.commands] })
    await eventually(async () => !(await admin.listTopics()).includes(names.commands), 'the command topic to be gone')

    const refused = (errors: BackgroundError[]): boolean =>
      errors.some((e) => codeOf(e) === 'ESK_COMMAND_LOG_TRUNCATED' && e.partition === 0)
    const seen = watch()
    const second = await app(stack, { listeners: seen.listeners }, 2)
    await eventually(() => refused(seen.errors), 'ESK_COMMAND_LOG_TRUNCATED for partition 0')
    // The partition without history works.
    expect((await second.repository(ContractAccount).save(new Open('bob', 1), { id: ids[1]! })).version).toBe(1)
    // A command on the refused partition is neither applied nor skipped: it waits in the log.
    await expect(second.repository(ContractAccount).update(ids[0]!, new Deposit(3), { timeoutMs: 3_000 })).rejects.toMatchObject({
      code: 'ESK_COMMAND_TIMEOUT',
    })
    await second.close()

    // More commands arrive while no processor runs, so the new log now reaches past the old
    // position: a restart still sees that the command there is not the one the events name.
    for (let i = 0; i < 4; i++) await outside.send(first.streams[0]!, 0, ids[0]!, `filler ${i}`)
    const again = watch()
    await app(stack, { listeners: again.listeners }, 2)
    await eventually(() => refused(again.errors), 'ESK_COMMAND_LOG_TRUNCATED again after a restart')
    expect(again.owned.has(0)).toBe(false)
  })

  it('closes its partitions, waiting for their work, before it leaves the group', async () => {
    // Fails before the fix: close() left the group first, so the next member took the partition
    // while this one was still replaying it into the store.
    const stack = env()
    const base = stack.driver()
    // The first snapshot save fails, so the partition repairs itself from the log in the
    // background; that repair then stalls on the store.
    const store = holdingStore(failingSaves(base.store, 1))
    const a = await app(stack, { driver: { transport: base.transport, store } }, 1)
    defer(async () => store.release())
    let takenOverAt = 0
    await app(stack, {
      listeners: { partition: (e) => (e.change === 'assigned' ? (takenOverAt = Date.now()) : undefined) },
    }, 1)
    store.hold('checkpoint', 0)
    // Its caller hears of it only once the repair recorded it: do not wait for that here.
    const saving = a.repository(ContractAccount).save(new Open('ida', 1)).catch(() => undefined)
    await store.held()

    const closing = a.close()
    await eventually(() => takenOverAt > 0, 'a takeover', 5_000).catch(() => undefined)
    const releasedAt = Date.now()
    store.release()
    await closing
    await saving
    await eventually(() => takenOverAt > 0, 'the other member to take the partition')
    expect(takenOverAt).toBeGreaterThanOrEqual(releasedAt)
  })
})
