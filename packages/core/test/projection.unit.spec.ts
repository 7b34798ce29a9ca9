import {
  Aggregate,
  Command,
  CommandHandler,
  Event,
  EventHandler,
  On,
  Projection,
  createEsk,
  defineProjection,
  defineSubscription,
  externalProjection,
  on,
  type Driver,
  type EventMeta,
  type ViewStore,
} from '@esk/core'
import { InMemoryProjectionStore, StagedView, readModelSpec, type ViewChange } from '@esk/core/driver'
import { memoryDriver } from '@esk/memory'
import { contractModel } from '@esk/testing/contract'
import { describe, expect, expectTypeOf, it } from 'vitest'

const { ContractAccount, Open, Deposit, Deposited, Opened } = contractModel

@Event('other.Happened')
class Happened {}

@Command('other.Make')
class Make {}

@Aggregate({ name: 'other-thing' })
class OtherThing {
  @CommandHandler(Make, { creates: true })
  make(): Happened {
    return new Happened()
  }

  @EventHandler(Happened)
  onHappened(): void {}
}

class NotAnEvent {}

describe('read model declarations', () => {
  it('refuses what cannot run, naming the read model and the fix', () => {
    class Plain {}
    expect(() => readModelSpec(Plain)).toThrow(/Plain is not a projection: decorate it with @Projection/)

    @Projection({ name: 'empty' })
    class Empty {}
    expect(() => readModelSpec(Empty)).toThrow(/has no handlers; decorate methods with @On/)

    @Projection({ name: 'undeclared' })
    class Undeclared {
      @On(NotAnEvent) handle(): void {}
    }
    expect(() => readModelSpec(Undeclared)).toThrow(/NotAnEvent has no @Event\('Type'\) decorator/)

    const twice = defineProjection({ name: 'twice', handlers: [on(Deposited, () => {}), on(Deposited, () => {})] })
    expect(() => readModelSpec(twice)).toThrow(/handles event type 'contract.Deposited' twice/)
    expect(() => readModelSpec(defineProjection({ name: '9lives', handlers: [on(Deposited, () => {})] }))).toThrow(/must start with a letter/)
    expect(() => readModelSpec(defineProjection({ name: 'n', version: 0, handlers: [on(Deposited, () => {})] }))).toThrow(/version must be a positive integer/)
    expect(() =>
      readModelSpec(defineProjection({ name: 'n', onFailure: 'skip' as 'park', handlers: [on(Deposited, () => {})] })),
    ).toThrow(/onFailure must be 'stop' or 'park'/)
    expect(() =>
      readModelSpec({ ...defineSubscription({ name: 'mailer', handlers: [on(Deposited, () => {})] }), options: { name: 'mailer', scope: 'global' } } as never),
    ).toThrow(/cannot be global: every instance would perform its side effects/)
    expect(() =>
      readModelSpec(
        externalProjection({ name: 'sql', events: [Deposited], onFailure: 'park', loadPositions: async () => [], handleBatch: async () => {} }),
      ),
    ).toThrow(/can only stop/)
    expect(() => readModelSpec({} as never)).toThrow(/must be a class decorated with @Projection/)
  })

  it('refuses at start a read model of events no registered aggregate produces, and two with one name', async () => {
    const lonely = defineProjection({ name: 'lonely', handlers: [on(Happened, () => {})] })
    await expect(createEsk({ aggregates: [ContractAccount], driver: memoryDriver(), projections: [lonely] })).rejects.toThrow(
      /handles Happened \('other.Happened'\), which no registered aggregate produces; register its aggregate/,
    )
    const a = defineProjection({ name: 'same', handlers: [on(Deposited, () => {})] })
    const b = defineProjection({ name: 'same', handlers: [on(Opened, () => {})] })
    await expect(createEsk({ aggregates: [ContractAccount], driver: memoryDriver(), projections: [a, b] })).rejects.toMatchObject({
      code: 'ESK_CONFIGURATION',
      message: expect.stringMatching(/two read models are named 'same'/),
    })
  })

  it('needs a store that keeps projections for a local one, and none for a global one', async () => {
    const driver = memoryDriver()
    const withoutViews: Driver = { transport: driver.transport, store: { snapshots: driver.store.snapshots, outcomes: driver.store.outcomes, close: () => driver.store.close() } }
    const local = defineProjection({ name: 'local', handlers: [on(Deposited, () => {})] })
    await expect(createEsk({ aggregates: [ContractAccount], driver: withoutViews, projections: [local] })).rejects.toThrow(
      /is local, but the driver's store keeps no projections/,
    )
    const global = defineProjection({ name: 'global', scope: 'global', handlers: [on(Deposited, (e, _m, store) => store.incr('sum', e.amount))] })
    const other = memoryDriver()
    const app = await createEsk({
      aggregates: [ContractAccount],
      driver: { transport: other.transport, store: { snapshots: other.store.snapshots, outcomes: other.store.outcomes, close: () => other.store.close() } },
      projections: [global],
    })
    const { id } = await app.repository(ContractAccount).save(new Open('ann', 1))
    await app.projection(global).waitFor(await app.repository(ContractAccount).update(id, new Deposit(4)))
    expect(await app.projection(global).get('sum')).toBe(4)
    await app.close()
  })

  it('reads only what it holds, and refuses to wait for events it never reads', async () => {
    const mailer = defineSubscription({ name: 'mailer', handlers: [on(Deposited, () => {})] })
    const sums = defineProjection({ name: 'sums', handlers: [on(Deposited, (e, _m, store) => store.incr('sum', e.amount))] })
    const app = await createEsk({ aggregates: [ContractAccount, OtherThing], driver: memoryDriver(), projections: [mailer, sums] })
    try {
      expect(() => app.projection(defineProjection({ name: 'x', handlers: [on(Deposited, () => {})] }))).toThrow(/x is not registered/)
      await expect(app.projection(mailer).get('a')).rejects.toThrow(/is a subscription; it has no view to read/)
      const made = await app.repository(OtherThing).save(new Make())
      await expect(app.projection(sums).waitFor(made)).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT' })
      // A result without events has nothing to wait for.
      await app.projection(sums).waitFor({ id: 'x', version: 1, commandId: 'c' } as never)
    } finally {
      await app.close()
    }
  })

  it('types handlers by their event class', () => {
    on(Deposited, (event, meta, store) => {
      expectTypeOf(event).toEqualTypeOf<InstanceType<typeof Deposited>>()
      expectTypeOf(meta).toEqualTypeOf<EventMeta>()
      expectTypeOf(store).toEqualTypeOf<ViewStore>()
    })
    // @ts-expect-error an amount is a number
    on(Deposited, (event) => event.amount.toUpperCase())
  })
})

describe('a batch view', () => {
  async function seeded(changes: ViewChange[]): Promise<{ store: InMemoryProjectionStore; view: StagedView }> {
    const store = new InMemoryProjectionStore()
    const gen = (await store.create('p', 1, 'initial')).id
    await store.acquire('p', gen, 'l', 't')
    await store.apply('p', gen, 'l', 't', { from: undefined, to: 1, changes, guards: [], deadLetters: [] })
    return { store, view: new StagedView((reads) => store.read('p', gen, reads)) }
  }

  it('reads the store overlaid with what the batch staged, and remembers each value read', async () => {
    const { view } = await seeded([
      { op: 'set', key: 'n', value: '10' },
      { op: 'hset', key: 'h', field: 'a', value: '1' },
      { op: 'hset', key: 'h', field: 'b', value: '2' },
      { op: 'zadd', key: 'z', member: 'x', score: 1 },
      { op: 'zadd', key: 'z', member: 'y', score: 2 },
    ])
    view.incr('n', 5)
    expect(await view.get('n')).toBe(15)
    view.set('n', 1)
    view.incr('n')
    expect(await view.get('n')).toBe(2)
    view.del('n')
    expect(await view.get('n')).toBeUndefined()
    const h = view.hash<number>('h')
    h.incr('a', 10)
    h.del('b')
    h.set('c', 3)
    expect(await h.get('a')).toBe(11)
    expect(await h.all()).toEqual({ a: 11, c: 3 })
    expect(await h.size()).toBe(2)
    h.clear()
    h.incr('a')
    expect(await h.all()).toEqual({ a: 1 })
    const z = view.sortedSet('z')
    z.incr('x', 5)
    z.remove('y')
    z.add('w', 0)
    expect(await z.range()).toEqual([
      { member: 'w', score: 0 },
      { member: 'x', score: 6 },
    ])
    expect(await z.rangeByScore(1, Infinity)).toEqual([{ member: 'x', score: 6 }])
    expect(await z.score('y')).toBeUndefined()
    expect(await z.size()).toBe(2)
    // One guard per value read from the store, whatever the number of reads.
    expect(view.guards.map((g) => g.read)).toEqual(['get', 'hget'])
    expect(view.changes.map((c) => c.op)).toEqual(['incr', 'set', 'incr', 'del', 'hincr', 'hdel', 'hset', 'hclear', 'hincr', 'zincr', 'zrem', 'zadd'])
  })

  it('forgets what a failed handler staged, and refuses values that cannot be stored', async () => {
    const { view } = await seeded([{ op: 'set', key: 's', value: '"text"' }])
    view.set('a', 1)
    const mark = view.mark()
    view.set('a', 2)
    view.hash('h').set('f', 1)
    view.sortedSet('z').add('m', 1)
    view.rollback(mark)
    expect(await view.get('a')).toBe(1)
    expect(await view.hash('h').all()).toEqual({})
    expect(await view.sortedSet('z').size()).toBe(0)
    expect(view.changes).toHaveLength(1)
    expect(() => view.set('a', undefined)).toThrow(/not a JSON value/)
    expect(() => view.set('', 1)).toThrow(/must be a string of 1 to 1024 characters/)
    expect(() => view.incr('a', Number.NaN)).toThrow(/finite number/)
    expect(() => view.sortedSet('z').add('m', Infinity)).toThrow(/finite number/)
    view.set('t', 'text')
    expect(() => view.incr('t')).toThrow(/cannot increment value 't': it holds "text", not a number/)
    view.incr('s')
    await expect(view.get('s')).rejects.toThrow(/cannot increment value 's'/)
  })
})

describe('a projection handler', () => {
  it('that does not return within handlerTimeoutMs fails, and cannot write afterwards', async () => {
    let late: ViewStore | undefined
    const slow = defineProjection({
      name: 'slow',
      handlerTimeoutMs: 50,
      maxAttempts: 1,
      onFailure: 'park',
      handlers: [
        on(Deposited, async (e, _meta, store) => {
          if (e.amount === 7) {
            late = store
            await new Promise((resolve) => setTimeout(resolve, 200))
          }
          store.incr('sum', e.amount)
        }),
      ],
    })
    const app = await createEsk({ aggregates: [ContractAccount], driver: memoryDriver(), projections: [slow] })
    try {
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('ann', 0))
      await accounts.update(id, new Deposit(7))
      await app.projection(slow).waitFor(await accounts.update(id, new Deposit(1)))
      expect(await app.projection(slow).get('sum')).toBe(1)
      expect((await app.projection(slow).deadLetters())[0]?.error.message).toMatch(/did not return within 50 ms/)
      expect(() => late!.set('x', 1)).toThrow(/abandoned/)
    } finally {
      await app.close()
    }
  })
})

describe('an external projection', () => {
  it('whose handleBatch fails keeps its partition on the batch, reports it, and goes on once it succeeds', async () => {
    let failing = true
    const positions = new Map<string, number>()
    let sum = 0
    const sql = externalProjection({
      name: 'sql',
      events: [Deposited],
      maxAttempts: 1,
      loadPositions: async (lanes) => lanes.map((l) => positions.get(`${l.aggregate}/${l.partition}`)),
      handleBatch: async (batch) => {
        if (failing && batch.events.length > 0) throw new Error('database is down')
        for (const { event } of batch.events) sum += (event as InstanceType<typeof Deposited>).amount
        positions.set(`${batch.aggregate}/${batch.partition}`, batch.to)
      },
    })
    const app = await createEsk({ aggregates: [{ aggregate: ContractAccount, partitions: 1 }], driver: memoryDriver(), projections: [sql] })
    try {
      const accounts = app.repository(ContractAccount)
      const { id } = await accounts.save(new Open('ann', 0))
      const deposit = await accounts.update(id, new Deposit(6))
      for (let i = 0; i < 200 && !(await app.projection(sql).status()).lanes.some((l) => l.state === 'failed'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const stuck = await app.projection(sql).status()
      expect(stuck.lanes[0]).toMatchObject({ state: 'failed', error: { code: 'ESK_PROJECTION_FAILED', message: expect.stringMatching(/database is down/) } })
      expect(sum).toBe(0)
      failing = false
      await app.projection(sql).waitFor(deposit)
      expect(sum).toBe(6)
      expect((await app.projection(sql).status()).lanes[0]).toMatchObject({ state: 'running', lag: 0 })
    } finally {
      await app.close()
    }
  })
})
