import { randomUUID } from 'node:crypto'
import {
  On,
  Projection,
  createEsk,
  defineProjection,
  defineSubscription,
  externalProjection,
  on,
  type CommandResult,
  type Driver,
  type Esk,
  type EskOptions,
  type EventMeta,
  type ExternalBatch,
  type ProjectionObservation,
  type ReadModel,
  type ViewStore,
} from '@esk/core'
import { partitionFor, sleep, type StreamSpec } from '@esk/core/driver'
import { afterEach, describe, expect, it } from 'vitest'
import { failingApplies } from '../faults.js'
import { eventually } from '../stack.js'
import { ContractAccount, Deposit, Deposited, Open, Opened, Withdraw, Withdrawn } from './model.js'

/** What a driver under test provides to the projection contract suite; each fixture is isolated. */
export interface ProjectionContractFixture {
  /** A new driver over this fixture's data, as a restarted process would build it. */
  driver(): Driver | Promise<Driver>
  /** Deletes the events of a partition below `before`, as Kafka's deleteRecords does. */
  truncateEvents(stream: StreamSpec, partition: number, before: number): Promise<void>
  /** Drops every view and position of read models, as `FLUSHALL` does to Redis. */
  flushProjections(): Promise<void>
  /** Releases anything the fixture holds once a test is done. */
  dispose?(): Promise<void>
}

/** Options of {@link describeProjectionContract}. */
export interface ProjectionContractOptions {
  /** Partitions per aggregate type. Default 3. */
  partitions?: number
  /** How long waits may take (commands, catch-up). Default 30000 ms. */
  timeoutMs?: number
}

/** Balances by account, accounts by owner and a running total: blind writes and atomic increments. */
@Projection({ name: 'contract-balances' })
class Balances {
  @On(Opened)
  opened(e: Opened, meta: EventMeta, store: ViewStore): void {
    store.hash('balance').set(meta.aggregateId, e.initial)
    store.sortedSet(`owner:${e.owner}`).add(meta.aggregateId, meta.version)
    store.incr('total', e.initial)
  }

  @On(Deposited)
  deposited(e: Deposited, meta: EventMeta, store: ViewStore): void {
    store.hash('balance').incr(meta.aggregateId, e.amount)
    store.incr('total', e.amount)
  }

  @On(Withdrawn)
  withdrawn(e: Withdrawn, meta: EventMeta, store: ViewStore): void {
    store.hash('balance').incr(meta.aggregateId, -e.amount)
    store.incr('total', -e.amount)
  }
}

/**
 * Counts deposits with a read and a write of one key shared by every partition, and counts each
 * event by its id: any event applied twice, or lost, shows.
 */
const Tally = defineProjection({
  name: 'contract-tally',
  handlers: [
    on(Deposited, async (_e, meta, store) => {
      const seen = (await store.get<number>('deposits')) ?? 0
      store.set('deposits', seen + 1)
      store.hash('times').incr(meta.eventId)
    }),
  ],
})

/** Amounts the poison projections refuse while they are listed here. */
const refused = new Set<number>()

function poisonProjection(name: string, onFailure: 'stop' | 'park'): ReadModel {
  return defineProjection({
    name,
    onFailure,
    maxAttempts: 2,
    handlers: [
      on(Deposited, (e, meta, store) => {
        if (refused.has(e.amount)) throw new Error(`refusing ${e.amount}`)
        store.hash('times').incr(meta.eventId)
        store.incr('sum', e.amount)
      }),
    ],
  })
}

function versioned(version: number, factor: number): ReadModel {
  return defineProjection({
    name: 'contract-versioned',
    version,
    handlers: [on(Deposited, (e, _meta, store) => store.incr('sum', e.amount * factor))],
  })
}

/**
 * The behaviour every driver's read side must show, as one vitest suite: the embedded driver and
 * Kafka+Redis run exactly this suite.
 */
export function describeProjectionContract(
  name: string,
  setup: () => Promise<ProjectionContractFixture>,
  options: ProjectionContractOptions = {},
): void {
  const partitions = options.partitions ?? 3
  const timeoutMs = options.timeoutMs ?? 30_000

  describe(`projection contract: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = []
    afterEach(async () => {
      refused.clear()
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    })

    async function fixture(): Promise<ProjectionContractFixture> {
      const f = await setup()
      if (f.dispose) cleanups.push(() => f.dispose!())
      return f
    }

    async function start(driver: Driver | Promise<Driver>, projections: EskOptions['projections'], extra: Partial<EskOptions> = {}): Promise<Esk> {
      const app = await createEsk({
        aggregates: [{ aggregate: ContractAccount, partitions }],
        driver: await driver,
        projections,
        projectionPollMs: 100,
        commandTimeoutMs: timeoutMs,
        readTimeoutMs: timeoutMs,
        ...extra,
      })
      cleanups.push(() => app.close())
      return app
    }

    /** Opens one account in each partition (at least), returning their ids. */
    async function openAccounts(app: Esk, count = partitions * 2): Promise<string[]> {
      const accounts = app.repository(ContractAccount)
      const ids: string[] = []
      for (let p = 0; ids.length < count; p++) {
        let id = `acc-${randomUUID()}`
        while (partitionFor(id, partitions) !== p % partitions) id = `acc-${randomUUID()}`
        ids.push(id)
      }
      await Promise.all(ids.map((id) => accounts.save(new Open('ann', 10), { id })))
      return ids
    }

    async function depositEach(app: Esk, ids: string[], amount = 1): Promise<CommandResult[]> {
      const accounts = app.repository(ContractAccount)
      return Promise.all(ids.map((id) => accounts.update(id, new Deposit(amount))))
    }

    /**
     * Waits until `view` has applied the events of `results`. `ready()` alone is not enough right
     * after a write: it catches up with the log as the log shows it, and a Kafka commit becomes
     * visible to readers a moment after it returns.
     */
    async function seen(view: { waitFor(result: CommandResult): Promise<void> }, results: CommandResult[]): Promise<void> {
      await Promise.all(results.map((r) => view.waitFor(r)))
    }

    /** Every field of `times` is 1, and there are `count` of them. */
    async function expectOnce(app: Esk, projection: ReadModel, count: number): Promise<void> {
      const times = await app.projection(projection).hash<number>('times').all()
      expect(Object.keys(times)).toHaveLength(count)
      expect(new Set(Object.values(times))).toEqual(count === 0 ? new Set() : new Set([1]))
    }

    it('builds a view from the events and lets a client read its own writes', async () => {
      const f = await fixture()
      const app = await start(f.driver(), [Balances])
      const view = app.projection(Balances)
      const accounts = app.repository(ContractAccount)
      const ids = await openAccounts(app, partitions)
      for (const id of ids) {
        const deposit = await accounts.update(id, new Deposit(5))
        const withdrawal = await accounts.update(id, new Withdraw(3))
        expect(withdrawal.position!.offset).toBeGreaterThan(deposit.position!.offset)
        await view.waitFor(withdrawal)
        expect(await view.hash('balance').get(id)).toBe(12)
      }
      expect(await view.get('total')).toBe(12 * ids.length)
      expect((await view.sortedSet('owner:ann').range()).map((m) => m.member).sort()).toEqual([...ids].sort())
      expect(await view.sortedSet('owner:ann').size()).toBe(ids.length)
      const status = await view.status()
      expect(status).toMatchObject({ name: 'contract-balances', caughtUp: true, lag: 0, superseded: false })
      expect(status.lanes).toHaveLength(partitions)
    })

    it('applies each event once when handlers of several partitions read and write one value', async () => {
      const f = await fixture()
      const app = await start(f.driver(), [Tally])
      const ids = await openAccounts(app)
      for (let round = 0; round < 3; round++) await seen(app.projection(Tally), await depositEach(app, ids))
      await app.projection(Tally).ready()
      expect(await app.projection(Tally).get('deposits')).toBe(ids.length * 3)
      await expectOnce(app, Tally, ids.length * 3)
    })

    it('applies a batch once when the process dies before writing it or before hearing the write succeeded', async () => {
      const f = await fixture()
      const driver = await f.driver()
      const failing = failingApplies(driver.store, { before: 2, after: 2 })
      const errors: unknown[] = []
      const app = await start({ transport: driver.transport, store: failing }, [Tally], { listeners: { error: (e) => errors.push(e.error) } })
      const ids = await openAccounts(app)
      await seen(app.projection(Tally), await depositEach(app, ids))
      await seen(app.projection(Tally), await depositEach(app, ids))
      await app.projection(Tally).ready()
      expect(failing.failed()).toBe(4)
      expect(errors.length).toBeGreaterThanOrEqual(4)
      expect(await app.projection(Tally).get('deposits')).toBe(ids.length * 2)
      await expectOnce(app, Tally, ids.length * 2)
    })

    it('resumes from its stored positions after a restart, never applying an event twice', async () => {
      const f = await fixture()
      const first = await start(f.driver(), [Tally, Balances])
      const ids = await openAccounts(first)
      await seen(first.projection(Tally), await depositEach(first, ids))
      await first.projection(Tally).ready()
      await first.close()

      const second = await start(f.driver(), [Tally, Balances])
      await second.projection(Tally).ready()
      expect(await second.projection(Tally).get('deposits')).toBe(ids.length)
      await seen(second.projection(Tally), await depositEach(second, ids, 2))
      await second.projection(Tally).ready()
      await second.projection(Balances).ready()
      expect(await second.projection(Tally).get('deposits')).toBe(ids.length * 2)
      await expectOnce(second, Tally, ids.length * 2)
      expect(await second.projection(Balances).get('total')).toBe(ids.length * 13)
    })

    it('splits partitions between instances of one group and moves them when one leaves', async () => {
      const f = await fixture()
      const one = await start(f.driver(), [Tally])
      const two = await start(f.driver(), [Tally])
      const held = async (app: Esk): Promise<number> =>
        (await app.projection(Tally).status()).lanes.filter((l) => l.state === 'running').length
      await eventually(async () => (await held(one)) + (await held(two)) === partitions && (await held(two)) > 0, 'both instances to hold lanes', timeoutMs)
      expect(await held(one)).toBeGreaterThan(0)
      const ids = await openAccounts(one)
      await seen(two.projection(Tally), await depositEach(two, ids))
      await two.projection(Tally).ready()
      await one.close()
      await seen(two.projection(Tally), await depositEach(two, ids))
      await eventually(async () => (await held(two)) === partitions, 'the remaining instance to take every lane', timeoutMs)
      await two.projection(Tally).ready()
      expect(await two.projection(Tally).get('deposits')).toBe(ids.length * 2)
      await expectOnce(two, Tally, ids.length * 2)
    })

    it('rebuilds beside the live view, serving it meanwhile, and swaps in a copy that misses nothing', async () => {
      const f = await fixture()
      const observed: ProjectionObservation[] = []
      const app = await start(f.driver(), [Tally], { listeners: { projection: (o) => observed.push(o) } })
      const view = app.projection(Tally)
      const ids = await openAccounts(app)
      await seen(view, await depositEach(app, ids))
      await view.ready()
      const before = (await view.status()).live!.id
      const rebuilding = view.rebuild()
      // Writes go on during the rebuild, and the live view keeps answering.
      const during = depositEach(app, ids)
      during.catch(() => undefined)
      expect(await view.get<number>('deposits')).toBeGreaterThanOrEqual(ids.length)
      const report = await rebuilding
      await seen(view, await during)
      expect(report.generation).not.toBe(before)
      expect(report.events).toBeGreaterThanOrEqual(ids.length)
      expect(report.eventsPerSecond).toBeGreaterThanOrEqual(0)
      await view.ready()
      expect((await view.status()).live!.id).toBe(report.generation)
      expect(await view.get('deposits')).toBe(ids.length * 2)
      await expectOnce(app, Tally, ids.length * 2)
      const phases = observed.filter((o) => o.kind === 'rebuild').map((o) => (o.kind === 'rebuild' ? o.phase : ''))
      expect(phases[0]).toBe('start')
      expect(phases.at(-1)).toBe('end')
      expect(observed).toContainEqual(expect.objectContaining({ kind: 'swap', from: before, to: report.generation, reason: 'rebuild' }))
    })

    it('resets: drops the view and builds it again from the first event', async () => {
      const f = await fixture()
      const app = await start(f.driver(), [Tally])
      const ids = await openAccounts(app)
      await seen(app.projection(Tally), await depositEach(app, ids))
      await app.projection(Tally).ready()
      const before = (await app.projection(Tally).status()).live!.id
      await app.projection(Tally).reset()
      expect((await app.projection(Tally).status()).live!.id).not.toBe(before)
      await app.projection(Tally).ready()
      expect(await app.projection(Tally).get('deposits')).toBe(ids.length)
      await expectOnce(app, Tally, ids.length)
    })

    it('builds its view again from the first event when the store lost it', async () => {
      const f = await fixture()
      const app = await start(f.driver(), [Tally])
      const ids = await openAccounts(app)
      await seen(app.projection(Tally), await depositEach(app, ids))
      await app.projection(Tally).ready()
      await f.flushProjections()
      // Lanes learn of it from their next write, or from the next look at the store's generations.
      await seen(app.projection(Tally), await depositEach(app, ids))
      await eventually(async () => (await app.projection(Tally).get('deposits').catch(() => undefined)) === ids.length * 2, 'the view rebuilt', timeoutMs)
      await app.projection(Tally).ready()
      await expectOnce(app, Tally, ids.length * 2)
    })

    it('builds a new version beside the old one, and replaces it once caught up', async () => {
      const f = await fixture()
      const oldModel = versioned(1, 1)
      const old = await start(f.driver(), [oldModel])
      const ids = await openAccounts(old)
      await seen(old.projection(oldModel), await depositEach(old, ids, 3))
      await old.projection(oldModel).ready()
      expect(await old.projection(oldModel).get('sum')).toBe(ids.length * 3)

      const newModel = versioned(2, 10)
      const upgraded = await start(f.driver(), [newModel])
      const view = upgraded.projection(newModel)
      await view.ready()
      expect(await view.get('sum')).toBe(ids.length * 30)
      expect((await view.status()).live).toMatchObject({ version: 2, purpose: 'upgrade' })
      // The old version sees it is superseded and stops building.
      await eventually(async () => (await old.projection(oldModel).status()).superseded, 'the old version to stand down', timeoutMs)
      await seen(view, await depositEach(upgraded, ids, 1))
      await view.ready()
      expect(await view.get('sum')).toBe(ids.length * 40)

      // Rolled back: the new version is gone, and a reset from the old one makes it live again.
      await upgraded.close()
      await old.projection(oldModel).reset()
      await old.projection(oldModel).ready()
      expect(await old.projection(oldModel).get('sum')).toBe(ids.length * 4)
      expect((await old.projection(oldModel).status()).superseded).toBe(false)
    })

    it('stops a partition at an event its handler keeps failing on, and goes on once it succeeds', async () => {
      const f = await fixture()
      const model = poisonProjection('contract-stop', 'stop')
      const app = await start(f.driver(), [model])
      const view = app.projection(model)
      const [id] = await openAccounts(app, 1)
      const accounts = app.repository(ContractAccount)
      refused.add(13)
      await accounts.update(id!, new Deposit(1))
      const poison = await accounts.update(id!, new Deposit(13))
      const after = await accounts.update(id!, new Deposit(2))
      await eventually(
        async () => (await view.status()).lanes.some((l) => l.state === 'failed' && l.error?.code === 'ESK_PROJECTION_FAILED'),
        'the lane to report the failure',
        timeoutMs,
      )
      const stuck = await view.status()
      const lane = stuck.lanes.find((l) => l.partition === poison.position!.partition)!
      expect(lane.position).toBe(poison.position!.offset)
      expect(await view.get('sum')).toBe(1)
      await expect(view.waitFor(after, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'ESK_READ_TIMEOUT' })
      refused.delete(13)
      await view.waitFor(after)
      expect(await view.get('sum')).toBe(16)
      await expectOnce(app, model, 3)
      expect(await view.deadLetters()).toEqual([])
    })

    it('parks an event its handler keeps failing on, with the reason, and goes on', async () => {
      const f = await fixture()
      const model = poisonProjection('contract-park', 'park')
      const parked: ProjectionObservation[] = []
      const app = await start(f.driver(), [model], { listeners: { projection: (o) => o.kind === 'parked' && parked.push(o) } })
      const view = app.projection(model)
      const [id] = await openAccounts(app, 1)
      const accounts = app.repository(ContractAccount)
      refused.add(13)
      await accounts.update(id!, new Deposit(1))
      const poison = await accounts.update(id!, new Deposit(13))
      const after = await accounts.update(id!, new Deposit(2))
      await view.waitFor(after)
      expect(await view.get('sum')).toBe(3)
      const letters = await view.deadLetters()
      expect(letters).toEqual([
        expect.objectContaining({
          aggregate: 'contract-account',
          partition: poison.position!.partition,
          offset: poison.position!.offset,
          type: 'contract.Deposited',
          aggregateId: id,
          version: 3,
          attempts: 2,
          error: expect.objectContaining({ message: 'refusing 13' }),
        }),
      ])
      expect(JSON.parse(letters[0]!.payload)).toEqual({ amount: 13 })
      expect(parked).toHaveLength(1)
    })

    it('stops where the log was truncated under its position, or rebuilds from what is left', async () => {
      const f = await fixture()
      const first = await start(f.driver(), [Tally])
      const ids = await openAccounts(first, 1)
      const stream = first.streams[0]!
      const partition = partitionFor(ids[0]!, partitions)
      await seen(first.projection(Tally), await depositEach(first, ids))
      await first.projection(Tally).ready()
      await first.close()

      // Events appended while no instance builds the projection, then deleted from the log.
      const writer = await start(f.driver(), [])
      const later = await depositEach(writer, [...ids, ...ids, ...ids])
      await writer.close()
      const cut = Math.max(...later.map((r) => r.position!.offset))
      await f.truncateEvents(stream, partition, cut)

      const observed: ProjectionObservation[] = []
      const failing = await start(f.driver(), [Tally], { listeners: { projection: (o) => observed.push(o) } })
      await eventually(
        async () => (await failing.projection(Tally).status()).lanes.some((l) => l.error?.code === 'ESK_EVENTS_TRUNCATED'),
        'the truncated lane to be reported',
        timeoutMs,
      )
      expect(observed).toContainEqual(expect.objectContaining({ kind: 'truncated', partition, action: 'failed' }))
      expect(await failing.projection(Tally).get('deposits')).toBe(1)
      await failing.close()

      const rebuilding = defineProjection({ ...Tally.options, onTruncated: 'rebuild', handlers: Tally.handlers })
      const rebuilt = await start(f.driver(), [rebuilding], { listeners: { projection: (o) => observed.push(o) } })
      await eventually(async () => (await rebuilt.projection(rebuilding).get('deposits')) === 1, 'the view rebuilt from what the log holds', timeoutMs)
      await rebuilt.projection(rebuilding).ready()
      expect(observed).toContainEqual(expect.objectContaining({ kind: 'truncated', partition, action: 'reset' }))
      // Only the last deposit is still in the log.
      expect(await rebuilt.projection(rebuilding).get('deposits')).toBe(1)
    })

    it('delivers every event to a subscription at least once, in order, with a stable idempotency key', async () => {
      const f = await fixture()
      const seen: EventMeta[] = []
      const subscription = defineSubscription({
        name: 'contract-mailer',
        handlers: [on(Deposited, (_e, meta) => void seen.push(meta)), on(Opened, (_e, meta) => void seen.push(meta))],
      })
      const driver = await f.driver()
      // The first position write fails after its side effect ran: that event is delivered again.
      const failing = failingApplies(driver.store, { before: 1 })
      const app = await start({ transport: driver.transport, store: failing }, [subscription])
      const ids = await openAccounts(app, partitions)
      await depositEach(app, ids)
      const last = await depositEach(app, ids)
      for (const result of last) await app.projection(subscription).waitFor(result)
      const keys = seen.map((m) => m.eventId)
      // Every event, at least once; the one whose position write failed, twice, with the same key.
      expect(new Set(keys).size).toBe(ids.length * 3)
      expect(keys.length).toBe(ids.length * 3 + 1)
      for (const id of ids) {
        const versions = seen.filter((m) => m.aggregateId === id).map((m) => m.version)
        expect([...new Set(versions)]).toEqual([1, 2, 3])
      }
      expect(keys[0]).toMatch(/^contract-account\/acc-[0-9a-f-]+\/1$/)
    })

    it('hands an external projection batches with the positions to store, and resumes from them', async () => {
      const f = await fixture()
      const table = new Map<string, number>()
      const positions = new Map<string, number>()
      const model = externalProjection({
        name: 'contract-external',
        events: [Deposited],
        loadPositions: async (lanes) => lanes.map((l) => positions.get(`${l.aggregate}/${l.partition}`)),
        handleBatch: async (batch: ExternalBatch) => {
          const lane = `${batch.aggregate}/${batch.partition}`
          // One transaction in a real store: the position is compared and moved with the rows.
          if ((positions.get(lane) ?? batch.from) !== batch.from) throw new Error(`position of ${lane} moved`)
          for (const { event, meta } of batch.events) {
            table.set(meta.aggregateId, (table.get(meta.aggregateId) ?? 0) + (event as Deposited).amount)
          }
          positions.set(lane, batch.to)
        },
      })
      const first = await start(f.driver(), [model])
      const ids = await openAccounts(first)
      await seen(first.projection(model), await depositEach(first, ids, 4))
      await first.projection(model).ready()
      await first.close()
      const second = await start(f.driver(), [model])
      const results = await depositEach(second, ids, 1)
      for (const result of results) await second.projection(model).waitFor(result)
      expect([...table.values()]).toEqual(ids.map(() => 5))
      expect((await second.projection(model).status()).caughtUp).toBe(true)
    })

    it('builds a global projection in every instance from the first event', async () => {
      const f = await fixture()
      const lookup = defineProjection({
        name: 'contract-lookup',
        scope: 'global',
        handlers: [on(Opened, (e, meta, store) => store.sortedSet(`owner:${e.owner}`).add(meta.aggregateId, 0))],
      })
      const one = await start(f.driver(), [lookup])
      const ids = await openAccounts(one)
      const two = await start(f.driver(), [lookup])
      await Promise.all([one.projection(lookup).ready(), two.projection(lookup).ready()])
      for (const app of [one, two]) {
        const members = (await app.projection(lookup).sortedSet('owner:ann').range()).map((m) => m.member)
        expect(members.sort()).toEqual([...ids].sort())
        expect((await app.projection(lookup).status()).lanes.filter((l) => l.state === 'running')).toHaveLength(partitions)
      }
      const more = await openAccounts(two, 1)
      await one.projection(lookup).waitFor(await two.repository(ContractAccount).update(more[0]!, new Deposit(1)))
      await eventually(async () => (await one.projection(lookup).sortedSet('owner:ann').size()) === ids.length + 1, 'the first instance to see the new account', timeoutMs)
    })
  })
}

// Keeps sleep referenced for drivers whose tests extend the suite.
void sleep
