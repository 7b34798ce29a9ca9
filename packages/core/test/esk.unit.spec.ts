import { Aggregate, Command, CommandHandler, ESK_DEFAULTS, Event, EventHandler, createEsk, type EskOptions } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { afterEach, describe, expect, it } from 'vitest'

@Command('esk.Open')
class Open {}

@Event('esk.Opened')
class Opened {}

@Command('esk.Touch')
class Touch {}

@Aggregate({ name: 'esk-thing' })
class Thing {
  touched = 0

  @CommandHandler(Open, { creates: true })
  open(): Opened {
    return new Opened()
  }

  @CommandHandler(Touch)
  touch(): Opened {
    return new Opened()
  }

  @EventHandler(Opened)
  onOpened(): void {
    this.touched += 1
  }
}

@Aggregate({ name: 'esk-thing' })
class SameNameThing extends Thing {
  @CommandHandler(Open, { creates: true })
  override open(): Opened {
    return new Opened()
  }
}

const apps: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close()
})

describe('createEsk options', () => {
  /** createEsk must refuse `options` with a ConfigurationError whose message contains `mentions`. */
  async function refuses(options: Partial<EskOptions>, ...mentions: string[]): Promise<void> {
    const backend = new MemoryBackend()
    const started = createEsk({ aggregates: [Thing], driver: memoryDriver({ backend }), ...options } as EskOptions)
    const error = await started.then(
      (app) => {
        apps.push(app)
        throw new Error(`expected createEsk to refuse ${JSON.stringify(options)}`)
      },
      (e: unknown) => e as Error,
    )
    expect(error).toMatchObject({ code: 'ESK_CONFIGURATION', name: 'ConfigurationError' })
    for (const text of mentions) expect(error.message).toContain(text)
    // Refused before anything was provisioned.
    expect(backend.logs.size).toBe(0)
  }

  it.each([0, -1, 1.5, 10_001, Number.NaN])('refuses partitions: %s, naming the option and the range', async (partitions) => {
    await refuses({ partitions }, 'partitions', 'from 1 to 10000', String(partitions))
  })

  it('refuses a per-aggregate partitions override, naming the aggregate', async () => {
    await refuses({ aggregates: [{ aggregate: Thing, partitions: 0 }] }, "partitions of 'esk-thing'", 'got 0')
  })

  it.each([
    ['commandTimeoutMs', -1],
    ['commandTimeoutMs', 0],
    ['commandTimeoutMs', Number.POSITIVE_INFINITY],
    ['readTimeoutMs', -5],
    ['readTimeoutMs', Number.NaN],
  ])('refuses %s: %s, naming the option', async (option, value) => {
    await refuses({ [option]: value }, option, 'positive number of milliseconds', String(value))
  })

  it('refuses two aggregate classes with the same name', async () => {
    await refuses({ aggregates: [Thing, SameNameThing] }, "'esk-thing'", 'unique')
  })

  it('refuses the same class registered twice', async () => {
    await refuses({ aggregates: [Thing, { aggregate: Thing, partitions: 2 }] }, "'esk-thing'")
  })

  it('refuses an empty or missing aggregates list, naming the option', async () => {
    await refuses({ aggregates: [] }, '`aggregates`')
    await refuses({ aggregates: undefined }, '`aggregates`')
  })

  it('uses the documented defaults', async () => {
    expect(ESK_DEFAULTS).toEqual({
      dedupWindow: 32,
      handlerTimeoutMs: 10_000,
      snapshotCacheSize: 4096,
      replayCacheSize: 16_384,
      partitions: 4,
      processing: true,
      rebuild: false,
      commandTimeoutMs: 30_000,
      readTimeoutMs: 10_000,
      maxEventBytes: 512 * 1024,
      projectionPollMs: 1_000,
    })
    const app = await createEsk({ aggregates: [Thing], driver: memoryDriver() })
    apps.push(app)
    expect(app.streams).toEqual([{ aggregate: 'esk-thing', partitions: 4 }])
  })

  it('treats undefined options as absent, keeping the defaults', async () => {
    const app = await createEsk({ aggregates: [Thing], driver: memoryDriver(), partitions: undefined, commandTimeoutMs: undefined })
    apps.push(app)
    expect(app.streams[0]?.partitions).toBe(4)
  })

  it('refuses a partition count that differs from the existing logs', async () => {
    const backend = new MemoryBackend()
    const first = await createEsk({ aggregates: [Thing], driver: memoryDriver({ backend }), partitions: 2 })
    await first.close()
    await expect(createEsk({ aggregates: [Thing], driver: memoryDriver({ backend }), partitions: 3 })).rejects.toMatchObject({
      code: 'ESK_CONFIGURATION',
      message: expect.stringContaining('configure 2'),
    })
  })

  it('with processing: false sends commands that wait for a processor elsewhere', async () => {
    const backend = new MemoryBackend()
    const client = await createEsk({
      aggregates: [Thing],
      driver: memoryDriver({ backend }),
      processing: false,
      commandTimeoutMs: 100,
    })
    apps.push(client)
    await expect(client.repository(Thing).save(new Open(), { id: 't1', commandId: 'c1' })).rejects.toMatchObject({
      code: 'ESK_COMMAND_TIMEOUT',
      details: { id: 't1', commandId: 'c1', timeoutMs: 100 },
    })
    const processor = await createEsk({ aggregates: [Thing], driver: memoryDriver({ backend }) })
    apps.push(processor)
    // The retry with the same commandId finds the outcome of the command sent before.
    const retried = await client.repository(Thing).save(new Open(), { id: 't1', commandId: 'c1', timeoutMs: 5_000 })
    expect(retried).toEqual({ id: 't1', version: 1, commandId: 'c1', position: { aggregate: 'esk-thing', partition: expect.any(Number), offset: 0 } })
  })
})

describe('application lifecycle', () => {
  // Issue 6, scenario 15. Fails before: a listener's exception vanished without a trace.
  it('logs a listener that throws, and keeps processing', async () => {
    const errors: Array<[string, Record<string, unknown> | undefined]> = []
    const logger = { debug() {}, info() {}, warn() {}, error: (message: string, fields?: Record<string, unknown>) => void errors.push([message, fields]) }
    const app = await createEsk({
      aggregates: [Thing],
      driver: memoryDriver(),
      logger,
      listeners: {
        batch: () => {
          throw new Error('a bug in the listener')
        },
      },
    })
    apps.push(app)
    const { id } = await app.repository(Thing).save(new Open())
    expect((await app.repository(Thing).update(id, new Touch())).version).toBe(2)
    expect(errors).toContainEqual(["a 'batch' listener threw", { error: expect.objectContaining({ message: 'a bug in the listener' }) }])
  })

  async function started() {
    const backend = new MemoryBackend()
    const app = await createEsk({ aggregates: [Thing], driver: memoryDriver({ backend }) })
    apps.push(app)
    const commands = (): number => (backend.logs.get('esk-thing') ?? []).reduce((n, log) => n + log.commands.length, 0)
    return { app, backend, commands }
  }

  it('refuses every repository call after close() with ESK_CLOSED, sending nothing', async () => {
    const { app, commands } = await started()
    const things = app.repository(Thing)
    const { id } = await things.save(new Open())
    await app.close()
    const sent = commands()
    const closed = { code: 'ESK_CLOSED', name: 'ClosedError', message: expect.stringContaining('createEsk()') }
    await expect(things.save(new Open())).rejects.toMatchObject(closed)
    await expect(things.update(id, new Touch())).rejects.toMatchObject(closed)
    await expect(things.find(id)).rejects.toMatchObject(closed)
    await expect(things.get(id)).rejects.toMatchObject(closed)
    expect(() => app.repository(Thing)).toThrow(expect.objectContaining(closed))
    expect(commands()).toBe(sent)
  })

  it('answers a call still waiting for its outcome at close() at once, with ESK_CLOSED and the command id', async () => {
    const backend = new MemoryBackend()
    // No processor: the command is sent but never answered.
    const app = await createEsk({ aggregates: [Thing], driver: memoryDriver({ backend }), processing: false })
    apps.push(app)
    const waiting = app.repository(Thing).save(new Open(), { commandId: 'pending-1', timeoutMs: 60_000 })
    await new Promise((resolve) => setTimeout(resolve, 20))
    const started = Date.now()
    await app.close()
    await expect(waiting).rejects.toMatchObject({
      code: 'ESK_CLOSED',
      details: { commandId: 'pending-1' },
      message: expect.stringContaining('retry with the same commandId'),
    })
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it('closes twice without error', async () => {
    const { app } = await started()
    await app.close()
    await expect(app.close()).resolves.toBeUndefined()
  })

  it('closes the driver it was given: its reply route is gone', async () => {
    const { app, backend } = await started()
    expect(backend.replyRoutes.size).toBe(1)
    await app.close()
    expect(backend.replyRoutes.size).toBe(0)
  })

  it('lets a second, concurrent close() resolve only once the application is closed', async () => {
    const { app, backend } = await started()
    const first = app.close()
    await app.close()
    expect(backend.replyRoutes.size).toBe(0)
    await first
  })

  it('returns the same repository for a class, and refuses unregistered classes by name', async () => {
    const { app } = await started()
    expect(app.repository(Thing)).toBe(app.repository(Thing))
    class Stranger {}
    expect(() => app.repository(Stranger)).toThrow(
      expect.objectContaining({ code: 'ESK_CONFIGURATION', message: expect.stringContaining('Stranger is not registered') }),
    )
  })

  it('reports partition assignment to listeners given at start', async () => {
    const changes: string[] = []
    const app = await createEsk({
      aggregates: [{ aggregate: Thing, partitions: 2 }],
      driver: memoryDriver(),
      listeners: { partition: (c) => changes.push(`${c.aggregate}/${c.partition} ${c.change}`) },
    })
    expect(changes.sort()).toEqual(['esk-thing/0 assigned', 'esk-thing/1 assigned'])
    await app.close()
    expect(changes.filter((c) => c.endsWith('revoked')).sort()).toEqual(['esk-thing/0 revoked', 'esk-thing/1 revoked'])
  })
})
