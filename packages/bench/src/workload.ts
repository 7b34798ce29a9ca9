/** The workloads of the suite: which aggregate each command goes to, and what it carries. */
import { seededRandom } from '@esk/testing'
import { Zipf } from './zipf.js'

/** A workload as the client process runs it. */
export interface Workload {
  name: string
  /**
   * How keys are picked among `aggregates` pre-created ones: uniformly, Zipf-skewed (rank 0 the
   * hottest), always the first one, or a new aggregate per command (creation-heavy).
   */
  keys: 'uniform' | 'zipf' | 'hot' | 'new'
  aggregates: number
  zipfExponent?: number
  /** Share of commands the processor refuses (a negative deposit). */
  refusedFraction?: number
  /** Event (and command) payload padding, bytes, uniformly in [min, max]. */
  eventBytes?: [number, number]
  /** Concurrent `find` calls beside the command load (their latency is reported apart). */
  findInFlight?: number
}

/** One command to send. */
export interface NextCommand {
  kind: 'create' | 'deposit'
  id: string
  amount: number
  note: string
}

/** The id of pre-created aggregate `rank`. */
export const aggregateId = (rank: number): string => `a${rank}`

/** Produces the commands of a workload, deterministically for a seed. */
export class CommandSource {
  private readonly random: () => number
  private readonly zipf: Zipf | undefined
  private created = 0
  private readonly notes = new Map<number, string>()

  constructor(
    readonly workload: Workload,
    seed: number,
    /** Distinguishes the new ids of one run from another's. */
    private readonly tag: string,
  ) {
    this.random = seededRandom(seed)
    this.zipf = workload.keys === 'zipf' ? new Zipf(workload.aggregates, workload.zipfExponent ?? 0.99, this.random) : undefined
  }

  /** An existing aggregate's id, by the workload's key distribution. */
  pickExisting(): string {
    switch (this.workload.keys) {
      case 'hot':
        return aggregateId(0)
      case 'zipf':
        return aggregateId(this.zipf!.next())
      default:
        return aggregateId(Math.floor(this.random() * this.workload.aggregates))
    }
  }

  next(): NextCommand {
    if (this.workload.keys === 'new') return { kind: 'create', id: `n${this.tag}-${this.created++}`, amount: 0, note: '' }
    const refused = this.random() < (this.workload.refusedFraction ?? 0)
    return { kind: 'deposit', id: this.pickExisting(), amount: refused ? -1 : 1, note: this.note() }
  }

  private note(): string {
    const range = this.workload.eventBytes
    if (!range) return ''
    const size = range[0] + Math.floor(this.random() * (range[1] - range[0] + 1))
    let note = this.notes.get(size)
    if (note === undefined) this.notes.set(size, (note = 'x'.repeat(size)))
    return note
  }
}
