import { randomUUID } from 'node:crypto'
import { createEsk, type Class, type Driver, type Esk, type EskOptions, type EskStatus, type RecoveryProgress } from '@esk/core'
import {
  AggregateRuntime,
  partitionFor,
  sleep,
  type DeadLetter,
  type Outcome,
  type StoredEvent,
  type StreamSpec,
} from '@esk/core/driver'
import { afterEach, describe, expect, it } from 'vitest'
import { failingSaves } from '../faults.js'
import {
  ContractAccount,
  ContractAccountV2,
  Deposit,
  Explode,
  Hold,
  Note,
  holdGate,
  Open,
  Shuffle,
  Unhandled,
  Withdraw,
} from './model.js'

/** What a driver under test provides to the contract suite. Each fixture is isolated from the others. */
export interface ContractFixture {
  /**
   * A new driver over this fixture's data, as a restarted process would build it. Each call
   * returns fresh clients; the suite closes them through the application.
   */
  driver(): Driver | Promise<Driver>
  /** Drops every snapshot, checkpoint and outcome, as `FLUSHALL` does to Redis. */
  flushSnapshots(): Promise<void>
  /** Overwrites a stored snapshot with text that is not a snapshot, as a bad edit or a bug would. */
  corruptSnapshot(stream: StreamSpec, partition: number, aggregateId: string): Promise<void>
  /** The dead letters committed in a partition so far, in order. */
  deadLetters(stream: StreamSpec, partition: number): Promise<DeadLetter[]>
  /** Releases anything the fixture holds once a test is done. */
  dispose?(): Promise<void>
}

/** Options of {@link describeDriverContract}. */
export interface ContractOptions {
  /** Partitions per aggregate type. Default 3. */
  partitions?: number
  /** Outcome timeout for every command. Default 20000 ms. */
  commandTimeoutMs?: number
}

/**
 * The behaviour every esk driver must show, as one vitest suite. Call it from a spec with a
 * factory of isolated fixtures: the embedded driver and Kafka+Redis run exactly this suite.
 */
export function describeDriverContract(
  name: string,
  setup: () => Promise<ContractFixture>,
  options: ContractOptions = {},
): void {
  const partitions = options.partitions ?? 3
  const commandTimeoutMs = options.commandTimeoutMs ?? 20_000

  describe(`driver contract: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = []
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    })

    async function fixture(): Promise<ContractFixture> {
      const f = await setup()
      if (f.dispose) cleanups.push(() => f.dispose!())
      return f
    }

    async function start(f: ContractFixture, extra: Partial<EskOptions> = {}): Promise<Esk> {
      const app = await createEsk({
        aggregates: [{ aggregate: ContractAccount, partitions }],
        driver: await f.driver(),
        commandTimeoutMs,
        ...extra,
      })
      cleanups.push(() => app.close())
      return app
    }

    async function allEvents(f: ContractFixture, stream: StreamSpec): Promise<StoredEvent[][]> {
      const driver = await f.driver()
      try {
        const result: StoredEvent[][] = []
        for (let p = 0; p < stream.partitions; p++) {
          const events: StoredEvent[] = []
          for await (const batch of driver.transport.readEvents(stream, p, 0)) events.push(...batch)
          result.push(events)
        }
        return result
      } finally {
        await driver.transport.close()
        await driver.store.close()
      }
    }

    /**
     * Folds every event of the log per aggregate, the way a from-zero replay would. A log may show
     * a commit a moment after it returned (Kafka's last stable offset follows the transaction
     * markers), so it reads again until every aggregate in `seen` shows at least that version.
     */
    async function foldAll<T extends object>(f: ContractFixture, app: Esk, cls: Class<T>, seen: Map<string, number>) {
      const runtime = new AggregateRuntime(cls)
      const stream = app.streams.find((s) => s.aggregate === runtime.model.name)!
      const deadline = Date.now() + 10_000
      for (;;) {
        const folded = await foldOnce(f, runtime, stream)
        const behind = [...seen].some(([id, version]) => (folded.get(id)?.version ?? 0) < version)
        if (!behind || Date.now() > deadline) return folded
        await sleep(50)
      }
    }

    async function foldOnce<T extends object>(f: ContractFixture, runtime: AggregateRuntime<T>, stream: StreamSpec) {
      const folded = new Map<string, { version: number; state: T }>()
      for (const events of await allEvents(f, stream)) {
        const byId = new Map<string, StoredEvent[]>()
        for (const e of events) byId.set(e.aggregateId, [...(byId.get(e.aggregateId) ?? []), e])
        for (const [id, list] of byId) {
          // One writer per partition means versions run 1..n: a repeat is a second writer.
          expect(list.map((e) => e.version), `event versions of ${id}`).toEqual(list.map((_, i) => i + 1))
          folded.set(id, { version: list.length, state: runtime.fold(list) })
        }
      }
      return folded
    }

    /** `count` new aggregate ids that all fall in one partition. */
    function idsInOnePartition(count: number): string[] {
      const first = `acc-${randomUUID()}`
      const partition = partitionFor(first, partitions)
      const ids = [first]
      while (ids.length < count) {
        const id = `acc-${randomUUID()}`
        if (partitionFor(id, partitions) === partition) ids.push(id)
      }
      return ids
    }

    it('creates, updates and finds an aggregate', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const created = await accounts.save(new Open('ada', 10))
      expect(created.version).toBe(1)
      expect(created.id).toMatch(/.+/)
      const updated = await accounts.update(created.id, new Deposit(5))
      expect(updated).toMatchObject({ id: created.id, version: 2 })
      const found = await accounts.find(created.id, { atLeastVersion: 2 })
      expect(found?.version).toBe(2)
      expect(found?.state).toBeInstanceOf(ContractAccount)
      expect(found?.state).toMatchObject({ owner: 'ada', balance: 15, deposits: 1, history: [10, 5] })
      expect(await accounts.find('no-such-account')).toBeUndefined()
      await expect(accounts.get('no-such-account')).rejects.toMatchObject({ code: 'ESK_AGGREGATE_NOT_FOUND' })
    })

    it('saves with a caller-chosen id and refuses to create it twice', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const id = `acc-${randomUUID()}`
      await accounts.save(new Open('bo', 1), { id })
      await expect(accounts.save(new Open('eve', 99), { id })).rejects.toMatchObject({
        code: 'ESK_AGGREGATE_EXISTS',
        details: { id },
      })
      await expect(accounts.update(`missing-${randomUUID()}`, new Deposit(1))).rejects.toMatchObject({
        code: 'ESK_AGGREGATE_NOT_FOUND',
      })
      const found = await accounts.get(id, { atLeastVersion: 1 })
      expect(found.state.owner).toBe('bo')
      expect(found.version).toBe(1)
    })

    it('rejects with typed errors, changes nothing, and keeps processing', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('cy', 10))

      await expect(accounts.update(id, new Withdraw(50))).rejects.toMatchObject({
        code: 'ESK_COMMAND_REJECTED',
        reason: 'INSUFFICIENT_FUNDS',
        message: 'balance 10 is below 50',
      })
      await expect(accounts.update(id, new Explode())).rejects.toMatchObject({
        code: 'ESK_HANDLER_FAILED',
        message: expect.stringContaining('a bug in the handler'),
      })
      await expect(accounts.update(id, new Deposit(-3))).rejects.toMatchObject({
        code: 'ESK_INVALID_COMMAND',
        problems: ['amount must be a positive number'],
      })
      await expect(accounts.update(id, new Unhandled())).rejects.toMatchObject({ code: 'ESK_UNKNOWN_COMMAND' })
      await expect(accounts.update(id, new Open('x', 1))).rejects.toMatchObject({ code: 'ESK_UNKNOWN_COMMAND' })
      await expect(accounts.save(new Open('', 1))).rejects.toMatchObject({ code: 'ESK_INVALID_COMMAND' })
      await expect(accounts.save(new Open('neg', -1))).rejects.toMatchObject({
        code: 'ESK_COMMAND_REJECTED',
        reason: 'NEGATIVE_INITIAL',
      })

      const after = await accounts.update(id, new Deposit(1))
      expect(after.version).toBe(2)
      const found = await accounts.get(id, { atLeastVersion: 2 })
      expect(found.state).toMatchObject({ balance: 11, history: [10, 1] })
    })

    it('refuses a command whose event is over maxEventBytes, before anything is written', async () => {
      const app = await start(await fixture(), { maxEventBytes: 4096 })
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('pat', 0))
      await expect(accounts.update(id, new Note('x'.repeat(5000)))).rejects.toMatchObject({
        code: 'ESK_HANDLER_FAILED',
        message: expect.stringContaining('maxEventBytes'),
      })
      const ok = await accounts.update(id, new Note('y'.repeat(3000)))
      expect(ok.version).toBe(2)
      expect((await accounts.get(id, { atLeastVersion: 2 })).state.notes).toBe(3000)
    })

    it('answers bad records from other producers and keeps the partition going', async () => {
      const f = await fixture()
      const app = await start(f)
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('dee', 0))
      const stream = app.streams[0]!
      const partition = partitionFor(id, stream.partitions)
      const raw = await f.driver()
      cleanups.push(async () => {
        await raw.transport.close()
        await raw.store.close()
      })
      await raw.transport.provision([stream])

      const ask = async (envelope: Record<string, unknown>): Promise<Outcome | undefined> => {
        const commandId = String(envelope.commandId)
        const waiting = raw.store.outcomes.wait(stream, partition, { aggregateId: id, commandId })
        const deadline = setTimeout(() => waiting.stop(), commandTimeoutMs)
        try {
          await raw.transport.send(stream, partition, id, JSON.stringify({ ...envelope, replyTo: raw.store.outcomes.address }))
          return await waiting.outcome
        } finally {
          clearTimeout(deadline)
        }
      }
      await raw.transport.send(stream, partition, id, 'not json at all')
      await raw.transport.send(stream, partition, id, JSON.stringify({ hello: 'world' }))
      const unknownType = await ask({
        commandId: randomUUID(),
        type: 'contract.NoSuchCommand',
        aggregateId: id,
        kind: 'update',
        payload: {},
        sentAt: Date.now(),
      })
      expect(unknownType).toMatchObject({ status: 'rejected', error: { code: 'ESK_UNKNOWN_COMMAND' } })
      if (!unknownType) throw new Error('no outcome')
      const invalid = await ask({
        commandId: randomUUID(),
        type: 'contract.Deposit',
        aggregateId: id,
        kind: 'update',
        payload: { amount: 'lots' },
        sentAt: Date.now(),
      })
      expect(invalid).toMatchObject({ status: 'rejected', error: { code: 'ESK_INVALID_COMMAND' } })
      const malformed = await ask({ commandId: randomUUID(), aggregateId: id, kind: 'sideways', payload: [] })
      expect(malformed).toMatchObject({ status: 'rejected', error: { code: 'ESK_INVALID_COMMAND' } })

      const ok = await accounts.update(id, new Deposit(7))
      expect(ok.version).toBe(2)
      expect((await accounts.get(id, { atLeastVersion: 2 })).state.balance).toBe(7)

      // Records that can never succeed are kept with their reason; a business refusal is not.
      await expect(accounts.update(id, new Explode())).rejects.toMatchObject({ code: 'ESK_HANDLER_FAILED' })
      let letters: DeadLetter[] = []
      for (const deadline = Date.now() + 10_000; letters.length < 5 && Date.now() < deadline; await sleep(50)) {
        letters = await f.deadLetters(stream, partition)
      }
      expect(letters.map((d) => d.reason.code)).toEqual([
        'ESK_INVALID_COMMAND',
        'ESK_INVALID_COMMAND',
        'ESK_UNKNOWN_COMMAND',
        'ESK_INVALID_COMMAND',
        'ESK_HANDLER_FAILED',
      ])
      expect(letters[0]).toMatchObject({ value: 'not json at all', reason: { message: expect.stringContaining('not JSON') } })
      expect(letters[2]).toMatchObject({ aggregateId: id, commandId: unknownType.commandId })
      expect(JSON.parse(letters[4]!.value)).toMatchObject({ type: 'contract.Explode', aggregateId: id })
      expect(letters.map((d) => d.position)).toEqual([...letters.map((d) => d.position)].sort((a, b) => a - b))
    })

    it('enforces expectedVersion (optimistic concurrency)', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('fay', 0))
      await accounts.update(id, new Deposit(1), { expectedVersion: 1 })
      await expect(accounts.update(id, new Deposit(1), { expectedVersion: 1 })).rejects.toMatchObject({
        code: 'ESK_VERSION_CONFLICT',
        details: { expected: 1, actual: 2 },
      })
      const racers = await Promise.allSettled(
        Array.from({ length: 5 }, () => accounts.update(id, new Deposit(10), { expectedVersion: 2 })),
      )
      expect(racers.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
      for (const r of racers) {
        if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ESK_VERSION_CONFLICT' })
      }
      expect((await accounts.get(id, { atLeastVersion: 3 })).state.balance).toBe(11)
    })

    it('applies a command id once, returning the original outcome to every retry', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('gil', 0))
      const commandId = randomUUID()
      const first = await accounts.update(id, new Deposit(5), { commandId })
      const again = await accounts.update(id, new Deposit(5), { commandId })
      expect(again).toEqual(first)
      const together = await Promise.all(
        Array.from({ length: 4 }, () => accounts.update(id, new Deposit(3), { commandId: 'same-' + id })),
      )
      expect(new Set(together.map((r) => r.version)).size).toBe(1)
      const rejectedId = randomUUID()
      await expect(accounts.update(id, new Withdraw(1000), { commandId: rejectedId })).rejects.toMatchObject({
        reason: 'INSUFFICIENT_FUNDS',
      })
      await expect(accounts.update(id, new Withdraw(1000), { commandId: rejectedId })).rejects.toMatchObject({
        reason: 'INSUFFICIENT_FUNDS',
      })
      const found = await accounts.get(id, { atLeastVersion: 3 })
      expect(found.version).toBe(3)
      expect(found.state.history).toEqual([0, 5, 3])
    })

    it('lets a client read its own writes', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('hal', 0))
      for (let i = 1; i <= 5; i++) {
        const { version } = await accounts.update(id, new Deposit(i))
        const found = await accounts.get(id, { atLeastVersion: version })
        expect(found.version).toBeGreaterThanOrEqual(version)
        expect(found.state.deposits).toBeGreaterThanOrEqual(i)
      }
      await expect(accounts.find(id, { atLeastVersion: 99, timeoutMs: 200 })).rejects.toMatchObject({
        code: 'ESK_READ_TIMEOUT',
        details: { atLeastVersion: 99, seen: 6 },
      })
    })

    it('keeps snapshots equal to a fold of all events, across many aggregates and partitions', async () => {
      const f = await fixture()
      const app = await start(f)
      const accounts = app.repository(ContractAccount)
      const ids = await Promise.all(Array.from({ length: 24 }, (_, i) => accounts.save(new Open(`o${i}`, i))))
      await Promise.all(
        ids.flatMap(({ id }, i) => [
          accounts.update(id, new Deposit(i + 1)),
          accounts.update(id, new Shuffle(2)),
          accounts.update(id, new Withdraw(1000)).catch(() => undefined),
        ]),
      )
      const used = new Set(ids.map(({ id }) => partitionFor(id, partitions)))
      expect(used.size).toBe(partitions)
      // Open, Deposit, Shuffle (two events); the Withdraw is refused.
      const found = await Promise.all(ids.map(({ id }) => accounts.get(id, { atLeastVersion: 4 })))
      const folded = await foldAll(f, app, ContractAccount, new Map(found.map((a) => [a.id, a.version])))
      expect(folded.size).toBe(ids.length)
      for (const snapshot of found) {
        expect(snapshot.version).toBe(4)
        expect(folded.get(snapshot.id)).toEqual({ version: snapshot.version, state: snapshot.state })
      }
    })

    it('serialises many concurrent callers on one aggregate', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('ivy', 0))
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => accounts.update(id, new Deposit(i + 1))))
      expect(new Set(results.map((r) => r.version)).size).toBe(40)
      expect(Math.max(...results.map((r) => r.version))).toBe(41)
      const found = await accounts.get(id, { atLeastVersion: 41 })
      expect(found.state.balance).toBe((40 * 41) / 2)
    })

    it('recovers after a restart and continues from the snapshots', async () => {
      const f = await fixture()
      const first = await start(f)
      const a = first.repository(ContractAccount)
      const { id } = await a.save(new Open('jo', 3))
      await a.update(id, new Deposit(4))
      await first.close()

      const second = await start(f)
      const b = second.repository(ContractAccount)
      expect((await b.get(id)).state).toMatchObject({ balance: 7, history: [3, 4] })
      const next = await b.update(id, new Deposit(1))
      expect(next.version).toBe(3)
      expect((await b.get(id, { atLeastVersion: 3 })).state.balance).toBe(8)
    })

    it('rebuilds every snapshot from the log when the store was flushed', async () => {
      const f = await fixture()
      const first = await start(f)
      const accounts = first.repository(ContractAccount)
      const ids = await Promise.all(Array.from({ length: 6 }, (_, i) => accounts.save(new Open(`k${i}`, i))))
      await Promise.all(ids.map(({ id }) => accounts.update(id, new Deposit(100))))
      const before = await Promise.all(ids.map(({ id }) => accounts.get(id, { atLeastVersion: 2 })))
      await first.close()
      await f.flushSnapshots()

      const second = await start(f)
      const again = second.repository(ContractAccount)
      for (const found of before) {
        expect(await again.get(found.id, { atLeastVersion: found.version })).toEqual(found)
      }
      const after = await again.update(ids[0]!.id, new Deposit(1))
      expect(after.version).toBe(3)
    })

    it('replays from the log when the store is flushed while processors run', async () => {
      const f = await fixture()
      const app = await start(f)
      const accounts = app.repository(ContractAccount)
      const id = `acc-${randomUUID()}`
      await accounts.save(new Open('ora', 10), { id })
      await accounts.update(id, new Deposit(5))
      await f.flushSnapshots()
      // Without the replay these would see no aggregate: a second creation, or a missing one.
      await expect(accounts.save(new Open('impostor', 0), { id })).rejects.toMatchObject({ code: 'ESK_AGGREGATE_EXISTS' })
      const next = await accounts.update(id, new Deposit(1))
      expect(next.version).toBe(3)
      const found = await accounts.get(id, { atLeastVersion: 3 })
      expect(found.state).toMatchObject({ owner: 'ora', balance: 16, history: [10, 5, 1] })
    })

    it('reports recovery progress with counts', async () => {
      const f = await fixture()
      const first = await start(f)
      const accounts = first.repository(ContractAccount)
      for (let i = 0; i < 5; i++) await accounts.save(new Open(`p${i}`, 1))
      await first.close()

      const progress: RecoveryProgress[] = []
      await start(f, { rebuild: true, listeners: { recovery: (p) => progress.push(p) } })
      const ends = progress.filter((p) => p.phase === 'end')
      expect(ends).toHaveLength(partitions)
      expect(progress.filter((p) => p.phase === 'start')).toHaveLength(partitions)
      expect(ends.every((p) => p.rebuild && p.from === 0)).toBe(true)
      expect(ends.reduce((n, p) => n + p.events, 0)).toBe(5)
      expect(ends.reduce((n, p) => n + p.aggregates, 0)).toBe(5)
      const batches = progress.filter((p) => p.phase === 'batch')
      expect(batches.reduce((n, p) => Math.max(n, p.events), 0)).toBeGreaterThan(0)
    })

    it('discards snapshots of another schema version and rebuilds them from the events', async () => {
      const f = await fixture()
      const v1 = await start(f)
      const accounts = v1.repository(ContractAccount)
      const { id } = await accounts.save(new Open('lu', 1))
      await accounts.update(id, new Deposit(50))
      await accounts.update(id, new Deposit(20))
      await v1.close()

      const v2 = await createEsk({
        aggregates: [{ aggregate: ContractAccountV2, partitions }],
        driver: await f.driver(),
        commandTimeoutMs,
      })
      cleanups.push(() => v2.close())
      const accountsV2 = v2.repository(ContractAccountV2)
      const found = await accountsV2.get(id, { atLeastVersion: 3 })
      expect(found.state).toBeInstanceOf(ContractAccountV2)
      expect(found.state).toMatchObject({ balance: 71, largestDeposit: 50, history: [1, 50, 20] })
      await accountsV2.update(id, new Deposit(60))
      expect((await accountsV2.get(id, { atLeastVersion: 4 })).state.largestDeposit).toBe(60)
    })

    it('repairs snapshots from the log when saving them fails after a commit', async () => {
      const f = await fixture()
      const driver = await f.driver()
      const faulty = failingSaves(driver.store, 2)
      const app = await createEsk({
        aggregates: [{ aggregate: ContractAccount, partitions }],
        driver: { transport: driver.transport, store: faulty },
        commandTimeoutMs,
      })
      cleanups.push(() => app.close())
      const states: string[] = []
      app.on('state', (e) => states.push(e.state))
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('mo', 2))
      const { version } = await accounts.update(id, new Deposit(3))
      expect(version).toBe(2)
      const found = await accounts.get(id, { atLeastVersion: 2 })
      expect(found.state).toMatchObject({ balance: 5, history: [2, 3] })
      expect(states).toContain('repairing')
      expect(states[states.length - 1]).toBe('ready')
      expect(faulty.failed()).toBe(2)
    })

    it('fences an older processor when a newer one takes its partitions', async () => {
      const f = await fixture()
      const old = await start(f)
      const { id } = await old.repository(ContractAccount).save(new Open('ned', 0))
      const newer = await start(f)
      const accounts = newer.repository(ContractAccount)
      await accounts.update(id, new Deposit(1))
      await accounts.update(id, new Deposit(2))
      const found = await accounts.get(id, { atLeastVersion: 3 })
      expect(found.state.history).toEqual([0, 1, 2])
      const folded = await foldAll(f, newer, ContractAccount, new Map([[id, 3]]))
      expect(folded.get(id)).toEqual({ version: 3, state: found.state })
    })

    // Issue 6, scenario 1. Fails before the fenced store: the held batch's save re-created the
    // checkpoint in the emptied store, the next batch saw nothing wrong, and the neighbour read as
    // missing, so a second creation of it was accepted (versions 1, 2, 1 in the log).
    it('keeps every aggregate of a partition when the store is emptied while a batch is in flight', async () => {
      const f = await fixture()
      const app = await start(f)
      const accounts = app.repository(ContractAccount)
      const [held, neighbour] = idsInOnePartition(2) as [string, string]
      await accounts.save(new Open('held', 1), { id: held })
      await accounts.save(new Open('neighbour', 2), { id: neighbour })
      await accounts.update(neighbour, new Deposit(3))
      const name = `gate-${randomUUID()}`
      const gate = holdGate(name)
      const holding = accounts.update(held, new Hold(name, 5))
      await gate.entered
      await f.flushSnapshots()
      gate.open()
      expect(await holding).toMatchObject({ id: held, version: 2 })

      await expect(accounts.save(new Open('impostor', 0), { id: neighbour })).rejects.toMatchObject({
        code: 'ESK_AGGREGATE_EXISTS',
      })
      expect((await accounts.update(neighbour, new Deposit(1))).version).toBe(3)
      const found = await accounts.get(neighbour, { atLeastVersion: 3 })
      expect(found.state).toMatchObject({ owner: 'neighbour', balance: 6, history: [2, 3, 1] })
      expect((await accounts.get(held, { atLeastVersion: 2 })).state).toMatchObject({ balance: 6, history: [1, 5] })
      // foldAll also checks that every aggregate's versions run 1..n in the log.
      const folded = await foldAll(f, app, ContractAccount, new Map([[neighbour, 3], [held, 2]]))
      expect(folded.get(neighbour)).toEqual({ version: 3, state: found.state })
    })

    // Issue 6, scenario 2: a write of a processor that lost the partition must never land.
    it('refuses store writes from an owner that was replaced, or whose data was flushed', async () => {
      const f = await fixture()
      const driver = await f.driver()
      cleanups.push(async () => {
        await driver.transport.close()
        await driver.store.close()
      })
      const { snapshots } = driver.store
      const stream: StreamSpec = { aggregate: `fenced-${randomUUID().slice(0, 8)}`, partitions: 1 }
      const saved = { aggregateId: 'a', version: 1, schemaVersion: 1, offset: 0, state: '{"n":1}', recent: [] }
      const checkpoint = { offset: 1, commandPosition: 0, schemaVersion: 1 }
      await snapshots.acquire(stream, 0, 'old-owner')
      await snapshots.save(stream, 0, 'old-owner', { snapshots: [saved], checkpoint, unlogged: [], ready: true })
      await snapshots.acquire(stream, 0, 'new-owner')

      await expect(snapshots.reset(stream, 0, 'old-owner')).rejects.toMatchObject({ code: 'ESK_FENCED' })
      const late = { ...saved, version: 9, offset: 8, state: '{"n":9}' }
      await expect(
        snapshots.save(stream, 0, 'old-owner', { snapshots: [late], checkpoint: { ...checkpoint, offset: 9 }, unlogged: [] }),
      ).rejects.toMatchObject({ code: 'ESK_FENCED' })
      expect(await snapshots.read(stream, 0, 'a')).toEqual(saved)
      expect(await snapshots.checkpoint(stream, 0)).toEqual(checkpoint)
      expect((await snapshots.load(stream, 0, 'new-owner', ['a'], [])).owned).toBe(true)
      expect((await snapshots.load(stream, 0, 'old-owner', ['a'], [])).owned).toBe(false)

      // An emptied store has no owner: a write from before the flush cannot re-create a partition.
      await f.flushSnapshots()
      await expect(
        snapshots.save(stream, 0, 'new-owner', { snapshots: [late], checkpoint, unlogged: [] }),
      ).rejects.toMatchObject({ code: 'ESK_FENCED' })
      expect(await snapshots.checkpoint(stream, 0)).toBeUndefined()
      expect((await snapshots.load(stream, 0, 'new-owner', ['a'], [])).owned).toBe(false)
      await expect(snapshots.read(stream, 0, 'a')).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE' })
    })

    // Issue 6, scenario 3. Fails before per-aggregate dedup: the second command was dropped and
    // its caller was told the first aggregate's version.
    it('applies one command id on two aggregates of a partition independently', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const [a, b] = idsInOnePartition(2) as [string, string]
      await accounts.save(new Open('a', 0), { id: a })
      await accounts.save(new Open('b', 0), { id: b })
      await accounts.update(a, new Deposit(1))
      const commandId = `idempotency-key-${randomUUID()}`
      const first = await accounts.update(a, new Deposit(10), { commandId })
      expect(first).toMatchObject({ id: a, version: 3, commandId })
      const second = await accounts.update(b, new Deposit(20), { commandId })
      expect(second).toMatchObject({ id: b, version: 2, commandId })
      // Each aggregate answers a retry with its own outcome, the position of its events included.
      expect(await accounts.update(b, new Deposit(20), { commandId })).toEqual(second)
      expect(await accounts.update(a, new Deposit(10), { commandId })).toEqual(first)
      expect(first.position).toEqual({ aggregate: 'contract-account', partition: partitionFor(a, partitions), offset: expect.any(Number) })
      expect((await accounts.get(a, { atLeastVersion: 3 })).state.history).toEqual([0, 1, 10])
      expect((await accounts.get(b, { atLeastVersion: 2 })).state.history).toEqual([0, 20])
    })

    // Issue 6, scenario 4. Fails before ids derived from the commandId: the retry created a
    // second aggregate under a fresh random id.
    it('makes save() with a commandId and no id idempotent', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const commandId = `create-${randomUUID()}`
      const first = await accounts.save(new Open('una', 4), { commandId })
      const retry = await accounts.save(new Open('una', 4), { commandId })
      expect(retry).toEqual(first)
      expect(first.version).toBe(1)
      const other = await accounts.save(new Open('una', 4), { commandId: `create-${randomUUID()}` })
      expect(other.id).not.toBe(first.id)
      expect((await accounts.get(first.id, { atLeastVersion: 1 })).state).toMatchObject({ owner: 'una', balance: 4 })
    })

    // Issue 6, scenario 5: the first outcome, refusal included, answers every retry.
    it('answers a retried refusal with the refusal, even once the command would pass', async () => {
      const f = await fixture()
      const first = await start(f)
      const accounts = first.repository(ContractAccount)
      const { id } = await accounts.save(new Open('vi', 1))
      const commandId = `withdraw-${randomUUID()}`
      await expect(accounts.update(id, new Withdraw(50), { commandId })).rejects.toMatchObject({ reason: 'INSUFFICIENT_FUNDS' })
      await accounts.update(id, new Deposit(100))
      await expect(accounts.update(id, new Withdraw(50), { commandId })).rejects.toMatchObject({ reason: 'INSUFFICIENT_FUNDS' })
      await first.close()
      // Across a restart too: refusals are kept with the partition's snapshots.
      const second = await start(f)
      const again = second.repository(ContractAccount)
      await expect(again.update(id, new Withdraw(50), { commandId })).rejects.toMatchObject({ reason: 'INSUFFICIENT_FUNDS' })
      expect((await again.get(id, { atLeastVersion: 2 })).state.balance).toBe(101)
    })

    it('decides commands on aggregates it holds by their true state after the store was emptied, and repairs the store', async () => {
      const f = await fixture()
      const app = await start(f)
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('held', 10))
      await accounts.update(id, new Deposit(5))
      // The processor holds the account (balance 15) in memory; the store no longer has it.
      await f.flushSnapshots()
      await expect(accounts.update(id, new Withdraw(20))).rejects.toMatchObject({ reason: 'INSUFFICIENT_FUNDS' })
      expect(await accounts.update(id, new Withdraw(15))).toMatchObject({ version: 3 })
      expect((await accounts.get(id, { atLeastVersion: 3 })).state.balance).toBe(0)
    })

    it('reads the store only for aggregates it does not hold, unless snapshotCacheSize is 0', async () => {
      const loadsOf = async (snapshotCacheSize: number): Promise<number> => {
        const driver = await f.driver()
        const { snapshots } = driver.store
        const load = snapshots.load.bind(snapshots)
        let loads = 0
        snapshots.load = (...args) => {
          loads += 1
          return load(...args)
        }
        const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions }], driver, commandTimeoutMs, snapshotCacheSize })
        cleanups.push(() => app.close())
        const accounts = app.repository(ContractAccount)
        const { id } = await accounts.save(new Open('reads', 0))
        loads = 0
        for (let i = 0; i < 5; i++) await accounts.update(id, new Deposit(1))
        // A retry of a refusal is answered from the store's record, so it is read.
        const commandId = randomUUID()
        await expect(accounts.update(id, new Withdraw(50), { commandId })).rejects.toMatchObject({ reason: 'INSUFFICIENT_FUNDS' })
        const beforeRetry = loads
        await expect(accounts.update(id, new Withdraw(1), { commandId })).rejects.toMatchObject({ reason: 'INSUFFICIENT_FUNDS' })
        expect(loads).toBe(beforeRetry + 1)
        await app.close()
        return beforeRetry
      }
      const f = await fixture()
      expect(await loadsOf(4096)).toBe(0)
      expect(await loadsOf(0)).toBe(6)
    })

    it('holds the snapshotCacheSize aggregates used last, and reads the store for one used before them', async () => {
      const f = await fixture()
      const driver = await f.driver()
      const { snapshots } = driver.store
      const load = snapshots.load.bind(snapshots)
      const loaded: string[] = []
      snapshots.load = (...args) => {
        loaded.push(...args[3])
        return load(...args)
      }
      const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions }], driver, commandTimeoutMs, snapshotCacheSize: 2 })
      cleanups.push(() => app.close())
      const accounts = app.repository(ContractAccount)
      // One partition: the cache is the partition's.
      const [a, b, c] = idsInOnePartition(3) as [string, string, string]
      await accounts.save(new Open('a', 0), { id: a })
      await accounts.save(new Open('b', 0), { id: b })
      // `a` used again after `b`, so `b` is the least recently used when `c` comes.
      await accounts.update(a, new Deposit(1))
      await accounts.save(new Open('c', 0), { id: c })
      loaded.length = 0
      expect(await accounts.update(a, new Deposit(1))).toMatchObject({ version: 3 })
      expect(await accounts.update(c, new Deposit(1))).toMatchObject({ version: 2 })
      expect(loaded).toEqual([])
      expect(await accounts.update(b, new Deposit(1))).toMatchObject({ version: 2 })
      expect(loaded).toEqual([b])
      expect((await accounts.get(a, { atLeastVersion: 3 })).state.balance).toBe(2)
    })

    it('remembers the last dedupWindow accepted commands of each aggregate, and no more', async () => {
      const app = await start(await fixture(), { dedupWindow: 2 })
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('win', 0))
      const ids = [randomUUID(), randomUUID(), randomUUID()]
      for (const [i, commandId] of ids.entries()) await accounts.update(id, new Deposit(i + 1), { commandId })
      // The last two are answered from the window.
      expect(await accounts.update(id, new Deposit(3), { commandId: ids[2]! })).toMatchObject({ version: 4 })
      expect(await accounts.update(id, new Deposit(2), { commandId: ids[1]! })).toMatchObject({ version: 3 })
      // The first fell out of the window: the documented limit is that it is decided again.
      expect(await accounts.update(id, new Deposit(1), { commandId: ids[0]! })).toMatchObject({ version: 5 })
    })

    it('keeps the window to dedupWindow entries when one batch takes several commands of an aggregate', async () => {
      const app = await start(await fixture(), { dedupWindow: 2 })
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('batch-win', 0))
      // Sent together, so that a batch takes several of them (the log decides their order).
      const sent = await Promise.all(
        [1, 2, 3, 4, 5].map(async (amount) => {
          const commandId = randomUUID()
          const { version } = await accounts.update(id, new Deposit(amount), { commandId })
          return { commandId, amount, version }
        }),
      )
      const byVersion = sent.sort((a, b) => a.version - b.version)
      expect(byVersion.map((c) => c.version)).toEqual([2, 3, 4, 5, 6])
      // The last two are answered from the window, the others are decided again.
      for (const c of byVersion.slice(3)) {
        expect(await accounts.update(id, new Deposit(c.amount), { commandId: c.commandId })).toMatchObject({ version: c.version })
      }
      expect(await accounts.update(id, new Deposit(byVersion[2]!.amount), { commandId: byVersion[2]!.commandId })).toMatchObject({ version: 7 })
      expect((await accounts.get(id, { atLeastVersion: 7 })).state).toMatchObject({ balance: 15 + byVersion[2]!.amount })
    })

    it('reports every partition ready once started, and repairing while it replays', async () => {
      const f = await fixture()
      const app = await start(f)
      const status = app.status()
      expect(status.ready).toBe(true)
      expect(status.partitions.map((p) => [p.partition, p.state])).toEqual(
        Array.from({ length: partitions }, (_, p) => [p, 'ready']),
      )
      const states: string[] = []
      app.on('state', (e) => states.push(e.state))
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('st', 0))
      // Saved (a reply can come just before the save), then lost.
      await accounts.get(id)
      await f.flushSnapshots()
      await accounts.update(id, new Deposit(1))
      // The update is answered at its commit; the partition is ready again once its batch is saved.
      for (const deadline = Date.now() + 10_000; states.length < 2 && Date.now() < deadline; await sleep(10));
      expect(states).toEqual(['repairing', 'ready'])
      expect(app.status().partitions.find((p) => p.partition === partitionFor(id, partitions))?.lastBatchAt).toBeGreaterThan(0)
    })

    it('reports owner, position and commands waiting per partition, and readiness with a lag limit', async () => {
      const app = await start(await fixture())
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('lag', 0))
      const partition = partitionFor(id, partitions)
      const mine = (s: EskStatus) => s.partitions.find((p) => p.partition === partition)
      const before = mine(await app.status({ lag: true }))
      expect(before).toMatchObject({ state: 'ready', owner: expect.any(String), commandPosition: expect.any(Number), lag: 0 })
      expect(before!.commandLogEnd).toBe(before!.commandPosition! + 1)
      expect(await app.readiness({ maxCommandLag: 0 })).toEqual({ ready: true, reasons: [] })

      // One command held inside its handler, three more waiting behind it in the same partition.
      const gate = holdGate(`lag-${id}`)
      const held = accounts.update(id, new Hold(`lag-${id}`, 1))
      await gate.entered
      const waiting = [1, 2, 3].map((n) => accounts.update(id, new Deposit(n)))
      let status = await app.status({ lag: true })
      for (let i = 0; i < 200 && (mine(status)?.lag ?? 0) < 3; i++) {
        await sleep(50)
        status = await app.status({ lag: true })
      }
      // The held command is not committed yet: it waits too.
      expect(mine(status)!.lag).toBe(4)
      const readiness = await app.readiness({ maxCommandLag: 2 })
      expect(readiness.ready).toBe(false)
      expect(readiness.reasons).toEqual([expect.stringContaining(`contract-account/${partition} has 4 commands waiting`)])
      expect((await app.readiness()).ready).toBe(true)

      gate.open()
      await held
      await Promise.all(waiting)
      const after = mine(await app.status({ lag: true }))
      expect(after).toMatchObject({ lag: 0, owner: before!.owner, commandPosition: before!.commandPosition! + 4 })
      await app.close()
      expect(await app.readiness()).toEqual({ ready: false, reasons: ['the application is closed'] })
    })

    it('refuses a command whose handler never returns, and keeps the partition going', async () => {
      const app = await start(await fixture(), { handlerTimeoutMs: 300 })
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('slow', 1))
      holdGate(`never-${id}`) // made and never opened: the handler waits for ever
      await expect(accounts.update(id, new Hold(`never-${id}`, 5))).rejects.toMatchObject({
        code: 'ESK_HANDLER_FAILED',
        message: expect.stringContaining('did not return within 300 ms'),
      })
      expect((await accounts.update(id, new Deposit(2))).version).toBe(2)
      expect((await accounts.get(id, { atLeastVersion: 2 })).state).toMatchObject({ balance: 3, history: [1, 2] })
    })

    it('rebuilds a partition whose stored snapshot cannot be read, instead of refusing its commands', async () => {
      const f = await fixture()
      const app = await start(f)
      const accounts = app.repository(ContractAccount)
      const [broken, neighbour] = idsInOnePartition(2) as [string, string]
      await accounts.save(new Open('broken', 2), { id: broken })
      await accounts.save(new Open('neighbour', 3), { id: neighbour })
      await accounts.update(broken, new Deposit(5))
      await f.corruptSnapshot(app.streams[0]!, partitionFor(broken, partitions), broken)
      expect((await accounts.update(broken, new Deposit(1))).version).toBe(3)
      expect((await accounts.get(broken, { atLeastVersion: 3 })).state).toMatchObject({ balance: 8, history: [2, 5, 1] })
      expect((await accounts.get(neighbour)).state).toMatchObject({ balance: 3 })
    })
  })
}
