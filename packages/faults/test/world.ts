import type { Attempt, AttemptResult } from '../src/history.js'
import type { LogCommand, LogEvent, LogView } from '../src/log.js'
import { apply, decide, partitionOf, type AccountState, type ModelCommand } from '../src/model.js'
import type { PartitionStore, StoreView } from '../src/store-view.js'

/**
 * A hand-built, consistent world for checker tests: commands are decided with the model, their
 * events appended to an in-memory log, attempts recorded, and a store view built from the fold.
 * Tests then break one thing and expect the matching check to say so.
 */
export class World {
  readonly events: LogEvent[][]
  readonly commands: LogCommand[][]
  readonly history: Attempt[] = []
  private readonly states = new Map<string, { state: AccountState; version: number; offset: number }>()
  private clock = 1_000
  private seq = 0

  constructor(readonly partitions = 3) {
    this.events = Array.from({ length: partitions }, () => [])
    this.commands = Array.from({ length: partitions }, () => [])
  }

  /** Sends a command through a correct "processor": logs it, decides it, appends its events, records the answer. */
  run(op: 'save' | 'update', aggregateId: string, payload: { type: string } & Record<string, unknown>, options: { expectedVersion?: number; commandId?: string; client?: string } = {}): Attempt {
    const commandId = options.commandId ?? `cmd-${++this.seq}`
    const offset = this.logCommand(op, aggregateId, commandId, payload, options.expectedVersion)
    const p = partitionOf(aggregateId, this.partitions)
    const current = this.states.get(aggregateId)
    const { type, ...fields } = payload
    const command: ModelCommand = { type, payload: fields, kind: op === 'save' ? 'create' : 'update', ...(options.expectedVersion !== undefined && { expectedVersion: options.expectedVersion }) }
    const decision = decide(current?.state, current?.version ?? 0, command)
    let result: AttemptResult
    if (decision.accepted) {
      let state = current?.state
      let version = current?.version ?? 0
      let last = 0
      for (const e of decision.events) {
        const applied = apply(state, e)
        if ('problem' in applied) throw new Error(applied.problem)
        state = applied.state
        version += 1
        last = this.appendEvent(p, { aggregateId, version, commandId, commandOffset: offset, type: e.type, value: JSON.stringify(e.payload) })
      }
      this.states.set(aggregateId, { state: state!, version, offset: last })
      result = { kind: 'accepted', version }
    } else {
      result = { kind: 'refused', code: decision.code, ...(decision.reason && { reason: decision.reason }) }
    }
    return this.record({ client: options.client ?? 'c1', op, aggregateId, commandId, ...(options.expectedVersion !== undefined && { expectedVersion: options.expectedVersion }), payload, result })
  }

  /** Records an attempt without touching the log. */
  record(attempt: Omit<Attempt, 'start' | 'end'>): Attempt {
    const full = { ...attempt, start: this.clock, end: this.clock + 5 } as Attempt
    this.clock += 10
    this.history.push(full)
    return full
  }

  /** Appends a command record and returns its offset. */
  logCommand(op: 'save' | 'update', aggregateId: string, commandId: string, payload: { type: string } & Record<string, unknown>, expectedVersion?: number): number {
    const p = partitionOf(aggregateId, this.partitions)
    const { type, ...fields } = payload
    const offset = this.commands[p]!.length
    this.commands[p]!.push({
      partition: p,
      offset,
      value: JSON.stringify({ commandId, type, aggregateId, kind: op === 'save' ? 'create' : 'update', ...(expectedVersion !== undefined && { expectedVersion }), payload: fields, sentAt: 0 }),
    })
    return offset
  }

  /** Appends an event record (as any producer could) and returns its offset. */
  appendEvent(partition: number, e: { aggregateId: string; version: number; commandId: string; commandOffset: number; type: string; value: string; key?: string }): number {
    const list = this.events[partition]!
    const offset = list.length === 0 ? 0 : list.at(-1)!.offset + 2 // a transaction marker after each
    list.push({ partition, offset, key: e.key ?? e.aggregateId, type: e.type, aggregateId: e.aggregateId, version: e.version, commandId: e.commandId, commandOffset: e.commandOffset, value: e.value })
    return offset
  }

  /** The log as the checker reads it. */
  log(): LogView {
    const ends = (lists: { offset: number }[][]) => lists.map((l) => (l.length === 0 ? 0 : l.at(-1)!.offset + 2))
    return {
      events: { topic: 'events', partitions: this.events, ends: ends(this.events) },
      commands: { topic: 'commands', partitions: this.commands, ends: this.commands.map((l) => l.length) },
    }
  }

  /** A store that matches the log exactly, with checkpoints at each partition's end. */
  store(): StoreView {
    const partitions: PartitionStore[] = Array.from({ length: this.partitions }, () => ({ snapshots: new Map(), offsets: new Map(), outcomes: [], corrupt: [] }))
    for (const [id, s] of this.states) {
      const part = partitions[partitionOf(id, this.partitions)]!
      part.snapshots.set(id, { aggregateId: id, version: s.version, offset: s.offset, schemaVersion: 1, state: { ...s.state }, recent: [] })
      part.offsets.set(id, s.offset)
    }
    const ends = this.log().events.ends
    partitions.forEach((part, p) => {
      if (ends[p]! > 0) part.checkpoint = { offset: ends[p]!, commandPosition: this.commands[p]!.length - 1, schemaVersion: 1 }
    })
    return { partitions }
  }
}

/** Command payloads of the accounts domain. */
export const cmd = {
  open: (owner = 'ada', initialDeposit = 100, overdraftLimit = 50) => ({ type: 'faults.OpenAccount', owner, initialDeposit, overdraftLimit }),
  deposit: (amount: number) => ({ type: 'faults.Deposit', amount }),
  depositMany: (amounts: number[]) => ({ type: 'faults.DepositMany', amounts }),
  withdraw: (amount: number) => ({ type: 'faults.Withdraw', amount }),
  limit: (limit: number) => ({ type: 'faults.ChangeOverdraftLimit', limit }),
}
