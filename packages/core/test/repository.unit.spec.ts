import { getEventListeners } from 'node:events'
import {
  Aggregate,
  Command,
  CommandHandler,
  CommandRejected,
  Event,
  EventHandler,
  consoleLogger,
  createEsk,
  EskError,
  Repository,
  type Class,
  type Esk,
} from '@esk/core'
import { AggregateRuntime, type OutcomeWait, type SnapshotStore, type Transport } from '@esk/core/driver'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { afterEach, describe, expect, it } from 'vitest'

@Command<Open>('repo.Open', { validate: (c) => (c.owner ? undefined : 'owner is required') })
class Open {
  owner: string
  constructor(owner = '') {
    this.owner = owner
  }
}

@Command<Add>('repo.Add', { validate: (c) => (Number.isInteger(c.amount) && c.amount > 0 ? undefined : 'amount must be > 0') })
class Add {
  amount: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** A command whose handler changes a field itself instead of returning an event for it. */
@Command('repo.Sneak')
class Sneak {}

/** A command whose handler changes a field and then refuses. */
@Command('repo.SneakThenRefuse')
class SneakThenRefuse {}

/** Sneak, from an async handler: the field changes after an await. */
@Command('repo.SneakLater')
class SneakLater {}

/** SneakThenRefuse, from an async handler. */
@Command('repo.SneakThenRefuseLater')
class SneakThenRefuseLater {}

/** An async handler that returns an event. */
@Command('repo.AddLater')
class AddLater {
  amount: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

/** Declared, but no handler in Counter. */
@Command('repo.Elsewhere')
class Elsewhere {}

@Event('repo.Opened')
class Opened {
  owner: string
  constructor(owner = '') {
    this.owner = owner
  }
}

@Event('repo.Added')
class Added {
  amount: number
  constructor(amount = 0) {
    this.amount = amount
  }
}

@Aggregate({ name: 'repo-counter' })
class Counter {
  owner = ''
  total = 0

  @CommandHandler(Open, { creates: true })
  open(c: Open): Opened {
    return new Opened(c.owner)
  }

  @CommandHandler(Add)
  add(c: Add): Added {
    return new Added(c.amount)
  }

  @CommandHandler(Sneak)
  sneak(): Added {
    this.total = 1_000
    return new Added(1)
  }

  @CommandHandler(SneakThenRefuse)
  sneakThenRefuse(): never {
    this.total = -1
    throw new CommandRejected('refused after scribbling on the state', { reason: 'NOPE' })
  }

  @CommandHandler(SneakLater)
  async sneakLater(): Promise<Added> {
    await Promise.resolve()
    this.total = 1_000
    return new Added(1)
  }

  @CommandHandler(SneakThenRefuseLater)
  async sneakThenRefuseLater(): Promise<never> {
    await Promise.resolve()
    this.total = -1
    throw new CommandRejected('refused after scribbling on the state', { reason: 'NOPE' })
  }

  @CommandHandler(AddLater)
  async addLater(c: AddLater): Promise<Added> {
    await Promise.resolve()
    return new Added(c.amount)
  }

  @EventHandler(Opened)
  onOpened(e: Opened): void {
    this.owner = e.owner
  }

  @EventHandler(Added)
  onAdded(e: Added): void {
    this.total += e.amount
  }
}

const apps: Esk[] = []
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close()
})

async function start(backend = new MemoryBackend(), aggregate: Class<object> = Counter) {
  const app = await createEsk({
    aggregates: [{ aggregate, partitions: 2 }],
    driver: memoryDriver({ backend }),
    // Handler failures are expected here; keep the warnings out of the test output.
    logger: consoleLogger('silent'),
  })
  apps.push(app)
  const logs = () => backend.logs.get('repo-counter') ?? []
  return {
    app,
    backend,
    get counters() {
      return app.repository(Counter)
    },
    /** Commands written to the command log so far. */
    sent: (): number => logs().reduce((n, log) => n + log.commands.length, 0),
    /** Events written to the event log so far. */
    recorded: (): number => logs().reduce((n, log) => n + log.events.length, 0),
  }
}

describe('repository arguments', () => {
  it('refuses bad ids, versions and command ids before sending anything', async () => {
    const { counters, sent } = await start()
    const { id } = await counters.save(new Open('ann'))
    const before = sent()
    const invalid = (fragment: string) => ({
      code: 'ESK_INVALID_ARGUMENT',
      name: 'InvalidArgumentError',
      message: expect.stringContaining(fragment),
    })

    await expect(counters.update('', new Add(1))).rejects.toMatchObject(invalid('aggregate id'))
    await expect(counters.save(new Open('bo'), { id: '' })).rejects.toMatchObject(invalid('aggregate id'))
    await expect(counters.update('x'.repeat(257), new Add(1))).rejects.toMatchObject(invalid('1 to 256 characters'))
    await expect(counters.find('')).rejects.toMatchObject(invalid('aggregate id'))
    await expect(counters.get('')).rejects.toMatchObject(invalid('aggregate id'))
    await expect(counters.update(id, new Add(1), { expectedVersion: -1 })).rejects.toMatchObject(
      invalid('expectedVersion must be a non-negative integer, got -1'),
    )
    await expect(counters.update(id, new Add(1), { expectedVersion: 0.5 })).rejects.toMatchObject(invalid('got 0.5'))
    await expect(counters.update(id, new Add(1), { commandId: '' })).rejects.toMatchObject(invalid('commandId'))
    await expect(counters.save(new Open('cy'), { commandId: 'c'.repeat(257) })).rejects.toMatchObject(invalid('commandId'))

    expect(sent()).toBe(before)
  })

  it('refuses a command sent through the wrong method, saying which one to use', async () => {
    const { counters, sent } = await start()
    const { id } = await counters.save(new Open('ann'))
    const before = sent()

    await expect(counters.save(new Add(1))).rejects.toMatchObject({
      code: 'ESK_UNKNOWN_COMMAND',
      name: 'UnknownCommandError',
      message: 'repo.Add does not create a repo-counter; send it with update(id, command)',
      details: { aggregate: 'repo-counter', commandType: 'repo.Add' },
    })
    await expect(counters.update(id, new Open('ann'))).rejects.toMatchObject({
      code: 'ESK_UNKNOWN_COMMAND',
      message: 'repo.Open creates a repo-counter; send it with save(command)',
    })
    expect(sent()).toBe(before)
  })

  it('refuses a command the aggregate does not handle, listing those it does', async () => {
    const { counters, sent } = await start()
    const { id } = await counters.save(new Open('ann'))
    const before = sent()
    await expect(counters.update(id, new Elsewhere())).rejects.toMatchObject({
      code: 'ESK_UNKNOWN_COMMAND',
      details: { aggregate: 'repo-counter', command: 'Elsewhere' },
      message: expect.stringMatching(/^Elsewhere is not handled by aggregate 'repo-counter'; handled commands: repo\.Open, repo\.Add/),
    })
    await expect(counters.update(id, { amount: 1 })).rejects.toMatchObject({ code: 'ESK_UNKNOWN_COMMAND' })
    expect(sent()).toBe(before)
  })

  it('validates on the client, listing the problems, before sending', async () => {
    const { counters, sent } = await start()
    const { id } = await counters.save(new Open('ann'))
    const before = sent()
    await expect(counters.update(id, new Add(-2))).rejects.toMatchObject({
      code: 'ESK_INVALID_COMMAND',
      problems: ['amount must be > 0'],
      details: { commandType: 'repo.Add' },
    })
    await expect(counters.save(new Open(''))).rejects.toMatchObject({ code: 'ESK_INVALID_COMMAND', problems: ['owner is required'] })
    expect(sent()).toBe(before)
  })

  it('answers missing and existing aggregates with their own codes', async () => {
    const { counters } = await start()
    await counters.save(new Open('ann'), { id: 'c1' })
    await expect(counters.save(new Open('bo'), { id: 'c1' })).rejects.toMatchObject({
      code: 'ESK_AGGREGATE_EXISTS',
      details: { aggregate: 'repo-counter', id: 'c1' },
    })
    await expect(counters.update('c2', new Add(1))).rejects.toMatchObject({ code: 'ESK_AGGREGATE_NOT_FOUND' })
    expect(await counters.find('c2')).toBeUndefined()
    await expect(counters.get('c2')).rejects.toMatchObject({ code: 'ESK_AGGREGATE_NOT_FOUND', details: { id: 'c2' } })
    expect((await counters.get('c1')).state).toMatchObject({ owner: 'ann', total: 0 })
  })

  it('gives back versions, state instances and caller-chosen ids', async () => {
    const { counters } = await start()
    expect(await counters.save(new Open('ann'), { id: 'c1', commandId: 'k1' })).toMatchObject({ id: 'c1', version: 1, commandId: 'k1' })
    const added = await counters.update('c1', new Add(5), { expectedVersion: 1 })
    expect(added).toMatchObject({ id: 'c1', version: 2 })
    expect(added.commandId).toMatch(/^[0-9a-f-]{36}$/)
    const found = await counters.get('c1', { atLeastVersion: 2 })
    expect(found).toEqual({ id: 'c1', version: 2, state: expect.any(Counter) })
    expect(found.state).toMatchObject({ owner: 'ann', total: 5 })
  })
})

describe('command handler purity', () => {
  it('rejects a handler that changes fields with ESK_HANDLER_FAILED and stores nothing', async () => {
    const { counters, recorded } = await start()
    const { id } = await counters.save(new Open('ann'))
    await counters.update(id, new Add(5))
    const events = recorded()

    await expect(counters.update(id, new Sneak())).rejects.toMatchObject({
      code: 'ESK_HANDLER_FAILED',
      message: expect.stringContaining("changed the aggregate's fields"),
    })
    expect(recorded()).toBe(events)
    expect(await counters.get(id)).toMatchObject({ version: 2, state: { owner: 'ann', total: 5 } })
  })

  it('starts the next command in the same batch from the last good state', async () => {
    const { counters } = await start()
    const { id } = await counters.save(new Open('ann'))
    // Sent together, so the processor takes them in one batch over one working instance.
    const results = await Promise.allSettled([
      counters.update(id, new Add(1)),
      counters.update(id, new Sneak()),
      counters.update(id, new Add(2)),
      counters.update(id, new SneakThenRefuse()),
      counters.update(id, new Add(3)),
    ])
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.version : (r.reason as { code: string }).code))).toEqual([
      2,
      'ESK_HANDLER_FAILED',
      3,
      'ESK_COMMAND_REJECTED',
      4,
    ])
    expect((await counters.get(id, { atLeastVersion: 4 })).state.total).toBe(6)
  })

  it('does the same for async handlers, mixed with synchronous ones in one batch', async () => {
    const { counters } = await start()
    const { id } = await counters.save(new Open('ann'))
    const results = await Promise.allSettled([
      counters.update(id, new AddLater(1)),
      counters.update(id, new SneakLater()),
      counters.update(id, new Add(2)),
      counters.update(id, new SneakThenRefuseLater()),
      counters.update(id, new AddLater(3)),
      counters.update(id, new Add(4)),
    ])
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.version : (r.reason as { code: string }).code))).toEqual([
      2,
      'ESK_HANDLER_FAILED',
      3,
      'ESK_COMMAND_REJECTED',
      4,
      5,
    ])
    expect((await counters.get(id, { atLeastVersion: 5 })).state.total).toBe(10)
  })

  // The purity check must compare encodings made by this code, never the stored snapshot text.
  it('compares against the state as this code reads it, not the stored text', async () => {
    // The same aggregate with its fields declared in another order and one field added: a
    // refactoring that changes no event handler and so keeps schemaVersion 1.
    @Aggregate({ name: 'repo-counter' })
    class ReorderedCounter {
      total = 0
      owner = ''
      note = ''

      @CommandHandler(Open, { creates: true })
      open(c: Open): Opened {
        return new Opened(c.owner)
      }

      @CommandHandler(Add)
      add(c: Add): Added {
        return new Added(c.amount)
      }

      @EventHandler(Opened)
      onOpened(e: Opened): void {
        this.owner = e.owner
      }

      @EventHandler(Added)
      onAdded(e: Added): void {
        this.total += e.amount
      }
    }
    const backend = new MemoryBackend()
    const before = await start(backend)
    const { id } = await before.counters.save(new Open('ann'))
    await before.app.close()

    const after = await start(backend, ReorderedCounter)
    const reordered = after.app.repository(ReorderedCounter)
    expect(await reordered.update(id, new Add(4))).toMatchObject({ version: 2 })
    expect((await reordered.get(id, { atLeastVersion: 2 })).state).toMatchObject({ owner: 'ann', total: 4 })
  })
})

// Issue 6, scenario 12. Fails before: a failing send surfaced as the log client's own error (no
// code, no command id to retry with), and a send that hung was not bounded by the timeout.
describe('outages', () => {
  /** An application on the embedded driver whose command log send is replaced by `send`. */
  async function withSend(send: Transport['send'], read?: SnapshotStore['read']) {
    const driver = memoryDriver()
    driver.transport.send = send
    if (read) driver.store.snapshots.read = read
    const app = await createEsk({ aggregates: [{ aggregate: Counter, partitions: 2 }], driver, logger: consoleLogger('silent') })
    apps.push(app)
    return app.repository(Counter)
  }

  it('turns a failed send into ESK_UNAVAILABLE carrying the command id and aggregate id to retry with', async () => {
    const counters = await withSend(async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:9092')
    })
    const error = await counters.update('c-1', new Add(1), { commandId: 'cmd-1' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(EskError)
    expect(error).toMatchObject({
      code: 'ESK_UNAVAILABLE',
      retriable: true,
      details: { aggregate: 'repo-counter', id: 'c-1', commandId: 'cmd-1' },
      message: expect.stringContaining('ECONNREFUSED'),
    })
    // A save without an id names the id its retry must use (derived from the commandId).
    const saved = await counters.save(new Open('x'), { commandId: 'cmd-2' }).catch((e: unknown) => e as EskError)
    expect(saved).toMatchObject({ code: 'ESK_UNAVAILABLE', details: { commandId: 'cmd-2' } })
    expect((saved as EskError).details.id).toEqual(expect.any(String))
  })

  it('bounds the whole call, send included, by the timeout', async () => {
    const counters = await withSend(() => new Promise<void>(() => undefined))
    // Without the bound this never settles and the test times out.
    await expect(counters.update('c-1', new Add(1), { commandId: 'cmd-3', timeoutMs: 100 })).rejects.toMatchObject({
      code: 'ESK_COMMAND_TIMEOUT',
      details: { commandId: 'cmd-3', id: 'c-1' },
    })
  })

  it('stops waiting for the outcome of a command whose send failed', async () => {
    const driver = memoryDriver()
    const waits: OutcomeWait[] = []
    const wait = driver.store.outcomes.wait.bind(driver.store.outcomes)
    driver.store.outcomes.wait = (...args) => {
      const started = wait(...args)
      waits.push(started)
      return started
    }
    driver.transport.send = async () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:9092')
    }
    const app = await createEsk({ aggregates: [{ aggregate: Counter, partitions: 2 }], driver, logger: consoleLogger('silent') })
    apps.push(app)
    await expect(app.repository(Counter).update('c-1', new Add(1))).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE' })
    expect(waits).toHaveLength(1)
    // Stopped, not left waiting for an outcome that cannot come.
    expect(await waits[0]!.outcome).toBeUndefined()
  })

  it('times out a call whose send fails after its deadline, with no unhandled rejection', async () => {
    let fail: (error: Error) => void = () => undefined
    const counters = await withSend(() => new Promise<void>((_, reject) => (fail = reject)))
    const unhandled: unknown[] = []
    const listener = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', listener)
    try {
      await expect(counters.update('c-1', new Add(1), { timeoutMs: 50 })).rejects.toMatchObject({ code: 'ESK_COMMAND_TIMEOUT' })
      fail(new Error('connect ECONNREFUSED 127.0.0.1:9092'))
      await new Promise((resolve) => setTimeout(resolve, 20))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', listener)
    }
  })

  it('turns a failed snapshot read into ESK_UNAVAILABLE', async () => {
    const counters = await withSend(
      async () => undefined,
      async () => {
        throw new Error('Reached the max retries per request limit')
      },
    )
    await expect(counters.find('c-1')).rejects.toMatchObject({ code: 'ESK_UNAVAILABLE', details: { id: 'c-1' } })
  })
})

// Fails before: every waiting call added a listener to the application's closing signal, and an
// event target checks its listeners for duplicates on each add, so each new call cost as much as
// the calls already waiting. Under overload (tens of thousands waiting) a client stalled, and the
// open-loop benchmark at twice the closed-loop rate never drained.
describe('calls waiting for outcomes', () => {
  it('are stopped together when the application closes, without a listener each on its closing signal', async () => {
    const closing = new AbortController()
    const { transport, store } = memoryDriver()
    await transport.provision([{ aggregate: 'repo-counter', partitions: 2 }])
    const repository = new Repository(
      new AggregateRuntime(Counter),
      { aggregate: 'repo-counter', partitions: 2 },
      transport,
      store.snapshots,
      store.outcomes,
      { commandTimeoutMs: 60_000, readTimeoutMs: 1_000 },
      () => undefined,
      closing.signal,
    )
    // Nothing processes the commands: every call waits.
    const calls = Array.from({ length: 200 }, (_, i) => repository.update(`c-${i}`, new Add(1)).catch((error: unknown) => error))
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(getEventListeners(closing.signal, 'abort')).toHaveLength(1)
    closing.abort()
    const errors = await Promise.all(calls)
    expect(errors.every((e) => (e as EskError).code === 'ESK_CLOSED')).toBe(true)
  })
})
