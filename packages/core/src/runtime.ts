import { instanceToPlain } from 'class-transformer'
import {
  CommandRejected,
  HandlerFailedError,
  InvalidCommandError,
  SerializationError,
  UnknownCommandError,
  hasCode,
  ErrorCode,
} from './errors.js'
import { aggregateModel, type AggregateModel, type Class, type CommandBinding } from './metadata.js'
import type { StoredEvent, StoredSnapshot } from './records.js'
import { decodeInstance, describeDifference, encodeInstance, roundTrip, type RoundTripDifference } from './roundtrip.js'
import { asPlainJson } from './plain.js'

/** An event with its persisted type name and JSON text. */
export interface EncodedEvent {
  type: string
  payload: string
}

/**
 * Runs one aggregate class: builds instances, decodes commands and events, calls handlers. All
 * (de)serialisation goes through class-transformer with the declared classes, never through
 * `constructor.name` or emitted design types.
 */
export class AggregateRuntime<T extends object = object> {
  readonly model: AggregateModel<T>

  constructor(cls: Class<T>) {
    this.model = aggregateModel(cls)
  }

  /** A fresh instance, as a creating command sees it. */
  create(): T {
    return new this.model.cls()
  }

  /** Rebuilds state from a snapshot's JSON text. */
  hydrate(state: string): T {
    return decodeInstance(this.model.cls, parseJson(state, `snapshot of ${this.model.name}`))
  }

  /** Encodes state for a snapshot. */
  dehydrate(state: T): string {
    return encodeInstance(state)
  }

  /** The binding of a command instance, or an {@link UnknownCommandError} that says what is handled. */
  bindingOf(command: object): CommandBinding {
    const binding = this.model.commandsByClass.get(command.constructor as Class)
    if (!binding) {
      throw new UnknownCommandError(
        `${command.constructor.name} is not handled by aggregate '${this.model.name}'; ` +
          `handled commands: ${[...this.model.commands.keys()].join(', ')}`,
        { aggregate: this.model.name, command: command.constructor.name },
      )
    }
    return binding
  }

  /**
   * Encodes a command's fields for the command log: a value whose JSON text is the command's.
   * A plain class with JSON values is its own encoding (no class-transformer pass).
   */
  encodeCommand(command: object): unknown {
    return asPlainJson(command) ?? instanceToPlain(command)
  }

  /**
   * Decodes a command from the log and runs its declared validation. Throws
   * {@link UnknownCommandError} or {@link InvalidCommandError}.
   */
  decodeCommand(type: string, payload: unknown): { binding: CommandBinding; command: object } {
    const binding = this.model.commands.get(type)
    if (!binding) {
      throw new UnknownCommandError(
        `command type '${type}' is not handled by aggregate '${this.model.name}'; ` +
          `deploy a processor that handles it, or fix the sender`,
        { aggregate: this.model.name, commandType: type },
      )
    }
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      throw new InvalidCommandError(type, ['payload must be a JSON object'])
    }
    const command = decodeInstance(binding.cls, payload) as object
    this.validate(binding, command)
    return { binding, command }
  }

  /** Runs a command's declared validation; throws {@link InvalidCommandError} with every problem. */
  validate(binding: CommandBinding, command: object): void {
    if (!binding.validate) return
    let result: ReturnType<NonNullable<CommandBinding['validate']>>
    try {
      result = binding.validate(command)
    } catch (error) {
      result = `validation threw: ${messageOf(error)}`
    }
    const problems = typeof result === 'string' ? [result] : Array.isArray(result) ? result : []
    if (problems.length > 0) throw new InvalidCommandError(binding.type, problems)
  }

  /**
   * Runs a command handler on `state` and returns its events: synchronously when the handler is
   * synchronous, else as a promise. A {@link CommandRejected} passes through; anything else thrown
   * becomes a {@link HandlerFailedError}.
   */
  handle(state: T, binding: CommandBinding, command: object): object[] | Promise<object[]> {
    const handler = (state as Record<string, unknown>)[binding.method]
    let result: unknown
    try {
      result = (handler as (c: object) => unknown).call(state, command)
    } catch (error) {
      throw this.handlerFailed(binding, error)
    }
    if (isPromiseLike(result)) {
      return Promise.resolve(result).then(
        (value) => this.checkEvents(binding, value),
        (error: unknown) => {
          throw this.handlerFailed(binding, error)
        },
      )
    }
    return this.checkEvents(binding, result)
  }

  private handlerFailed(binding: CommandBinding, error: unknown): unknown {
    if (hasCode(error, ErrorCode.CommandRejected)) return error
    if (error instanceof CommandRejected) return error
    return new HandlerFailedError(
      `handler ${this.model.name}.${binding.method} for ${binding.type} threw: ${messageOf(error)}; ` +
        `throw CommandRejected for business refusals, fix the handler otherwise`,
      { aggregate: this.model.name, commandType: binding.type },
      error,
    )
  }

  /** A handler's result as a list of events; throws {@link HandlerFailedError} for anything that is not one. */
  private checkEvents(binding: CommandBinding, result: unknown): object[] {
    const events = result === undefined || result === null ? [] : Array.isArray(result) ? result : [result]
    for (const event of events) {
      if (typeof event !== 'object' || event === null || !this.model.eventsByClass.has(event.constructor as Class)) {
        const name = typeof event === 'object' && event !== null ? event.constructor.name : typeof event
        throw new HandlerFailedError(
          `handler ${this.model.name}.${binding.method} returned ${name}, which aggregate '${this.model.name}' ` +
            `has no @EventHandler for; return instances of handled @Event classes`,
          { aggregate: this.model.name, commandType: binding.type, returned: name },
        )
      }
    }
    return events as object[]
  }

  /** Applies events (instances) to `state`; an event handler that throws becomes {@link HandlerFailedError}. */
  apply(state: T, events: readonly object[]): void {
    for (const event of events) this.applyOne(state, event)
  }

  /** Applies one event; a replay calls this once per event, without a list around it. */
  applyOne(state: T, event: object): void {
    const binding = this.model.eventsByClass.get(event.constructor as Class)
    if (!binding) throw new SerializationError(`no event handler for ${event.constructor.name}`)
    try {
      ;(state as Record<string, (e: object) => void>)[binding.method]!.call(state, event)
    } catch (error) {
      throw new HandlerFailedError(
        `event handler ${this.model.name}.${binding.method} for ${binding.type} threw: ${messageOf(error)}; ` +
          `event handlers must not fail on events their command handlers produce`,
        { aggregate: this.model.name, eventType: binding.type },
        error,
      )
    }
  }

  /** Encodes an event instance for the event log. */
  encodeEvent(event: object): EncodedEvent {
    const binding = this.model.eventsByClass.get(event.constructor as Class)
    if (!binding) throw new SerializationError(`${event.constructor.name} is not an event of '${this.model.name}'`)
    return { type: binding.type, payload: encodeInstance(event) }
  }

  /**
   * Encodes a command's events for the log and decodes them back exactly as replay will. The
   * live state must be built from the decoded copies, so that it is the state a replay builds.
   * An event that does not come back equal is refused with a {@link HandlerFailedError} naming
   * its type and field. `binding` names the command whose handler returned the events.
   */
  roundTripEvents(events: readonly object[], binding?: CommandBinding): { encoded: EncodedEvent[]; decoded: object[] } {
    const encoded: EncodedEvent[] = []
    const decoded: object[] = []
    for (const event of events) {
      const eventBinding = this.model.eventsByClass.get(event.constructor as Class)
      if (!eventBinding) throw new SerializationError(`${event.constructor.name} is not an event of '${this.model.name}'`)
      const result = roundTrip(event, eventBinding.cls as Class<object>)
      if (!result.ok) {
        const outcome = binding
          ? `not the one handler ${this.model.name}.${binding.method} returned, so the command is refused and nothing is recorded`
          : 'not this one'
        throw this.notSurviving(
          `event ${eventBinding.type} does not survive serialisation: ${describeDifference(result.difference)}; ` +
            `replay applies the event decoded from the log, ${outcome}`,
          result.difference,
          { eventType: eventBinding.type, ...(binding ? { commandType: binding.type } : {}) },
        )
      }
      encoded.push({ type: eventBinding.type, payload: result.encoded })
      decoded.push(result.decoded)
    }
    return { encoded, decoded }
  }

  /**
   * Encodes state for a snapshot and checks that hydrating it gives the same state back, since a
   * processor that restarts from the snapshot must hold what this one holds. Returns the encoding
   * and the hydrated copy; throws a {@link HandlerFailedError} naming the field otherwise.
   * `binding` names the command after which the state is checked.
   */
  roundTripState(state: T, binding?: CommandBinding): { encoded: string; state: T } {
    const result = roundTrip(state, this.model.cls)
    if (!result.ok) {
      const after = binding ? ` after ${binding.type}` : ''
      const outcome = binding ? ', so the command is refused and nothing is recorded' : ''
      throw this.notSurviving(
        `the state of ${this.model.name}${after} does not survive its snapshot format: ` +
          `${describeDifference(result.difference)}; a processor restarting from the snapshot would hold ` +
          `another state${outcome}`,
        result.difference,
        binding ? { commandType: binding.type } : {},
      )
    }
    return { encoded: result.encoded, state: result.decoded }
  }

  private notSurviving(message: string, difference: RoundTripDifference, details: Record<string, unknown>): HandlerFailedError {
    return new HandlerFailedError(message, {
      aggregate: this.model.name,
      ...details,
      field: difference.path,
      problem: difference.problem,
    })
  }

  /** Decodes an event read from the log; an unknown type means this code is older than the log. */
  decodeEvent(event: Pick<StoredEvent, 'type' | 'payload' | 'offset' | 'aggregateId'>): object {
    const binding = this.model.events.get(event.type)
    if (!binding) {
      throw new SerializationError(
        `event type '${event.type}' at offset ${event.offset} (aggregate ${event.aggregateId}) is not handled ` +
          `by aggregate '${this.model.name}'; deploy code that knows it before this partition can recover`,
        { aggregate: this.model.name, eventType: event.type, offset: event.offset },
      )
    }
    return decodeInstance(binding.cls, parseJson(event.payload, `event ${event.type}`)) as object
  }

  /** Folds stored events into a state, as recovery does; used by tests to check snapshots. */
  fold(events: readonly StoredEvent[], from?: StoredSnapshot): T {
    const state = from ? this.hydrate(from.state) : this.create()
    this.apply(
      state,
      events.map((e) => this.decodeEvent(e)),
    )
    return state
  }
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new SerializationError(`${what} is not valid JSON: ${messageOf(error)}`, {}, error)
  }
}

/** The message of anything thrown. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** True for a promise or any other thenable (an async handler's result). */
function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
}
