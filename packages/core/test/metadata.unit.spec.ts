import { Aggregate, Command, CommandHandler, Event, EventHandler, createEsk, type AggregateOptions, type Class } from '@esk/core'
import { AggregateRuntime, aggregateModel, commandMetaOf, eventTypeOf } from '@esk/core/driver'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { describe, expect, it } from 'vitest'

/** Runs `build` and returns the ConfigurationError it throws; fails the test otherwise. */
function configurationError(build: () => unknown): Error {
  try {
    build()
  } catch (error) {
    expect(error).toMatchObject({ code: 'ESK_CONFIGURATION', name: 'ConfigurationError' })
    return error as Error
  }
  throw new Error('expected a ConfigurationError, but nothing was thrown')
}

@Command('meta.Open')
class Open {}

@Event('meta.Opened')
class Opened {}

describe('aggregate declarations', () => {
  it('accepts a well-formed aggregate and reads its model', () => {
    @Aggregate({ name: 'meta-ok', schemaVersion: 3 })
    class Good {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }

      @EventHandler(Opened)
      onOpened(): void {}
    }
    const model = aggregateModel(Good)
    expect(model).toMatchObject({ name: 'meta-ok', schemaVersion: 3, cls: Good })
    expect(model.commands.get('meta.Open')).toMatchObject({ cls: Open, method: 'open', creates: true })
    expect(model.events.get('meta.Opened')).toMatchObject({ cls: Opened, method: 'onOpened' })
    expect(aggregateModel(Good)).toBe(model)
  })

  it('defaults schemaVersion to 1', () => {
    @Aggregate({ name: 'meta-default-version' })
    class Versionless {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    expect(aggregateModel(Versionless).schemaVersion).toBe(1)
  })

  it('refuses a class without @Aggregate, naming the class and the decorator to add', () => {
    class PlainAccount {}
    const error = configurationError(() => aggregateModel(PlainAccount))
    expect(error.message).toContain('PlainAccount')
    expect(error.message).toContain('@Aggregate({ name })')
  })

  it('refuses it in createEsk too, before any driver is used', async () => {
    class PlainAccount {}
    const backend = new MemoryBackend()
    await expect(createEsk({ aggregates: [PlainAccount], driver: memoryDriver({ backend }) })).rejects.toMatchObject({
      code: 'ESK_CONFIGURATION',
      message: expect.stringContaining('PlainAccount'),
    })
    expect(backend.logs.size).toBe(0)
  })

  it('refuses a handled command class without @Command, naming handler, command and fix', () => {
    class Undeclared {}
    @Aggregate({ name: 'meta-undeclared-command' })
    class Handles {
      @CommandHandler(Undeclared, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    const error = configurationError(() => aggregateModel(Handles))
    expect(error.message).toContain('Handles.open')
    expect(error.message).toContain('Undeclared')
    expect(error.message).toContain("@Command('Type')")
  })

  it('refuses an applied event class without @Event, naming handler, event and fix', () => {
    class Undeclared {}
    @Aggregate({ name: 'meta-undeclared-event' })
    class Applies {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }

      @EventHandler(Undeclared)
      onUndeclared(): void {}
    }
    const error = configurationError(() => aggregateModel(Applies))
    expect(error.message).toContain('Applies.onUndeclared')
    expect(error.message).toContain('Undeclared')
    expect(error.message).toContain("@Event('Type')")
  })

  it('refuses two handlers of one command type, naming the class and both methods', () => {
    @Aggregate({ name: 'meta-two-command-handlers' })
    class TwoHandlers {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }

      @CommandHandler(Open)
      openAgain(): Opened {
        return new Opened()
      }
    }
    const error = configurationError(() => aggregateModel(TwoHandlers))
    expect(error.message).toContain('TwoHandlers')
    expect(error.message).toContain("'meta.Open'")
    expect(error.message).toMatch(/open\b.*openAgain|openAgain.*\bopen\b/)
    expect(error.message).toContain('keep one')
  })

  it('refuses two command classes declared with the same type name', () => {
    @Command('meta.Same')
    class First {}
    @Command('meta.Same')
    class Second {}
    @Aggregate({ name: 'meta-same-command-type' })
    class SameType {
      @CommandHandler(First, { creates: true })
      first(): Opened {
        return new Opened()
      }

      @CommandHandler(Second)
      second(): Opened {
        return new Opened()
      }
    }
    const error = configurationError(() => aggregateModel(SameType))
    expect(error.message).toContain('SameType')
    expect(error.message).toContain("'meta.Same'")
  })

  it('refuses two handlers of one event type, naming the class', () => {
    @Aggregate({ name: 'meta-two-event-handlers' })
    class TwoAppliers {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }

      @EventHandler(Opened)
      a(): void {}

      @EventHandler(Opened)
      b(): void {}
    }
    const error = configurationError(() => aggregateModel(TwoAppliers))
    expect(error.message).toContain('TwoAppliers')
    expect(error.message).toContain("'meta.Opened'")
  })

  it('refuses an aggregate with no creating command, naming the class and the option to set', () => {
    @Aggregate({ name: 'meta-no-creator' })
    class NoCreator {
      @CommandHandler(Open)
      open(): Opened {
        return new Opened()
      }
    }
    const error = configurationError(() => aggregateModel(NoCreator))
    expect(error.message).toContain('NoCreator')
    expect(error.message).toContain('{ creates: true }')
  })

  it.each(['', '1account', 'has space', 'dots.are.not.allowed', 'é', 'a'.repeat(64)])(
    'refuses the aggregate name %j, naming the class and the rule',
    (name) => {
      @Aggregate({ name })
      class BadlyNamed {
        @CommandHandler(Open, { creates: true })
        open(): Opened {
          return new Opened()
        }
      }
      const error = configurationError(() => aggregateModel(BadlyNamed))
      expect(error.message).toContain('BadlyNamed')
      expect(error.message).toContain('must start with a letter')
    },
  )

  it('refuses a missing aggregate name (from untyped code)', () => {
    @Aggregate({} as AggregateOptions)
    class Nameless {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    const error = configurationError(() => aggregateModel(Nameless))
    expect(error.message).toContain('Nameless')
  })

  it('accepts names up to 63 characters with letters, digits, - and _', () => {
    @Aggregate({ name: 'A' + 'b_-9'.repeat(15) + 'xy' })
    class LongName {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    expect(aggregateModel(LongName).name).toHaveLength(63)
  })

  it.each([0, -1, 1.5, Number.NaN])('refuses schemaVersion %s, naming the class and the rule', (schemaVersion) => {
    @Aggregate({ name: 'meta-bad-version', schemaVersion })
    class BadVersion {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    const error = configurationError(() => aggregateModel(BadVersion))
    expect(error.message).toContain('BadVersion')
    expect(error.message).toContain('schemaVersion')
    expect(error.message).toContain('positive integer')
  })

  it('refuses empty command and event type names: no record could carry them', () => {
    @Command('')
    class Blank {}
    @Aggregate({ name: 'meta-blank-command' })
    class BlankCommand {
      @CommandHandler(Blank, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    expect(configurationError(() => aggregateModel(BlankCommand)).message).toContain('Blank')

    @Event('')
    class BlankEvent {}
    @Aggregate({ name: 'meta-blank-event' })
    class AppliesBlank {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }

      @EventHandler(BlankEvent)
      onBlank(): void {}
    }
    expect(configurationError(() => aggregateModel(AppliesBlank)).message).toContain('BlankEvent')
  })
})

describe('persisted type names', () => {
  // Two classes with the same JavaScript name, as two modules (or a minifier) can produce.
  function depositEvent(type: string): Class<{ amount: number }> {
    @Event(type)
    class Deposited {
      amount: number
      constructor(amount = 0) {
        this.amount = amount
      }
    }
    return Deposited
  }
  function depositCommand(type: string): Class<{ amount: number }> {
    @Command(type)
    class Deposit {
      amount: number
      constructor(amount = 0) {
        this.amount = amount
      }
    }
    return Deposit
  }
  const CashDeposited = depositEvent('ledger.CashDeposited')
  const ChequeDeposited = depositEvent('ledger.ChequeDeposited')
  const CashDeposit = depositCommand('ledger.CashDeposit')
  const ChequeDeposit = depositCommand('ledger.ChequeDeposit')

  @Command('ledger.Open')
  class OpenLedger {}
  @Event('ledger.Opened')
  class LedgerOpened {}

  @Aggregate({ name: 'ledger' })
  class Ledger {
    cash = 0
    cheques = 0

    @CommandHandler(OpenLedger, { creates: true })
    open(): LedgerOpened {
      return new LedgerOpened()
    }

    @CommandHandler(CashDeposit)
    depositCash(c: { amount: number }): object {
      return new CashDeposited(c.amount)
    }

    @CommandHandler(ChequeDeposit)
    depositCheque(c: { amount: number }): object {
      return new ChequeDeposited(c.amount)
    }

    @EventHandler(LedgerOpened)
    onOpened(): void {}

    @EventHandler(CashDeposited)
    onCash(e: { amount: number }): void {
      this.cash += e.amount
    }

    @EventHandler(ChequeDeposited)
    onCheque(e: { amount: number }): void {
      this.cheques += e.amount
    }
  }

  it('come from the decorator, not from constructor.name', () => {
    expect(CashDeposited.name).toBe(ChequeDeposited.name)
    expect(eventTypeOf(CashDeposited)).toBe('ledger.CashDeposited')
    expect(eventTypeOf(ChequeDeposited)).toBe('ledger.ChequeDeposited')
    expect(commandMetaOf(CashDeposit)?.type).toBe('ledger.CashDeposit')
    const runtime = new AggregateRuntime(Ledger)
    expect(runtime.encodeEvent(new ChequeDeposited(7))).toEqual({ type: 'ledger.ChequeDeposited', payload: '{"amount":7}' })
    expect(runtime.decodeEvent({ type: 'ledger.CashDeposited', payload: '{"amount":3}', offset: 0, aggregateId: 'x' })).toBeInstanceOf(
      CashDeposited,
    )
  })

  it('keep same-named classes apart through the logs, a restart and a rebuild', async () => {
    const backend = new MemoryBackend()
    const start = (rebuild: boolean) =>
      createEsk({ aggregates: [{ aggregate: Ledger, partitions: 1 }], driver: memoryDriver({ backend }), rebuild })
    const first = await start(false)
    const ledgers = first.repository(Ledger)
    const { id } = await ledgers.save(new OpenLedger())
    await ledgers.update(id, new CashDeposit(5))
    await ledgers.update(id, new ChequeDeposit(40))
    await first.close()

    expect(backend.log('ledger', 0).events.map((e) => e.type)).toEqual([
      'ledger.Opened',
      'ledger.CashDeposited',
      'ledger.ChequeDeposited',
    ])
    expect(backend.log('ledger', 0).commands.map((c) => (JSON.parse(c) as { type: string }).type)).toEqual([
      'ledger.Open',
      'ledger.CashDeposit',
      'ledger.ChequeDeposit',
    ])
    const rebuilt = await start(true)
    expect((await rebuilt.repository(Ledger).get(id)).state).toMatchObject({ cash: 5, cheques: 40 })
    await rebuilt.close()
  })

  it('are not inherited: a subclass of an event or command has none of its own', () => {
    class SpecialOpened extends Opened {}
    class SpecialOpen extends Open {}
    expect(eventTypeOf(Opened)).toBe('meta.Opened')
    expect(eventTypeOf(SpecialOpened)).toBeUndefined()
    expect(commandMetaOf(SpecialOpen)).toBeUndefined()

    @Event('meta.SpecialOpened')
    class DeclaredSpecial extends Opened {}
    expect(eventTypeOf(DeclaredSpecial)).toBe('meta.SpecialOpened')
    expect(eventTypeOf(Opened)).toBe('meta.Opened')
  })

  it('are not inherited: a handler for an undeclared subclass is a configuration error', () => {
    class SpecialOpened extends Opened {}
    @Aggregate({ name: 'meta-subclass-event' })
    class AppliesSubclass {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }

      @EventHandler(SpecialOpened)
      onSpecial(): void {}
    }
    expect(configurationError(() => aggregateModel(AppliesSubclass)).message).toContain('SpecialOpened')
  })

  it('are not inherited: returning an undeclared subclass of a handled event fails the command', async () => {
    class SpecialOpened extends Opened {}
    @Aggregate({ name: 'meta-returns-subclass' })
    class ReturnsSubclass {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new SpecialOpened()
      }

      @EventHandler(Opened)
      onOpened(): void {}
    }
    const runtime = new AggregateRuntime(ReturnsSubclass)
    const binding = runtime.bindingOf(new Open())
    // A synchronous handler is run synchronously: its failure is thrown, not returned as a promise.
    expect(() => runtime.handle(runtime.create(), binding, new Open())).toThrow(expect.objectContaining({
      code: 'ESK_HANDLER_FAILED',
      message: expect.stringContaining('SpecialOpened'),
    }))
  })

  it('are not inherited: a subclass of an aggregate needs its own @Aggregate and handlers', () => {
    @Aggregate({ name: 'meta-parent' })
    class Parent {
      @CommandHandler(Open, { creates: true })
      open(): Opened {
        return new Opened()
      }
    }
    class Child extends Parent {}
    expect(aggregateModel(Parent).name).toBe('meta-parent')
    expect(configurationError(() => aggregateModel(Child)).message).toContain('Child')

    @Aggregate({ name: 'meta-child' })
    class DeclaredChild extends Parent {}
    expect(configurationError(() => aggregateModel(DeclaredChild)).message).toContain('creates: true')
  })
})
