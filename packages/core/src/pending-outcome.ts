import type { OutcomeWait } from './ports.js'
import type { Outcome } from './records.js'

/**
 * An {@link OutcomeWait} for outcome channels to hand out: settled once, by the outcome, a failure
 * or `stop()`, whichever comes first. `onSettled` runs once, before the caller hears, so the
 * channel can forget the wait (its waiter lists, its timers).
 */
export class PendingOutcome implements OutcomeWait {
  readonly outcome: Promise<Outcome | undefined>
  settled = false
  private resolve!: (outcome: Outcome | undefined) => void
  private reject!: (error: unknown) => void

  constructor(private readonly onSettled: (wait: PendingOutcome) => void) {
    this.outcome = new Promise((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    // Callers send their command before they await this; a rejection meanwhile (closed, corrupt
    // record) must reach them when they do, not crash the process as an unhandled rejection.
    this.outcome.catch(() => undefined)
  }

  settle(outcome: Outcome | undefined): void {
    if (this.finish()) this.resolve(outcome)
  }

  fail(error: unknown): void {
    if (this.finish()) this.reject(error)
  }

  stop(): void {
    this.settle(undefined)
  }

  private finish(): boolean {
    if (this.settled) return false
    this.settled = true
    this.onSettled(this)
    return true
  }
}
