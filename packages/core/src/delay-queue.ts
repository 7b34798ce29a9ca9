/**
 * Many timers of one delay on a single Node timer. A client arms a timer or two for every call it
 * has in flight (its deadline, its first poll for a lost reply), and nearly every one is cancelled
 * a few milliseconds later, when the reply comes. A Node `Timeout` per call is an object of a
 * dozen fields that lives as long as the call, and with a thousand calls in flight every young
 * collection copies a thousand of them. Here a call's timer is a slot in an array.
 *
 * Entries of one delay fall due in the order they were added, so the queue is a list in that
 * order, and only its oldest live entry has a Node timer. `cancel` empties a slot; emptied slots
 * at the front are dropped as the timer passes them. The timer is cleared whenever no entry is
 * live, so a queue never keeps a process alive by itself.
 */
export class DelayQueue<T> {
  private items: Array<T | undefined> = []
  private dues: number[] = []
  /** Index in `items` of the oldest entry not yet fired or dropped. */
  private head = 0
  /** Ticket of `items[0]`: tickets stay valid while the arrays are compacted. */
  private base = 0
  private live = 0
  private timer: ReturnType<typeof setTimeout> | undefined
  private timerDue = Infinity

  constructor(
    readonly delayMs: number,
    private readonly fire: (item: T) => void,
  ) {}

  /** Number of entries added and neither fired nor cancelled. */
  get size(): number {
    return this.live
  }

  /** Arms a timer for `item`, fired after {@link delayMs}; returns the ticket that cancels it. */
  add(item: T): number {
    const ticket = this.base + this.items.length
    const due = performance.now() + this.delayMs
    this.items.push(item)
    this.dues.push(due)
    this.live++
    if (this.timer === undefined) this.arm(due)
    return ticket
  }

  /** Cancels the entry of `ticket`; does nothing if it fired or was cancelled already. */
  cancel(ticket: number): void {
    const at = ticket - this.base
    if (at < this.head || at >= this.items.length || this.items[at] === undefined) return
    this.items[at] = undefined
    if (--this.live === 0) this.reset()
  }

  private arm(due: number): void {
    this.timerDue = due
    this.timer = setTimeout(this.expire, Math.max(0, due - performance.now()))
  }

  private readonly expire = (): void => {
    this.timer = undefined
    this.timerDue = Infinity
    const now = performance.now()
    // A callback that throws must not strand the entries after it: they fire, the timer is set
    // again, and only then is the first error thrown, as a timer of its own would have thrown it.
    let failed = false
    let failure: unknown
    while (this.head < this.items.length && this.dues[this.head]! <= now) {
      const item = this.items[this.head]
      this.items[this.head] = undefined
      this.head++
      if (item === undefined) continue
      this.live--
      try {
        this.fire(item)
      } catch (error) {
        if (!failed) failure = error
        failed = true
      }
    }
    this.compact()
    // fire() may have added entries (and armed the timer for them) or cancelled some.
    if (this.live === 0) {
      this.reset()
    } else {
      while (this.items[this.head] === undefined) this.head++
      const next = this.dues[this.head]!
      if (this.timer === undefined || next < this.timerDue) {
        clearTimeout(this.timer)
        this.arm(next)
      }
    }
    if (failed) throw failure
  }

  /** Drops the slots before `head` once they are most of the arrays. */
  private compact(): void {
    if (this.head < 1024 || this.head * 2 < this.items.length) return
    this.items = this.items.slice(this.head)
    this.dues = this.dues.slice(this.head)
    this.base += this.head
    this.head = 0
  }

  /** No live entry: no timer, and the slots are dropped. */
  private reset(): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerDue = Infinity
    this.base += this.items.length
    this.items = []
    this.dues = []
    this.head = 0
  }
}
