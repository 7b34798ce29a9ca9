import { isDefinite, type Attempt } from './history.js'
import type { LogEvent, LogView } from './log.js'
import {
  apply,
  decide,
  eventCount,
  invariantHolds,
  partitionOf,
  type AccountState,
  type ModelCommand,
  type ModelEvent,
} from './model.js'
import type { CheckpointSample, StoreView } from './store-view.js'

/** The checks, numbered as in the fault suite's specification. */
export const CHECKS = [
  'accepted-in-log', // 1. an acknowledged command has its events exactly once, ending at the version the caller was told
  'one-application', // 2. no command id applied twice; every event caused by a command a client sent, at the offset it records
  'versions', // 3. per aggregate, versions 1..n in log order, in the aggregate's partition
  'refusals', // 4. no events for a refused command; no command answered both ways
  'invariant', // 5. the invariant holds after every event; each event decided on the state the log implies
  'snapshots', // 6. snapshots equal the fold; checkpoints within the log and never ahead of the snapshots
  'outcomes', // 7. outcomes served to retries, and stored, agree with the log
  'liveness', // 8. after healing, every partition answers a new command (filled in by the harness)
] as const

/** One of {@link CHECKS}. */
export type CheckName = (typeof CHECKS)[number]

/** One thing the checker found wrong. */
export interface Violation {
  check: CheckName
  message: string
  aggregateId?: string
  commandId?: string
  partition?: number
  offset?: number
}

/** What the checker reads. */
export interface CheckInput {
  /** Every attempt every client recorded. */
  history: Attempt[]
  /** Both topics read from offset 0. */
  log: LogView
  /** Partition count of the stream. */
  partitions: number
  /** The store read once everything was quiet; without it the quiet snapshot checks are skipped. */
  store?: StoreView
  /** Checkpoints sampled while the load ran. */
  samples?: CheckpointSample[]
  /**
   * Every partition has handled a command since the last fault (the harness's liveness probes),
   * so a partition with events must have a checkpoint again.
   */
  healed?: boolean
  /** Details kept per check (all are counted). Default 20. */
  detailsPerCheck?: number
}

/** What the checker found. */
export interface CheckReport {
  /** Violations per check (0 everywhere means the run is correct). */
  counts: Record<CheckName, number>
  /** The first violations of each check. */
  details: Violation[]
  stats: {
    attempts: number
    commandIds: number
    accepted: number
    refused: number
    timeouts: number
    errors: number
    events: number
    aggregates: number
    applications: number
    samples: number
  }
}

interface Envelope {
  commandId: string
  aggregateId: string
  type: string
  kind: 'create' | 'update'
  expectedVersion?: number
  payload: Record<string, unknown>
}

interface Application {
  aggregateId: string
  partition: number
  commandId: string
  commandOffset: number | undefined
  events: LogEvent[]
  expected: number
  command: ModelCommand | undefined
}

interface FoldStep {
  version: number
  offset: number
  state: AccountState
}

interface Fold {
  partition: number
  version: number
  state: AccountState | undefined
  steps: FoldStep[]
}

/** Checks a history, the log and the store against each other. Pure: no I/O. */
export function check(input: CheckInput): CheckReport {
  const counts = Object.fromEntries(CHECKS.map((c) => [c, 0])) as Record<CheckName, number>
  const details: Violation[] = []
  const keep = input.detailsPerCheck ?? 20
  const report = (v: Violation): void => {
    counts[v.check] += 1
    if (counts[v.check] <= keep) details.push(v)
  }

  // The history, by command id, in the order attempts started.
  const attemptsById = new Map<string, Attempt[]>()
  for (const a of [...input.history].sort((x, y) => x.start - y.start)) {
    const list = attemptsById.get(a.commandId) ?? []
    list.push(a)
    attemptsById.set(a.commandId, list)
  }

  // The command log, by partition and offset.
  const commandAt = input.log.commands.partitions.map((records) => {
    const map = new Map<number, Envelope | undefined>()
    for (const r of records) map.set(r.offset, parseEnvelope(r.value))
    return map
  })

  const folds = new Map<string, Fold>()
  const applicationsById = new Map<string, Application[]>()
  let eventCountTotal = 0
  let applicationCount = 0

  const finish = (app: Application): void => {
    applicationCount += 1
    const list = applicationsById.get(app.commandId) ?? []
    list.push(app)
    applicationsById.set(app.commandId, list)
    const where = { aggregateId: app.aggregateId, commandId: app.commandId, partition: app.partition, offset: app.events[0]!.offset }
    if (app.events.length !== app.expected) {
      report({ check: 'one-application', ...where, message: `an application of ${app.commandId} has ${app.events.length} of the ${app.expected} events its command records` })
    }
    if (!attemptsById.has(app.commandId)) {
      report({ check: 'one-application', ...where, message: `events for command id ${app.commandId}, which no client sent` })
    }
    const envelope = app.commandOffset === undefined ? undefined : commandAt[app.partition]?.get(app.commandOffset)
    if (!envelope || envelope.commandId !== app.commandId || envelope.aggregateId !== app.aggregateId) {
      const found = envelope ? `command ${envelope.commandId} for ${envelope.aggregateId}` : 'no esk command'
      report({ check: 'one-application', ...where, message: `the events of ${app.commandId} record command offset ${String(app.commandOffset)}, where the command log holds ${found}` })
    }

    const fold = folds.get(app.aggregateId) ?? { partition: app.partition, version: 0, state: undefined, steps: [] }
    folds.set(app.aggregateId, fold)
    const events: ModelEvent[] = app.events.map((e) => ({ type: e.type ?? '', payload: parseObject(e.value) ?? {} }))

    // 5: the decision, remade on the state the log implies before this application.
    if (app.command) {
      const decision = decide(fold.state, fold.version, app.command)
      if (!decision.accepted) {
        report({ check: 'invariant', ...where, message: `${app.command.type} of ${app.commandId} was applied at version ${fold.version + 1}, but on the state the log implies it must be refused (${decision.code}${decision.reason ? ` ${decision.reason}` : ''})` })
      } else if (!sameEvents(decision.events, events)) {
        report({ check: 'invariant', ...where, message: `${app.command.type} of ${app.commandId} recorded ${JSON.stringify(events)} where the domain decides ${JSON.stringify(decision.events)}` })
      }
    } else {
      report({ check: 'invariant', ...where, message: `cannot find the command of ${app.commandId} to check its decision` })
    }

    for (const [i, e] of app.events.entries()) {
      const at = { aggregateId: app.aggregateId, commandId: app.commandId, partition: e.partition, offset: e.offset }
      // 3: versions 1..n in log order.
      if (e.version !== fold.version + 1) {
        report({ check: 'versions', ...at, message: `${app.aggregateId}: version ${String(e.version)} at offset ${e.offset} follows version ${fold.version}` })
      }
      fold.version = e.version ?? fold.version + 1
      // 5: the event applies, and the invariant holds after it.
      const applied = apply(fold.state, events[i]!)
      if ('problem' in applied) {
        report({ check: 'invariant', ...at, message: `${app.aggregateId} at offset ${e.offset}: ${applied.problem}` })
      } else {
        fold.state = applied.state
        if (!invariantHolds(applied.state)) {
          report({ check: 'invariant', ...at, message: `${app.aggregateId} at offset ${e.offset}: balance ${applied.state.balance} is below minus the overdraft limit ${applied.state.overdraftLimit}` })
        }
      }
      if (fold.state) fold.steps.push({ version: fold.version, offset: e.offset, state: fold.state })
    }
  }

  // Walk each partition in log order, grouping consecutive events of one command into applications.
  for (let p = 0; p < input.log.events.partitions.length; p++) {
    const open = new Map<string, Application>()
    for (const e of input.log.events.partitions[p]!) {
      eventCountTotal += 1
      if (e.aggregateId === undefined || e.commandId === undefined || e.version === undefined || e.type === undefined) {
        report({ check: 'versions', partition: p, offset: e.offset, message: `record at offset ${e.offset} lacks esk's headers (type, aggregate id, version, command id)` })
        continue
      }
      const where = { aggregateId: e.aggregateId, commandId: e.commandId, partition: p, offset: e.offset }
      if (partitionOf(e.aggregateId, input.partitions) !== p) {
        report({ check: 'versions', ...where, message: `${e.aggregateId} has an event in partition ${p}, not its partition ${partitionOf(e.aggregateId, input.partitions)}` })
      }
      if (e.key !== e.aggregateId) {
        report({ check: 'versions', ...where, message: `the record at offset ${e.offset} has key ${String(e.key)}, not its aggregate id ${e.aggregateId}` })
      }
      const current = open.get(e.aggregateId)
      if (current && current.commandId === e.commandId && current.commandOffset === e.commandOffset && current.events.length < current.expected) {
        current.events.push(e)
      } else {
        if (current) finish(current)
        const envelope = e.commandOffset === undefined ? undefined : commandAt[p]?.get(e.commandOffset)
        const command = envelope && envelope.commandId === e.commandId ? toModelCommand(envelope) : fromHistory(attemptsById.get(e.commandId))
        open.set(e.aggregateId, {
          aggregateId: e.aggregateId,
          partition: p,
          commandId: e.commandId,
          commandOffset: e.commandOffset,
          events: [e],
          expected: command ? eventCount(command) : 1,
          command,
        })
      }
      const app = open.get(e.aggregateId)!
      if (app.events.length === app.expected) {
        finish(app)
        open.delete(e.aggregateId)
      }
    }
    for (const app of open.values()) finish(app)
  }

  // 2: at most one application per command id.
  for (const [commandId, apps] of applicationsById) {
    if (apps.length > 1) {
      const where = apps.map((a) => `${a.aggregateId}@${a.partition}:${a.events[0]!.offset} (v${a.events.at(-1)!.version})`).join(', ')
      report({ check: 'one-application', commandId, aggregateId: apps[0]!.aggregateId, message: `command ${commandId} was applied ${apps.length} times: ${where}` })
    }
  }

  // 1, 4, 7: the answers clients got, against the log.
  let accepted = 0
  let refused = 0
  let timeouts = 0
  let errors = 0
  for (const a of input.history) {
    if (a.result.kind === 'accepted') accepted += 1
    else if (a.result.kind === 'refused') refused += 1
    else if (a.result.kind === 'timeout') timeouts += 1
    else errors += 1
  }
  for (const [commandId, attempts] of attemptsById) {
    const apps = applicationsById.get(commandId) ?? []
    const answers = attempts.filter((a) => isDefinite(a.result))
    const acceptedAnswers = answers.filter((a) => a.result.kind === 'accepted')
    const refusedAnswers = answers.filter((a) => a.result.kind === 'refused')
    const aggregateId = attempts.find((a) => a.aggregateId !== '')?.aggregateId
    const where = { commandId, ...(aggregateId !== undefined && { aggregateId }) }
    if (acceptedAnswers.length > 0 && refusedAnswers.length > 0) {
      report({ check: 'refusals', ...where, message: `command ${commandId} was answered both accepted (${describe(acceptedAnswers[0]!)}) and refused (${describe(refusedAnswers[0]!)})` })
    }
    const first = answers[0]
    if (first?.result.kind === 'accepted') {
      if (apps.length === 0) {
        report({ check: 'accepted-in-log', ...where, message: `command ${commandId} was acknowledged accepted at version ${first.result.version} by ${first.client}, but has no events in the log` })
      } else if (apps.length === 1) {
        const app = apps[0]!
        const last = app.events.at(-1)!.version
        if (last !== first.result.version) {
          report({ check: 'accepted-in-log', ...where, message: `command ${commandId} was acknowledged at version ${first.result.version}, but its events end at version ${String(last)}` })
        }
        if (first.aggregateId !== '' && first.aggregateId !== app.aggregateId) {
          report({ check: 'accepted-in-log', ...where, message: `command ${commandId} was sent for ${first.aggregateId} but its events are on ${app.aggregateId}` })
        }
      }
    } else if (first?.result.kind === 'refused' && apps.length > 0) {
      report({ check: 'refusals', ...where, message: `command ${commandId} was refused (${first.result.code}) but has events at offset ${apps[0]!.events[0]!.offset}` })
    }
    // 7: a retry is told what the first answer said.
    for (const later of answers.slice(1)) {
      if (!first || later.result.kind !== first.result.kind) continue // both ways: reported under 4
      const same =
        later.result.kind === 'accepted'
          ? first.result.kind === 'accepted' && later.result.version === first.result.version
          : first.result.kind === 'refused' && later.result.kind === 'refused' && later.result.code === first.result.code
      if (!same) {
        report({ check: 'outcomes', ...where, message: `a retry of ${commandId} by ${later.client} was told ${describe(later)}, the first answer was ${describe(first)}` })
      }
    }
  }

  // 6 and 7 against the store once quiet.
  if (input.store) checkStore(input, input.store, folds, applicationsById, report)
  // A sampled checkpoint that claimed a missing snapshot is reported once per aggregate (the
  // first sample that shows it), not once per sample.
  const sampled = new Set<string>()
  for (const sample of input.samples ?? []) checkSample(sample, folds, sampled, report)

  return {
    counts,
    details,
    stats: {
      attempts: input.history.length,
      commandIds: attemptsById.size,
      accepted,
      refused,
      timeouts,
      errors,
      events: eventCountTotal,
      aggregates: folds.size,
      applications: applicationCount,
      samples: input.samples?.length ?? 0,
    },
  }
}

function checkStore(
  input: CheckInput,
  store: StoreView,
  folds: Map<string, Fold>,
  applicationsById: Map<string, Application[]>,
  report: (v: Violation) => void,
): void {
  for (let p = 0; p < store.partitions.length; p++) {
    const part = store.partitions[p]!
    const end = input.log.events.ends[p] ?? 0
    const commandEnd = input.log.commands.ends[p] ?? 0
    for (const problem of part.corrupt) report({ check: 'snapshots', partition: p, message: `undecodable value: ${problem}` })
    const checkpoint = part.checkpoint
    const foldsHere = [...folds.entries()].filter(([, f]) => f.partition === p)
    if (checkpoint) {
      if (checkpoint.offset > end) report({ check: 'snapshots', partition: p, message: `checkpoint offset ${checkpoint.offset} is beyond the event log's end ${end}` })
      if (checkpoint.commandPosition >= commandEnd) {
        report({ check: 'snapshots', partition: p, message: `checkpoint command position ${checkpoint.commandPosition} is beyond the command log's end ${commandEnd}` })
      }
    } else if (input.healed && foldsHere.length > 0) {
      report({ check: 'snapshots', partition: p, message: `partition ${p} has events of ${foldsHere.length} aggregates but no checkpoint after healing` })
    }
    for (const [id, snapshot] of part.snapshots) {
      const fold = folds.get(id)
      const where = { aggregateId: id, partition: p }
      if (!fold) {
        report({ check: 'snapshots', ...where, message: `snapshot of ${id} (version ${snapshot.version}) but the log has no events for it` })
        continue
      }
      if (fold.partition !== p) report({ check: 'snapshots', ...where, message: `snapshot of ${id} is in partition ${p}, its events in ${fold.partition}` })
      const step = fold.steps.find((s) => s.version === snapshot.version)
      if (!step) {
        report({ check: 'snapshots', ...where, message: `snapshot of ${id} is at version ${snapshot.version}, the log has versions 1..${fold.version}` })
        continue
      }
      if (snapshot.offset !== step.offset) {
        report({ check: 'snapshots', ...where, message: `snapshot of ${id} at version ${snapshot.version} records offset ${snapshot.offset}, the log has that version at ${step.offset}` })
      }
      if (!sameState(snapshot.state, step.state)) {
        report({ check: 'snapshots', ...where, message: `snapshot of ${id} at version ${snapshot.version} holds ${JSON.stringify(snapshot.state)}, the fold gives ${JSON.stringify(step.state)}` })
      }
      const nextStep = fold.steps.find((s) => s.version === snapshot.version + 1)
      if (nextStep && checkpoint && nextStep.offset < checkpoint.offset) {
        report({ check: 'snapshots', ...where, message: `snapshot of ${id} is at version ${snapshot.version} but the checkpoint (${checkpoint.offset}) claims its version ${nextStep.version} at offset ${nextStep.offset}` })
      }
      const storedOffset = part.offsets.get(id)
      if (storedOffset !== undefined && storedOffset !== snapshot.offset) {
        report({ check: 'snapshots', ...where, message: `the offsets hash says ${storedOffset} for ${id}, its snapshot says ${snapshot.offset}` })
      }
      // 7: the dedup window kept with the snapshot names commands applied to this aggregate.
      for (const commandId of snapshot.recent) {
        if (!(applicationsById.get(commandId) ?? []).some((a) => a.aggregateId === id)) {
          report({ check: 'outcomes', ...where, commandId, message: `the snapshot of ${id} lists ${commandId} as applied, the log has no events of it on ${id}` })
        }
      }
    }
    if (checkpoint) {
      for (const [id, fold] of foldsHere) {
        if (!part.snapshots.has(id) && fold.steps[0] && fold.steps[0].offset < checkpoint.offset) {
          report({ check: 'snapshots', aggregateId: id, partition: p, message: `no snapshot of ${id}, although the checkpoint (${checkpoint.offset}) claims its events from offset ${fold.steps[0].offset}` })
        }
      }
    }
    // 7: stored outcomes agree with the log.
    for (const outcome of part.outcomes) {
      const apps = applicationsById.get(outcome.commandId) ?? []
      const where = { commandId: outcome.commandId, partition: p, ...(outcome.aggregateId !== undefined && { aggregateId: outcome.aggregateId }) }
      if (outcome.status === 'rejected' && apps.length > 0) {
        report({ check: 'outcomes', ...where, message: `${outcome.where} records a refusal (${String(outcome.code)}) for ${outcome.commandId}, which has events in the log` })
      }
      if (outcome.status === 'accepted') {
        const app = apps.find((a) => outcome.aggregateId === undefined || a.aggregateId === outcome.aggregateId)
        if (!app) report({ check: 'outcomes', ...where, message: `${outcome.where} records ${outcome.commandId} as accepted, the log has no events of it` })
        else if (outcome.version !== undefined && app.events.at(-1)!.version !== outcome.version) {
          report({ check: 'outcomes', ...where, message: `${outcome.where} records ${outcome.commandId} accepted at version ${outcome.version}, its events end at ${String(app.events.at(-1)!.version)}` })
        }
      }
    }
  }
}

/** A checkpoint sampled while running must not claim events whose snapshots were missing or older. */
function checkSample(sample: CheckpointSample, folds: Map<string, Fold>, seen: Set<string>, report: (v: Violation) => void): void {
  const checkpoint = sample.checkpoint
  if (!checkpoint) return
  for (const [id, fold] of folds) {
    if (fold.partition !== sample.partition) continue
    let claimed: FoldStep | undefined
    for (const step of fold.steps) if (step.offset < checkpoint.offset) claimed = step
    if (!claimed) continue
    const stored = sample.offsets[id]
    if ((stored === undefined || stored < claimed.offset) && !seen.has(id)) {
      seen.add(id)
      report({
        check: 'snapshots',
        aggregateId: id,
        partition: sample.partition,
        message: `at ${new Date(sample.at).toISOString()} the checkpoint of partition ${sample.partition} (${checkpoint.offset}) claimed ${id} up to offset ${claimed.offset}, but its snapshot was ${stored === undefined ? 'missing' : `at offset ${stored}`}`,
      })
    }
  }
}

function parseEnvelope(text: string): Envelope | undefined {
  const raw = parseObject(text)
  if (!raw) return undefined
  if (typeof raw.commandId !== 'string' || typeof raw.aggregateId !== 'string' || typeof raw.type !== 'string') return undefined
  if (raw.kind !== 'create' && raw.kind !== 'update') return undefined
  const payload = typeof raw.payload === 'object' && raw.payload !== null ? (raw.payload as Record<string, unknown>) : {}
  return {
    commandId: raw.commandId,
    aggregateId: raw.aggregateId,
    type: raw.type,
    kind: raw.kind,
    payload,
    ...(typeof raw.expectedVersion === 'number' && { expectedVersion: raw.expectedVersion }),
  }
}

function toModelCommand(envelope: Envelope): ModelCommand {
  return {
    type: envelope.type,
    payload: envelope.payload,
    kind: envelope.kind,
    ...(envelope.expectedVersion !== undefined && { expectedVersion: envelope.expectedVersion }),
  }
}

function fromHistory(attempts: Attempt[] | undefined): ModelCommand | undefined {
  const a = attempts?.[0]
  if (!a) return undefined
  const { type, ...payload } = a.payload
  return { type, payload, kind: a.op === 'save' ? 'create' : 'update', ...(a.expectedVersion !== undefined && { expectedVersion: a.expectedVersion }) }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

function sameEvents(expected: ModelEvent[], actual: ModelEvent[]): boolean {
  return (
    expected.length === actual.length &&
    expected.every((e, i) => e.type === actual[i]!.type && Object.entries(e.payload).every(([k, v]) => actual[i]!.payload[k] === v))
  )
}

function sameState(stored: Record<string, unknown> | undefined, fold: AccountState): boolean {
  return stored !== undefined && stored.owner === fold.owner && stored.balance === fold.balance && stored.overdraftLimit === fold.overdraftLimit
}

function describe(a: Attempt): string {
  const r = a.result
  return r.kind === 'accepted' ? `accepted v${r.version}` : r.kind === 'refused' ? `refused ${r.code}` : r.kind
}
