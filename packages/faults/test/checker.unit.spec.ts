import { describe, expect, it } from 'vitest'
import { check, CHECKS, type CheckInput, type CheckName } from '../src/checker.js'
import { partitionOf } from '../src/model.js'
import { cmd, World } from './world.js'

/** A world with opens, deposits, withdrawals, a refusal, a version conflict and a multi-event command. */
function busyWorld(): World {
  const w = new World(3)
  for (const id of ['a1', 'a2', 'a3', 'a4', 'a5']) w.run('save', id, cmd.open(id, 100, 50))
  w.run('update', 'a1', cmd.deposit(10), { expectedVersion: 1 })
  w.run('update', 'a1', cmd.withdraw(150))
  w.run('update', 'a1', cmd.withdraw(100)) // refused: 10 + 50 available
  w.run('update', 'a2', cmd.deposit(5), { expectedVersion: 7 }) // refused: version conflict
  w.run('update', 'a3', cmd.depositMany([1, 2, 3]))
  w.run('update', 'a4', cmd.limit(0))
  w.run('save', 'a5', cmd.open('again')) // refused: exists
  w.run('update', 'zz', cmd.deposit(1)) // refused: not found
  return w
}

function run(w: World, extra: Partial<CheckInput> = {}) {
  return check({ history: w.history, log: w.log(), partitions: w.partitions, store: w.store(), healed: true, ...extra })
}

function only(counts: Record<CheckName, number>, ...names: CheckName[]): void {
  for (const name of CHECKS) {
    if (names.includes(name)) expect(counts[name], `${name} should report`).toBeGreaterThan(0)
    else expect(counts[name], `${name} should stay quiet`).toBe(0)
  }
}

describe('checker', () => {
  it('passes a correct history, log and store', () => {
    const w = busyWorld()
    const r = run(w)
    only(r.counts)
    expect(r.stats.accepted).toBe(9)
    expect(r.stats.refused).toBe(4)
    expect(r.stats.events).toBe(11)
    expect(r.stats.aggregates).toBe(5)
  })

  it('accepts an indeterminate command applied once, or never, and a retry told the same answer', () => {
    const w = busyWorld()
    const applied = w.run('update', 'a2', cmd.deposit(7), { commandId: 'lost-1' })
    w.history.pop()
    w.record({ ...applied, result: { kind: 'timeout' } })
    w.record({ ...applied, result: applied.result }) // the retry, answered from the record
    w.record({ client: 'c1', op: 'update', aggregateId: 'a2', commandId: 'lost-2', payload: cmd.deposit(1), result: { kind: 'timeout' } })
    w.record({ client: 'c1', op: 'update', aggregateId: 'a2', commandId: 'lost-3', payload: cmd.deposit(1), result: { kind: 'error', code: 'ESK_CLOSED' } })
    only(run(w).counts)
  })

  it('reports a command whose events were written twice', () => {
    const w = busyWorld()
    const a = w.run('update', 'a1', cmd.deposit(3))
    const p = partitionOf('a1', w.partitions)
    const first = w.events[p]!.at(-1)!
    // The same command record processed again by a second writer: same id, same command offset.
    w.appendEvent(p, { aggregateId: 'a1', version: first.version! + 1, commandId: a.commandId, commandOffset: first.commandOffset!, type: first.type!, value: first.value })
    const r = run(w, { store: undefined })
    only(r.counts, 'one-application')
    expect(r.details.find((d) => d.check === 'one-application')?.message).toMatch(/applied 2 times/)
  })

  it('reports an accepted command missing from the log, and one told the wrong version', () => {
    const w = busyWorld()
    w.record({ client: 'c2', op: 'update', aggregateId: 'a1', commandId: 'ghost', payload: cmd.deposit(1), result: { kind: 'accepted', version: 9 } })
    const a = w.run('update', 'a2', cmd.deposit(1))
    ;(a.result as { version: number }).version = 5
    const r = run(w)
    only(r.counts, 'accepted-in-log')
    expect(r.counts['accepted-in-log']).toBe(2)
  })

  it('reports a version gap, a repeated version, and an event outside its partition', () => {
    const w = busyWorld()
    const p = partitionOf('a1', w.partitions)
    const offset = w.logCommand('update', 'a1', 'gap', cmd.deposit(1))
    w.record({ client: 'c1', op: 'update', aggregateId: 'a1', commandId: 'gap', payload: cmd.deposit(1), result: { kind: 'timeout' } })
    w.appendEvent(p, { aggregateId: 'a1', version: 9, commandId: 'gap', commandOffset: offset, type: 'faults.MoneyDeposited', value: '{"amount":1}' })
    expect(run(w, { store: undefined }).counts.versions).toBe(1)

    const other = (p + 1) % w.partitions
    w.appendEvent(other, { aggregateId: 'a1', version: 10, commandId: 'gap', commandOffset: offset, type: 'faults.MoneyDeposited', value: '{"amount":1}' })
    const r = run(w, { store: undefined })
    expect(r.counts.versions).toBeGreaterThanOrEqual(2)
    expect(r.details.some((d) => /not its partition/.test(d.message))).toBe(true)
  })

  it('reports events for a refused command, and a command answered both ways', () => {
    const w = busyWorld()
    const refused = w.history.find((a) => a.result.kind === 'refused' && a.payload.type === 'faults.Withdraw')!
    const p = partitionOf(refused.aggregateId, w.partitions)
    const cmdOffset = w.commands[p]!.findIndex((c) => c.value.includes(refused.commandId))
    w.appendEvent(p, { aggregateId: refused.aggregateId, version: 4, commandId: refused.commandId, commandOffset: cmdOffset, type: 'faults.MoneyDeposited', value: '{"amount":1}' })
    const r = run(w, { store: undefined })
    expect(r.counts.refusals).toBe(1)

    const w2 = busyWorld()
    const accepted = w2.history.find((a) => a.result.kind === 'accepted' && a.aggregateId === 'a5')!
    w2.record({ ...accepted, result: { kind: 'refused', code: 'ESK_AGGREGATE_EXISTS' } })
    only(run(w2).counts, 'refusals')
  })

  it('reports a withdrawal past the overdraft limit, a second creation, and an expectedVersion that did not hold', () => {
    const w = busyWorld()
    const p = partitionOf('a2', w.partitions)
    const o1 = w.logCommand('update', 'a2', 'overdraw', cmd.withdraw(1000))
    w.record({ client: 'c1', op: 'update', aggregateId: 'a2', commandId: 'overdraw', payload: cmd.withdraw(1000), result: { kind: 'accepted', version: 2 } })
    w.appendEvent(p, { aggregateId: 'a2', version: 2, commandId: 'overdraw', commandOffset: o1, type: 'faults.MoneyWithdrawn', value: '{"amount":1000}' })
    const r = run(w, { store: undefined })
    only(r.counts, 'invariant')
    expect(r.details.some((d) => /must be refused/.test(d.message))).toBe(true)
    expect(r.details.some((d) => /below minus the overdraft limit/.test(d.message))).toBe(true)

    const w2 = busyWorld()
    const p2 = partitionOf('a4', w2.partitions)
    const o2 = w2.logCommand('save', 'a4', 'reopen', cmd.open('a4'))
    w2.record({ client: 'c1', op: 'save', aggregateId: 'a4', commandId: 'reopen', payload: cmd.open('a4'), result: { kind: 'accepted', version: 1 } })
    w2.appendEvent(p2, { aggregateId: 'a4', version: 1, commandId: 'reopen', commandOffset: o2, type: 'faults.AccountOpened', value: JSON.stringify({ owner: 'a4', initialDeposit: 100, overdraftLimit: 50 }) })
    const r2 = run(w2, { store: undefined })
    expect(r2.counts.invariant).toBeGreaterThan(0)
    expect(r2.counts.versions).toBe(1) // versions 1, 2, 1
    expect(r2.details.some((d) => /second AccountOpened/.test(d.message))).toBe(true)

    const w3 = busyWorld()
    const p3 = partitionOf('a5', w3.partitions)
    const o3 = w3.logCommand('update', 'a5', 'stale', cmd.deposit(1), 0)
    w3.record({ client: 'c1', op: 'update', aggregateId: 'a5', commandId: 'stale', expectedVersion: 0, payload: cmd.deposit(1), result: { kind: 'accepted', version: 2 } })
    w3.appendEvent(p3, { aggregateId: 'a5', version: 2, commandId: 'stale', commandOffset: o3, type: 'faults.MoneyDeposited', value: '{"amount":1}' })
    only(run(w3, { store: undefined }).counts, 'invariant')
  })

  it('reports events of a command no client sent, and a command offset that points elsewhere', () => {
    const w = busyWorld()
    const p = partitionOf('a1', w.partitions)
    w.appendEvent(p, { aggregateId: 'a1', version: 4, commandId: 'nobody', commandOffset: 0, type: 'faults.MoneyDeposited', value: '{"amount":1}' })
    const r = run(w, { store: undefined })
    expect(r.counts['one-application']).toBe(2)
    expect(r.details.some((d) => /no client sent/.test(d.message))).toBe(true)
    expect(r.details.some((d) => /command log holds/.test(d.message))).toBe(true)
  })

  it('reports a snapshot that differs from the fold, a missing one, and checkpoints past the log', () => {
    const w = busyWorld()
    const store = w.store()
    const p1 = partitionOf('a1', w.partitions)
    store.partitions[p1]!.snapshots.get('a1')!.state!.balance = 1_000_000
    expect(only(run(w, { store }).counts, 'snapshots'))

    const s2 = w.store()
    const p3 = partitionOf('a3', w.partitions)
    s2.partitions[p3]!.snapshots.delete('a3')
    const r2 = run(w, { store: s2 })
    only(r2.counts, 'snapshots')
    expect(r2.details[0]!.message).toMatch(/no snapshot of a3/)

    const s3 = w.store()
    const p4 = partitionOf('a4', w.partitions)
    s3.partitions[p4]!.checkpoint!.offset += 100
    s3.partitions[p4]!.snapshots.get('a4')!.version = 7
    const r3 = run(w, { store: s3 })
    expect(r3.counts.snapshots).toBe(2)

    const s4 = w.store()
    s4.partitions[p4]!.checkpoint = undefined
    expect(run(w, { store: s4 }).counts.snapshots).toBe(1)
    expect(run(w, { store: s4, healed: false }).counts.snapshots).toBe(0)
  })

  it('reports a sampled checkpoint that claimed events whose snapshot was missing', () => {
    const w = busyWorld()
    const p = partitionOf('a1', w.partitions)
    const end = w.log().events.ends[p]!
    const good = { at: 1, partition: p, checkpoint: { offset: end, commandPosition: 0, schemaVersion: 1 }, offsets: Object.fromEntries(w.store().partitions[p]!.offsets) }
    const bad = { ...good, offsets: {} }
    only(run(w, { samples: [good] }).counts)
    only(run(w, { samples: [good, bad] }).counts, 'snapshots')
  })

  it('reports a retry told another answer than the first, and stored outcomes that disagree with the log', () => {
    const w = busyWorld()
    const a = w.history.find((x) => x.result.kind === 'accepted' && x.aggregateId === 'a3' && x.payload.type === 'faults.DepositMany')!
    w.record({ ...a, client: 'c9', result: { kind: 'accepted', version: 2 } })
    only(run(w).counts, 'outcomes')

    const w2 = busyWorld()
    const store = w2.store()
    const accepted = w2.history.find((x) => x.result.kind === 'accepted' && x.aggregateId === 'a1')!
    const p = partitionOf('a1', w2.partitions)
    store.partitions[p]!.outcomes.push({ commandId: accepted.commandId, aggregateId: 'a1', status: 'rejected', code: 'ESK_AGGREGATE_EXISTS', where: 'test' })
    store.partitions[p]!.outcomes.push({ commandId: 'never-applied', aggregateId: 'a1', status: 'accepted', version: 3, where: 'test' })
    store.partitions[p]!.snapshots.get('a1')!.recent.push('not-on-a1')
    const r = run(w2, { store })
    only(r.counts, 'outcomes')
    expect(r.counts.outcomes).toBe(3)
  })
})
