import { randomUUID } from 'node:crypto'
import { consoleLogger, createEsk, type PartitionState } from '@esk/core'
import { encodeEnvelope, partitionFor, type SnapshotStore, type Store } from '@esk/core/driver'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing/contract'
import { eventually } from '@esk/testing/stack'
import { describe, expect, it, vi } from 'vitest'

const { ContractAccount, ContractAccountV2, Open, Deposit, Withdraw } = contractModel

describe('partition processor on the embedded driver', () => {
  it('rebuilds the same snapshots and duplicate windows when a replay holds fewer aggregates than the partition has', async () => {
    // Replay batches of 3 events over 10 aggregates, holding 2 of them: aggregates are forgotten
    // and read back from the store between batches, while the previous batch's save is in flight.
    const backend = new MemoryBackend()
    const driver = () => memoryDriver({ backend, replayBatchSize: 3 })
    const first = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: driver() })
    const accounts = first.repository(ContractAccount)
    const ids = [] as string[]
    for (let i = 0; i < 10; i++) ids.push((await accounts.save(new Open(`r${i}`, i))).id)
    for (let round = 0; round < 3; round++) {
      for (const [i, id] of ids.entries()) await accounts.update(id, new Deposit(round * 10 + i + 1), { commandId: `d-${round}-${id}` })
    }
    const before = await Promise.all(ids.map((id) => accounts.get(id)))
    await first.close()

    const rebuilt = await createEsk({
      aggregates: [{ aggregate: ContractAccount, partitions: 1 }],
      driver: driver(),
      rebuild: true,
      replayCacheSize: 2,
    })
    const again = rebuilt.repository(ContractAccount)
    expect(await Promise.all(ids.map((id) => again.get(id)))).toEqual(before)
    // The windows were rebuilt too: a retry of the first deposit is answered, not applied again.
    const retried = await again.update(ids[4]!, new Deposit(99), { commandId: `d-0-${ids[4]!}` })
    expect(retried.version).toBe(2)
    expect((await again.get(ids[4]!)).version).toBe(4)
    await rebuilt.close()
  })

  // Fails before: a replay saved whenever half the aggregates it may hold had changed, so one
  // holding few more aggregates than that wrote a snapshot for nearly every event it folded (a
  // rebuild of 10,000 aggregates ran at a third of the speed of reading the log).
  it('writes an aggregate once per many events it replays, not once per few', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const accounts = first.repository(ContractAccount)
    const ids = await Promise.all(Array.from({ length: 40 }, async (_, i) => (await accounts.save(new Open(`m${i}`, 0))).id))
    for (let round = 0; round < 30; round++) await Promise.all(ids.map((id) => accounts.update(id, new Deposit(1))))
    const before = await Promise.all(ids.map((id) => accounts.get(id)))
    await first.close()

    // Batches of 10 events: a replay that saved once per few events would save after most of them.
    const driver = memoryDriver({ backend, replayBatchSize: 10 })
    let written = 0
    const save = driver.store.snapshots.save.bind(driver.store.snapshots)
    driver.store.snapshots.save = (stream, partition, token, write) => {
      written += write.snapshots.length
      return save(stream, partition, token, write)
    }
    const events = backend.log('contract-account', 0).events.length
    expect(events).toBe(40 * 31)
    // The replay may hold 64 aggregates: the partition's 40 are more than half of that.
    const rebuilt = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver, rebuild: true, replayCacheSize: 64 })
    const again = rebuilt.repository(ContractAccount)
    expect(await Promise.all(ids.map((id) => again.get(id)))).toEqual(before)
    // One write per 100 events folded at most, besides the last save of each aggregate.
    expect(written).toBeLessThanOrEqual(events / 100 + ids.length)
    await rebuilt.close()
  })

  /**
   * A partition whose log holds `rounds` events for each of `aggregates` accounts (an opening, then
   * deposits of 1), written straight into the embedded log as a processor would have committed them.
   */
  async function loggedPartition(aggregates: number, rounds: number): Promise<MemoryBackend> {
    const backend = new MemoryBackend()
    const setup = memoryDriver({ backend })
    await setup.transport.provision([{ aggregate: 'contract-account', partitions: 1 }])
    await setup.transport.close()
    const log = backend.log('contract-account', 0)
    for (let round = 0; round < rounds; round++) {
      for (let a = 0; a < aggregates; a++) {
        const opening = round === 0
        const commandId = `c${log.events.length}`
        log.events.push({
          aggregateId: `p${a}`,
          type: opening ? 'contract.Opened' : 'contract.Deposited',
          version: round + 1,
          commandId,
          commandPosition: log.commands.length,
          payload: JSON.stringify(opening ? { owner: `p${a}`, initial: 0 } : { amount: 1 }),
          offset: log.events.length,
          timestamp: Date.now(),
        })
        log.commands.push(
          encodeEnvelope({
            commandId,
            aggregateId: `p${a}`,
            type: opening ? 'contract.Open' : 'contract.Deposit',
            kind: opening ? 'create' : 'update',
            payload: opening ? { owner: `p${a}`, initial: 0 } : { amount: 1 },
            sentAt: Date.now(),
          }),
        )
      }
    }
    return backend
  }

  /** A driver on `backend` that records the snapshots of each store write and the checkpoint it carries. */
  function recordingDriver(backend: MemoryBackend): { driver: ReturnType<typeof memoryDriver>; writes: Array<{ snapshots: number; offset: number }> } {
    const driver = memoryDriver({ backend })
    const writes: Array<{ snapshots: number; offset: number }> = []
    const save = driver.store.snapshots.save.bind(driver.store.snapshots)
    driver.store.snapshots.save = (stream, partition, token, write) => {
      writes.push({ snapshots: write.snapshots.length, offset: write.checkpoint.offset })
      return save(stream, partition, token, write)
    }
    return { driver, writes }
  }

  // Fails before: a replay saved every 50,000 events however soon it would end, and rewrote every
  // aggregate it had changed each time (a rebuild of 500,000 events over 1,000 aggregates wrote
  // 5,000 snapshots where 1,000 hold its result).
  it('writes each aggregate once when a replay ends within its save interval', async () => {
    const backend = await loggedPartition(100, 600)
    const { driver, writes } = recordingDriver(backend)
    const rebuilt = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver, rebuild: true })
    expect(writes.reduce((sum, w) => sum + w.snapshots, 0)).toBe(100)
    const account = await rebuilt.repository(ContractAccount).get('p7')
    expect(account.version).toBe(600)
    expect(account.state.balance).toBe(599)
    await rebuilt.close()
  })

  it('saves its progress during a replay that lasts longer than its save interval', async () => {
    const backend = await loggedPartition(100, 600)
    const { driver, writes } = recordingDriver(backend)
    // Every reading of the clock is 2 s after the last: the replay's save interval passes after a
    // few batches, as it would in a replay of millions of events.
    const start = Date.now()
    let readings = 0
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => start + 2_000 * readings++)
    let rebuilt: Awaited<ReturnType<typeof createEsk>>
    try {
      rebuilt = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver, rebuild: true })
    } finally {
      clock.mockRestore()
    }
    // A save at 50,000 events (the least a save waits for), checkpoint included, then the last.
    const during = writes.filter((w) => w.snapshots > 0 && w.offset < 60_000)
    expect(during.length).toBeGreaterThan(0)
    expect(during[0]!.offset).toBeGreaterThanOrEqual(50_000)
    expect(writes.at(-1)!.offset).toBe(60_000)
    expect((await rebuilt.repository(ContractAccount).get('p7')).version).toBe(600)
    await rebuilt.close()
  })

  // Fails before: a replay wrote every changed aggregate in one store call, and on Redis one script
  // of 10,000 snapshots kept every other partition waiting for up to half a second.
  it('writes a replay in chunks of at most 1,000 snapshots, moving the checkpoint only past events whose snapshots are stored', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const accounts = first.repository(ContractAccount)
    const ids: string[] = []
    for (let from = 0; from < 2_500; from += 250) {
      const opened = await Promise.all(Array.from({ length: 250 }, (_, i) => accounts.save(new Open(`c${from + i}`, 0))))
      ids.push(...opened.map((o) => o.id))
    }
    await first.close()

    const log = backend.log('contract-account', 0).events
    const state = backend.partitionState('contract-account', 0)
    /** Every event below the stored checkpoint is in its aggregate's stored snapshot. */
    const coveredByCheckpoint = (): boolean =>
      log.every((e) => e.offset >= (state.checkpoint?.offset ?? 0) || (state.snapshots.get(e.aggregateId)?.offset ?? -1) >= e.offset)
    const driver = memoryDriver({ backend })
    const sizes: number[] = []
    let consistent = true
    const save = driver.store.snapshots.save.bind(driver.store.snapshots)
    driver.store.snapshots.save = async (stream, partition, token, write) => {
      sizes.push(write.snapshots.length)
      await save(stream, partition, token, write)
      consistent &&= coveredByCheckpoint()
    }
    const rebuilt = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver, rebuild: true })
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1_000)
    expect(sizes.reduce((sum, n) => sum + n, 0)).toBe(2_500)
    expect(consistent).toBe(true)
    expect(state.checkpoint?.offset).toBe(2_500)
    const again = rebuilt.repository(ContractAccount)
    expect((await again.get(ids[2_499]!)).version).toBe(1)
    await rebuilt.close()
  })

  // Fails before: the Redis store kept its window texts in a WeakMap keyed by window entries, whose
  // upkeep stalled the processor for up to 120 ms at a time with 100,000 aggregates held. The memo
  // now rides on the snapshot, and only reaches the next save if the processor hands it back.
  it("hands the store back the windowMemo it noted on an aggregate's snapshot: loaded, saved by a batch, saved by a replay", async () => {
    const backend = new MemoryBackend()
    const seed = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const { id } = await seed.repository(ContractAccount).save(new Open('m', 0))
    await seed.close()

    /** A store noting a memo on every snapshot it loads or saves, and recording the memo each save was given. */
    const noting = (): { driver: ReturnType<typeof memoryDriver>; given: unknown[] } => {
      const driver = memoryDriver({ backend })
      const given: unknown[] = []
      const snapshots = driver.store.snapshots
      const load = snapshots.load.bind(snapshots)
      const save = snapshots.save.bind(snapshots)
      snapshots.load = async (...args) => {
        const loaded = await load(...args)
        for (const snapshot of loaded.snapshots.values()) snapshot.windowMemo = { from: 'load', version: snapshot.version }
        return loaded
      }
      snapshots.save = async (stream, partition, token, write) => {
        given.push(...write.snapshots.map((s) => s.windowMemo))
        await save(stream, partition, token, write)
        for (const snapshot of write.snapshots) snapshot.windowMemo = { from: 'save', version: snapshot.version }
      }
      return { driver, given }
    }

    // Loaded by the first batch, then held between batches.
    const live = noting()
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: live.driver })
    const accounts = app.repository(ContractAccount)
    for (let i = 1; i <= 3; i++) await accounts.update(id, new Deposit(i))
    await app.close()
    expect(live.given.filter((memo) => memo !== undefined)).toEqual([
      { from: 'load', version: 1 },
      { from: 'save', version: 2 },
      { from: 'save', version: 3 },
    ])

    // A rebuild saves the aggregate; the first batch after it builds on that save.
    const replay = noting()
    const rebuilt = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: replay.driver, rebuild: true })
    await rebuilt.repository(ContractAccount).update(id, new Deposit(5))
    await rebuilt.close()
    expect(replay.given.filter((memo) => memo !== undefined)).toEqual([{ from: 'save', version: 4 }])
  })

  it('keeps the windows a replay folds within dedupWindow, also when their snapshots were saved with a larger one', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const accounts = first.repository(ContractAccount)
    const { id } = await accounts.save(new Open('w', 0))
    for (let i = 1; i <= 6; i++) await accounts.update(id, new Deposit(i), { commandId: `early-${i}` })
    // A reply can come before its batch is saved; a find waits for this repository's own writes.
    expect((await accounts.get(id)).version).toBe(7)
    // The snapshot and checkpoint as they were here (a window of 7), as if every later save were lost.
    const state = backend.partitionState('contract-account', 0)
    const early = { snapshot: structuredClone(state.snapshots.get(id)!), checkpoint: structuredClone(state.checkpoint!) }
    for (let i = 1; i <= 2; i++) await accounts.update(id, new Deposit(10 * i), { commandId: `late-${i}` })
    await first.close()
    state.snapshots.set(id, early.snapshot)
    state.checkpoint = early.checkpoint
    expect(early.snapshot.recent).toHaveLength(7)

    const second = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }), dedupWindow: 3 })
    const again = second.repository(ContractAccount)
    expect((await again.get(id)).version).toBe(9)
    // Folding the two later events trimmed the window of 7 to the newest 3 commands.
    expect(state.snapshots.get(id)!.recent.map((r) => r.commandId)).toEqual(['early-6', 'late-1', 'late-2'])
    expect((await again.update(id, new Deposit(20), { commandId: 'late-2' })).version).toBe(9)
    await second.close()
  })

  it('answers retries of the commands in a held aggregate window, and only those, over many more commands than the window', async () => {
    // The processor keeps the aggregate between batches with an index of its window's command ids
    // that only grows and is built again now and then: a retry must be found across those rebuilds.
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], dedupWindow: 3 })
    const accounts = app.repository(ContractAccount)
    const { id } = await accounts.save(new Open('held', 0))
    let version = 1
    for (let i = 1; i <= 40; i++) {
      expect((await accounts.update(id, new Deposit(1), { commandId: `c-${i}` })).version).toBe(++version)
      // The newest three are in the window: answered with their own versions, not applied again.
      for (let back = 0; back < Math.min(3, i); back++) {
        expect((await accounts.update(id, new Deposit(1), { commandId: `c-${i - back}` })).version).toBe(version - back)
      }
    }
    // Beyond the window a command id is new again: applied (the documented limit of de-duplication).
    expect((await accounts.update(id, new Deposit(1), { commandId: 'c-30' })).version).toBe(++version)
    expect((await accounts.get(id)).state.balance).toBe(41)
    await app.close()
  })

  it('rebuilds a partition when a batch meets a snapshot of another schema version', async () => {
    const backend = new MemoryBackend()
    const v1 = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const { id } = await v1.repository(ContractAccount).save(new Open('ann', 0))
    await v1.repository(ContractAccount).update(id, new Deposit(40))
    await v1.close()
    // As a rolling deploy can leave it: the checkpoint already says version 2, a snapshot still 1.
    const state = backend.partitionState('contract-account', partitionFor(id, 1))
    state.checkpoint = { ...state.checkpoint!, schemaVersion: 2 }

    const states: PartitionState[] = []
    const v2 = await createEsk({
      aggregates: [{ aggregate: ContractAccountV2, partitions: 1 }],
      driver: memoryDriver({ backend }),
      listeners: { state: (e) => states.push(e.state) },
    })
    const accounts = v2.repository(ContractAccountV2)
    const next = await accounts.update(id, new Deposit(5))
    expect(next.version).toBe(3)
    const found = await accounts.get(id, { atLeastVersion: 3 })
    expect(found.state).toMatchObject({ balance: 45, largestDeposit: 40, history: [0, 40, 5] })
    expect(states).toEqual(['opening', 'recovering', 'ready', 'repairing', 'ready'])
    await v2.close()
  })

  // Issue 6, scenario 11. Fails before: any schema mismatch reset and rebuilt the partition, so
  // during a rolling deploy old and new processors kept downgrading each other's partitions.
  it('never rebuilds a partition written by a newer schema version; reports it instead', async () => {
    const backend = new MemoryBackend()
    const v2 = await createEsk({ aggregates: [{ aggregate: ContractAccountV2, partitions: 1 }], driver: memoryDriver({ backend }) })
    const { id } = await v2.repository(ContractAccountV2).save(new Open('new', 7))
    await v2.close()

    const v1 = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const status = v1.status()
    expect(status.ready).toBe(false)
    expect(status.partitions).toMatchObject([{ partition: 0, state: 'failed', error: { code: 'ESK_SCHEMA_AHEAD' } }])
    await v1.close()
    const state = backend.partitionState('contract-account', 0)
    expect(state.checkpoint?.schemaVersion).toBe(2)
    expect(state.snapshots.get(id)?.schemaVersion).toBe(2)

    const back = await createEsk({ aggregates: [{ aggregate: ContractAccountV2, partitions: 1 }], driver: memoryDriver({ backend }) })
    expect((await back.repository(ContractAccountV2).update(id, new Deposit(1))).version).toBe(2)
    await back.close()
  })

  it('starts, and serves the other partitions, when one partition cannot recover', async () => {
    const backend = new MemoryBackend()
    const driver = memoryDriver({ backend })
    await driver.transport.provision([{ aggregate: 'contract-account', partitions: 2 }])
    // An event type this code does not know, as a newer deploy could have written.
    backend.log('contract-account', 0).events.push({
      offset: 0,
      aggregateId: 'from-the-future',
      type: 'contract.Teleported',
      version: 1,
      commandId: 'c-1',
      commandPosition: 0,
      payload: '{}',
    })
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 2 }], driver })
    const status = app.status()
    expect(status.ready).toBe(false)
    expect(status.partitions).toMatchObject([
      { partition: 0, state: 'failed', error: { code: 'ESK_SERIALIZATION', message: expect.stringContaining('contract.Teleported') } },
      { partition: 1, state: 'ready' },
    ])
    let id = 'x'
    for (let i = 0; partitionFor(id, 2) !== 1; i++) id = `acc-${i}`
    const accounts = app.repository(ContractAccount)
    await accounts.save(new Open('ok', 1), { id })
    expect((await accounts.get(id, { atLeastVersion: 1 })).state.balance).toBe(1)
    await app.close()
  })

  // Issue 6, scenario 14. Fails before: the new log's commands had positions the events already
  // recorded, and were skipped as done with a debug log.
  it('handles the next batch while a batch is saved, and commits it only once that save is over', async () => {
    const backend = new MemoryBackend()
    const { transport, store } = memoryDriver({ backend })
    // Saves that include the aggregate 'slow' wait at the gate.
    let open: () => void = () => undefined
    const gate = new Promise<void>((resolve) => (open = resolve))
    let waiting = 0
    const snapshots: SnapshotStore = Object.create(store.snapshots) as SnapshotStore
    snapshots.save = async (stream, partition, token, write) => {
      if (write.snapshots.some((s) => s.aggregateId === 'slow')) {
        waiting += 1
        await gate
      }
      return store.snapshots.save(stream, partition, token, write)
    }
    const gated: Store = { snapshots, outcomes: store.outcomes, close: () => store.close() }
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: { transport, store: gated } })
    const accounts = app.repository(ContractAccount)
    await accounts.save(new Open('fast', 0), { id: 'fast' })
    const slow = accounts.save(new Open('slow', 0), { id: 'slow' })
    for (let i = 0; i < 100 && waiting === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    expect(waiting).toBe(1)
    // The next batch is handled on what the committed one left, but not committed before its save.
    const next = accounts.update('fast', new Deposit(7))
    await new Promise((resolve) => setTimeout(resolve, 50))
    const log = backend.log('contract-account', 0)
    expect(log.events.map((e) => e.aggregateId)).toEqual(['fast', 'slow'])
    open()
    expect(await slow).toMatchObject({ version: 1 })
    expect(await next).toMatchObject({ version: 2 })
    expect(log.events.map((e) => e.aggregateId)).toEqual(['fast', 'slow', 'fast'])
    expect((await accounts.find('fast'))?.state.balance).toBe(7)
    await app.close()
  })

  it('answers an accepted command once its events are committed, ahead of its save, and a refusal only once saved', async () => {
    const backend = new MemoryBackend()
    const driver = memoryDriver({ backend })
    const { snapshots } = driver.store
    // Saves that `held` matches wait until released, as on a slow store.
    let held: ((write: Parameters<SnapshotStore['save']>[3]) => boolean) | undefined
    let gate: Promise<void> = Promise.resolve()
    const holdSaves = (which: typeof held): (() => void) => {
      let release!: () => void
      gate = new Promise<void>((resolve) => (release = resolve))
      held = which
      return release
    }
    let saves = 0
    const save = snapshots.save.bind(snapshots)
    snapshots.save = async (stream, partition, token, write) => {
      if (held?.(write)) await gate
      await save(stream, partition, token, write)
      saves++
    }
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver })
    const accounts = app.repository(ContractAccount)
    const { id } = await accounts.save(new Open('early', 10))
    await accounts.get(id)
    const settled = async <T>(promise: Promise<T>, ms: number): Promise<boolean> =>
      Promise.race([promise.then(() => true, () => true), new Promise<boolean>((resolve) => setTimeout(resolve, ms, false))])

    // The deposit's save is held; its events are committed, and that records its outcome.
    const releaseDeposit = holdSaves((write) => write.snapshots.length > 0)
    const before = saves
    expect(await accounts.update(id, new Deposit(5), { timeoutMs: 2_000 })).toMatchObject({ version: 2 })
    expect(saves).toBe(before)
    // Another application's find may lag by that save; the writing repository's waits for it.
    const elsewhere = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }), processing: false })
    expect((await elsewhere.repository(ContractAccount).get(id)).version).toBe(1)
    const found = accounts.get(id)
    expect(await settled(found, 200)).toBe(false)
    releaseDeposit()
    expect((await found).version).toBe(2)

    // A refusal is recorded only by its batch's save, so it is answered only after that save.
    const releaseRefusal = holdSaves((write) => write.unlogged.length > 0)
    const withdrawal = accounts.update(id, new Withdraw(100))
    expect(await settled(withdrawal, 200)).toBe(false)
    releaseRefusal()
    await expect(withdrawal).rejects.toMatchObject({ code: 'ESK_COMMAND_REJECTED' })
    await elsewhere.close()
    await app.close()
  })

  // Failed before the transport was told: the save of the only batch was refused after its
  // commit (the store had been taken over), no next batch came to report it, and the partition
  // sat fenced until some other command arrived.
  it('takes a partition back when the save after its last batch finds the store taken over', async () => {
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const accounts = app.repository(ContractAccount)
    const { id } = await accounts.save(new Open('taken', 0))
    // As another processor (or the CLI's rebuild) taking the store does.
    backend.partitionState('contract-account', 0).owner = 'another-owner'
    const commandId = randomUUID()
    // Committed, so answered before the save is refused: its events in the log record it.
    const first = await accounts.update(id, new Deposit(3), { commandId })
    expect(first.version).toBe(2)
    const store = backend.partitionState('contract-account', 0)
    await eventually(() => store.owner !== 'another-owner' && app.status().partitions[0]?.state === 'ready', 'the store taken back without another command', 2_000)
    expect(app.status().partitions[0]?.owner).toBe(store.owner)
    // The command was committed once; its retry is answered from the window the replay rebuilt.
    expect(await accounts.update(id, new Deposit(3), { commandId })).toMatchObject({ version: 2 })
    expect((await accounts.get(id)).state.balance).toBe(3)
    await app.close()
  })

  it('refuses to process a command log that restarts below the positions already handled', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const accounts = first.repository(ContractAccount)
    const { id } = await accounts.save(new Open('old', 0))
    await accounts.update(id, new Deposit(1))
    await first.close()
    // As a deleted and recreated command topic leaves it: empty, positions from 0 again.
    const log = backend.log('contract-account', 0)
    log.commands.length = 0
    log.committed = 0

    const second = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    expect(second.status().partitions).toMatchObject([
      { partition: 0, state: 'failed', error: { code: 'ESK_COMMAND_LOG_TRUNCATED', message: expect.stringContaining('recreated') } },
    ])
    await expect(second.repository(ContractAccount).update(id, new Deposit(5), { timeoutMs: 300 })).rejects.toMatchObject({
      code: 'ESK_COMMAND_TIMEOUT',
    })
    // Nothing was applied, nothing was skipped as if done: the event log is as it was.
    expect(log.events.map((e) => e.version)).toEqual([1, 2])
    await second.close()
  })

  it('rebuilds a partition whose stored checkpoint is beyond the end of its event log, with a warning', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }) })
    const { id } = await first.repository(ContractAccount).save(new Open('gone', 3))
    await first.repository(ContractAccount).update(id, new Deposit(1))
    await first.close()
    // As a recreated event topic leaves it: the store still describes events the log no longer has.
    backend.log('contract-account', 0).events.length = 0

    const warnings: Array<Record<string, unknown> | undefined> = []
    const logger = { ...consoleLogger('silent'), warn: (_: string, fields?: Record<string, unknown>) => void warnings.push(fields) }
    const second = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver({ backend }), logger })
    expect(second.status().ready).toBe(true)
    expect(warnings).toContainEqual(expect.objectContaining({ code: 'ESK_STORE_AHEAD', checkpoint: 2 }))
    const accounts = second.repository(ContractAccount)
    expect(await accounts.find(id)).toBeUndefined()
    expect((await accounts.save(new Open('again', 5), { id })).version).toBe(1)
    await second.close()
  })
})

