import 'reflect-metadata'
import { ConfigurationError } from './errors.js'

/** A class whose instances esk can create with `new` and no arguments. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Class<T = unknown> = new (...args: any[]) => T

// Own metadata keys (read with getOwnMetadata) so a subclass never inherits a persisted name.
const EVENT_TYPE = Symbol.for('esk:event-type')
const COMMAND_TYPE = Symbol.for('esk:command-type')
const AGGREGATE = Symbol.for('esk:aggregate')
const COMMAND_HANDLERS = Symbol.for('esk:command-handlers')
const EVENT_HANDLERS = Symbol.for('esk:event-handlers')

/** Options of {@link Command}. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface CommandOptions<T = any> {
  /**
   * Checks the command's shape before it is sent and again before it is handled. Return nothing
   * when valid, or one message (or several) saying what is wrong.
   */
  validate?: (command: T) => string | string[] | undefined | void
}

/** Options of {@link Aggregate}. */
export interface AggregateOptions {
  /** Persisted aggregate type name; names topics and keys, so never change it once data exists. */
  name: string
  /**
   * Version of the state's shape. Bump it when event handlers or fields change meaning: snapshots
   * of another version are discarded and rebuilt from the events. Default 1.
   */
  schemaVersion?: number
}

/** Options of {@link CommandHandler}. */
export interface CommandHandlerOptions {
  /** The command creates the aggregate: sent with `save()`, handled on a fresh instance. Default false. */
  creates?: boolean
}

interface CommandHandlerRecord {
  command: Class
  method: string
  creates: boolean
}

interface EventHandlerRecord {
  event: Class
  method: string
}

interface CommandRecordMeta {
  type: string
  options: CommandOptions
}

/** Declares an event class and the type name it is persisted under. */
export function Event(type: string): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(EVENT_TYPE, type, target)
  }
}

/** Declares a command class, the type name it is sent under, and an optional validation. */
export function Command<T>(type: string, options: CommandOptions<T> = {}): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(COMMAND_TYPE, { type, options: options as CommandOptions }, target)
  }
}

/** Declares an aggregate class: its persisted name and schema version. */
export function Aggregate(options: AggregateOptions): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(AGGREGATE, options, target)
  }
}

/**
 * Marks a method as the handler of a command. It validates against the current state and returns
 * the events to record (one, several, or none), or throws {@link CommandRejected}. It must not
 * change the aggregate's fields: only event handlers do.
 */
export function CommandHandler(command: Class, options: CommandHandlerOptions = {}): MethodDecorator {
  return (target, method) => {
    const records = ownList<CommandHandlerRecord>(COMMAND_HANDLERS, target.constructor)
    records.push({ command, method: String(method), creates: options.creates ?? false })
  }
}

/** Marks a method as the handler of an event: it changes state, deterministically, and returns nothing. */
export function EventHandler(event: Class): MethodDecorator {
  return (target, method) => {
    ownList<EventHandlerRecord>(EVENT_HANDLERS, target.constructor).push({ event, method: String(method) })
  }
}

function ownList<T>(key: symbol, target: object): T[] {
  let list = Reflect.getOwnMetadata(key, target) as T[] | undefined
  if (!list) {
    list = []
    Reflect.defineMetadata(key, list, target)
  }
  return list
}

/** The persisted type name of an event class, or undefined if it is not decorated with {@link Event}. */
export function eventTypeOf(cls: Class): string | undefined {
  return Reflect.getOwnMetadata(EVENT_TYPE, cls) as string | undefined
}

/** The persisted type name and options of a command class, if it is decorated with {@link Command}. */
export function commandMetaOf(cls: Class): CommandRecordMeta | undefined {
  return Reflect.getOwnMetadata(COMMAND_TYPE, cls) as CommandRecordMeta | undefined
}

/** How one command type is handled by an aggregate. */
export interface CommandBinding {
  readonly type: string
  readonly cls: Class
  readonly method: string
  readonly creates: boolean
  readonly validate: CommandOptions['validate']
}

/** How one event type is applied by an aggregate. */
export interface EventBinding {
  readonly type: string
  readonly cls: Class
  readonly method: string
}

/** Everything esk knows about one aggregate class, validated once at start-up. */
export interface AggregateModel<T = unknown> {
  readonly name: string
  readonly schemaVersion: number
  readonly cls: Class<T>
  readonly commands: ReadonlyMap<string, CommandBinding>
  readonly commandsByClass: ReadonlyMap<Class, CommandBinding>
  readonly events: ReadonlyMap<string, EventBinding>
  readonly eventsByClass: ReadonlyMap<Class, EventBinding>
}

const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/

const models = new WeakMap<Class, AggregateModel>()

/**
 * Reads and validates the decorators of an aggregate class. Every problem is a
 * {@link ConfigurationError} naming the class and the fix, raised before anything runs.
 */
export function aggregateModel<T>(cls: Class<T>): AggregateModel<T> {
  const cached = models.get(cls)
  if (cached) return cached as AggregateModel<T>
  const options = Reflect.getOwnMetadata(AGGREGATE, cls) as AggregateOptions | undefined
  if (!options) {
    throw new ConfigurationError(`${cls.name} is not an aggregate: decorate it with @Aggregate({ name })`)
  }
  // typeof first: RegExp.test(undefined) tests the string 'undefined', which would pass.
  if (typeof options.name !== 'string' || !NAME_PATTERN.test(options.name)) {
    throw new ConfigurationError(
      `aggregate name '${String(options.name)}' of ${cls.name} must start with a letter and use only letters, digits, '-' and '_' (at most 63)`,
    )
  }
  const schemaVersion = options.schemaVersion ?? 1
  if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
    throw new ConfigurationError(
      `schemaVersion of ${cls.name} (aggregate '${options.name}') must be a positive integer, got ${String(schemaVersion)}`,
    )
  }

  const commands = new Map<string, CommandBinding>()
  const commandsByClass = new Map<Class, CommandBinding>()
  for (const record of (Reflect.getOwnMetadata(COMMAND_HANDLERS, cls) ?? []) as CommandHandlerRecord[]) {
    const meta = commandMetaOf(record.command)
    if (!meta) {
      throw new ConfigurationError(
        `${cls.name}.${record.method} handles ${record.command.name}, which has no @Command('Type') decorator`,
      )
    }
    if (typeof meta.type !== 'string' || meta.type.length === 0) {
      throw new ConfigurationError(
        `${cls.name}.${record.method} handles ${record.command.name}, whose @Command type name is empty; ` +
          `declare a persisted name such as @Command('bank.Deposit')`,
      )
    }
    const existing = commands.get(meta.type)
    if (existing) {
      throw new ConfigurationError(
        `${cls.name}.${existing.method} and ${cls.name}.${record.method} both handle command type '${meta.type}'; ` +
          `keep one handler per command type`,
      )
    }
    const binding = { ...record, type: meta.type, cls: record.command, validate: meta.options.validate }
    commands.set(meta.type, binding)
    commandsByClass.set(record.command, binding)
  }
  if (![...commands.values()].some((c) => c.creates)) {
    throw new ConfigurationError(
      `${cls.name} (aggregate '${options.name}') has no creating command: ` +
        `mark one handler @CommandHandler(Cmd, { creates: true })`,
    )
  }

  const events = new Map<string, EventBinding>()
  const eventsByClass = new Map<Class, EventBinding>()
  for (const record of (Reflect.getOwnMetadata(EVENT_HANDLERS, cls) ?? []) as EventHandlerRecord[]) {
    const type = eventTypeOf(record.event)
    if (type === undefined) {
      throw new ConfigurationError(
        `${cls.name}.${record.method} applies ${record.event.name}, which has no @Event('Type') decorator`,
      )
    }
    if (typeof type !== 'string' || type.length === 0) {
      throw new ConfigurationError(
        `${cls.name}.${record.method} applies ${record.event.name}, whose @Event type name is empty; ` +
          `declare a persisted name such as @Event('bank.MoneyDeposited')`,
      )
    }
    const existing = events.get(type)
    if (existing) {
      throw new ConfigurationError(
        `${cls.name}.${existing.method} and ${cls.name}.${record.method} both apply event type '${type}'; ` +
          `keep one handler per event type`,
      )
    }
    const binding = { type, cls: record.event, method: record.method }
    events.set(type, binding)
    eventsByClass.set(record.event, binding)
  }

  const model: AggregateModel<T> = {
    name: options.name,
    schemaVersion,
    cls,
    commands,
    commandsByClass,
    events,
    eventsByClass,
  }
  models.set(cls, model)
  return model
}
