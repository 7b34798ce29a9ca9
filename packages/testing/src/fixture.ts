import { isDeepStrictEqual } from 'node:util'
import { ErrorCode, HandlerFailedError, hasCode, type Class, type EskError } from '@esk/core'
import { AggregateRuntime } from '@esk/core/driver'

/** What a command did in a fixture: its events, or the error it was refused with. */
export interface FixtureResult<T> {
  events: object[]
  error: EskError | undefined
  /** State after the given events and the command's events. */
  state: T
}

/** An expected refusal: the error code, and optionally the application's reason. */
export interface ExpectedRejection {
  rejected: string
  reason?: string
}

/** Builds an {@link ExpectedRejection}: `rejected('ESK_COMMAND_REJECTED', 'INSUFFICIENT_FUNDS')`. */
export function rejected(code: string, reason?: string): ExpectedRejection {
  return reason === undefined ? { rejected: code } : { rejected: code, reason }
}

/** Thrown by a fixture when the outcome is not what was expected. */
export class FixtureMismatch extends Error {
  override name = 'FixtureMismatch'
}

/** The `when` step: a command run against the state the given events built. */
export class WhenStep<T extends object> {
  private result: Promise<FixtureResult<T>> | undefined

  constructor(
    private readonly runtime: AggregateRuntime<T>,
    private readonly given: readonly object[],
    private readonly command: object,
  ) {}

  /** Runs the command once; every event, the command and the state round-trip through serialisation. */
  run(): Promise<FixtureResult<T>> {
    this.result ??= this.execute()
    return this.result
  }

  /**
   * Checks the outcome: a list of events the command must return (compared in their persisted
   * form), or a {@link rejected} expectation. Resolves with the result; rejects with
   * {@link FixtureMismatch} otherwise. To get the result without a check, use {@link WhenStep.run}.
   */
  then<R1 = FixtureResult<T>, R2 = never>(
    expected?: readonly object[] | ExpectedRejection | ((value: FixtureResult<T>) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2 | FixtureResult<T>> {
    if (typeof expected === 'function' || expected === undefined || expected === null) {
      return this.run().then(expected ?? undefined, onRejected ?? undefined)
    }
    return this.run().then((result) => {
      this.check(result, expected)
      return result
    })
  }

  private check(result: FixtureResult<T>, expected: readonly object[] | ExpectedRejection): void {
    if ('rejected' in expected) {
      if (!result.error) {
        throw new FixtureMismatch(`expected a rejection ${expected.rejected}, but the command returned ${describe(result.events)}`)
      }
      const reason = (result.error.details as { reason?: unknown }).reason
      if (result.error.code !== expected.rejected || (expected.reason !== undefined && reason !== expected.reason)) {
        throw new FixtureMismatch(
          `expected rejection ${expected.rejected}${expected.reason ? `/${expected.reason}` : ''}, got ` +
            `${result.error.code}${reason ? `/${String(reason)}` : ''}: ${result.error.message}`,
        )
      }
      return
    }
    if (result.error) {
      throw new FixtureMismatch(`expected ${describe(expected)}, but the command was refused: ${result.error.message}`)
    }
    // Compared and shown with each payload parsed, so that a message shows no JSON inside JSON.
    const actual = result.events.map((e) => parse(this.runtime.encodeEvent(e)))
    const wanted = expected.map((e) => parse(this.runtime.encodeEvent(e)))
    if (!isDeepStrictEqual(actual, wanted)) {
      throw new FixtureMismatch(`the events differ:\n  expected ${JSON.stringify(wanted)}\n  got      ${JSON.stringify(actual)}`)
    }
  }

  private async execute(): Promise<FixtureResult<T>> {
    const runtime = this.runtime
    let state = givenState(runtime, this.given)
    const binding = runtime.bindingOf(this.command)
    let events: object[] = []
    let error: EskError | undefined
    try {
      const { command } = runtime.decodeCommand(binding.type, roundTripJson(runtime.encodeCommand(this.command)))
      const exists = this.given.length > 0
      if (binding.creates === exists) {
        throw new FixtureMismatch(
          binding.creates
            ? `${binding.type} creates the aggregate: give no events before it`
            : `${binding.type} needs an existing aggregate: give at least one event before it`,
        )
      }
      const before = runtime.dehydrate(state)
      const produced = await runtime.handle(state, binding, command)
      if (binding.creates && produced.length === 0) {
        // The processor refuses this too: an aggregate exists only through its first event.
        throw new HandlerFailedError(`creating handler for ${binding.type} returned no events; return at least one event`)
      }
      if (runtime.dehydrate(state) !== before) {
        throw new FixtureMismatch(`${binding.type}'s handler changed the aggregate's fields; only event handlers may`)
      }
      // As a processor does: apply the events as replay decodes them, and keep the state only if
      // its snapshot gives it back; otherwise the command is refused with the processor's words.
      const decoded = runtime.roundTripEvents(produced, binding).decoded
      runtime.apply(state, decoded)
      state = runtime.roundTripState(state, binding).state
      events = decoded
    } catch (caught) {
      if (caught instanceof FixtureMismatch) throw caught
      if (!isEskError(caught)) throw caught
      error = caught
    }
    return { events, error, state }
  }
}

/** The `given` step: the events an aggregate already has. */
export class GivenStep<T extends object> {
  constructor(
    private readonly runtime: AggregateRuntime<T>,
    private readonly events: readonly object[],
  ) {}

  /** The command under test. */
  when(command: object): WhenStep<T> {
    return new WhenStep(this.runtime, this.events, command)
  }

  /** The state the given events build (after a serialisation round trip). */
  state(): T {
    return givenState(this.runtime, this.events)
  }
}

/**
 * Starts a given/when/then test of one aggregate class, without any driver:
 * `await given(Account, [new AccountOpened('ada', 10)]).when(new Deposit(5)).then([new MoneyDeposited(5)])`.
 * Every event, the command and the state go through the same serialisation a driver uses. A
 * command whose events or state do not survive it is refused with the processor's
 * `ESK_HANDLER_FAILED` and message; given events that do not survive it fail the test.
 */
export function given<T extends object>(aggregate: Class<T>, events: readonly object[] = []): GivenStep<T> {
  return new GivenStep(new AggregateRuntime(aggregate), events)
}

/**
 * The state `events` build, through the same round trips a processor makes. An event or a state
 * that does not survive them is a mistake in the test, reported with the processor's words.
 */
function givenState<T extends object>(runtime: AggregateRuntime<T>, events: readonly object[]): T {
  try {
    const state = runtime.create()
    runtime.apply(state, runtime.roundTripEvents(events).decoded)
    return runtime.roundTripState(state).state
  } catch (error) {
    if (hasCode(error, ErrorCode.HandlerFailed)) throw new FixtureMismatch(`the given events cannot be used: ${error.message}`)
    throw error
  }
}

function roundTripJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown
}

function parse(e: { type: string; payload: string }): unknown {
  return { type: e.type, payload: JSON.parse(e.payload) as unknown }
}

function describe(events: readonly object[]): string {
  return events.length === 0 ? 'no events' : events.map((e) => e.constructor.name).join(', ')
}

function isEskError(value: unknown): value is EskError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    String((value as { code: string }).code).startsWith('ESK_')
  )
}


