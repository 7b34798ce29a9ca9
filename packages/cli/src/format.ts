import type { InspectReport } from './commands/inspect.js'
import type { DeadLetterDetail, DeadLetterEntry, ReplayReport } from './commands/dlq.js'
import type { OutcomeReport } from './commands/outcome.js'
import type { ProjectionReport as ProjectionActionReport } from './commands/projection.js'
import type { RebuildReport } from './commands/rebuild.js'
import type { StatusReport } from './commands/status.js'
import type { TopicsReport } from './commands/topics.js'

/** Lays rows out in columns under a header line, each column as wide as its widest cell. */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = rows.map((row) => headers.map((_, i) => cell(row[i])))
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)))
  const line = (row: string[]): string => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()
  return [line(headers), ...cells.map(line)].join('\n')
}

function cell(value: string | number | null | undefined): string {
  return value === null || value === undefined ? '-' : String(value)
}

/** The first 8 characters of an owner token: enough to tell two apart. */
export function shortToken(token: string | null): string | null {
  return token === null ? null : token.length > 8 ? token.slice(0, 8) : token
}

/** `esk status` as text. */
export function formatStatus(report: StatusReport): string {
  const parts: string[] = []
  if (report.aggregates.length === 0) parts.push('no aggregate types found (configure aggregates, or check --topic-prefix)')
  for (const a of report.aggregates) {
    parts.push(`${a.aggregate}: ${a.partitions} partitions, group ${a.group.id} ${a.group.state} with ${a.group.members} member(s)`)
    if (a.rows.length === 0) continue
    parts.push(
      table(
        ['partition', 'ready', 'owner', 'member', 'checkpoint', 'event end', 'commands end', 'committed', 'lag'],
        a.rows.map((r) => [
          r.partition,
          r.ready ? 'yes' : 'no',
          shortToken(r.owner),
          r.member,
          r.checkpoint ? `${r.checkpoint.offset} (cmd ${r.checkpoint.commandPosition})` : null,
          r.eventEnd,
          r.commandEnd,
          r.committed,
          r.lag,
        ]),
      ),
    )
  }
  if (report.projections.length > 0) {
    parts.push('read models:')
    parts.push(
      table(
        ['name', 'kind', 'version', 'live', 'caught up', 'lag', 'note'],
        report.projections.map((p) => [
          p.name,
          p.kind,
          p.version,
          p.live ? `gen ${p.live.id} v${p.live.version}` : p.error ? null : 'none',
          p.caughtUp === undefined ? null : p.caughtUp ? 'yes' : 'no',
          p.lag,
          p.error ?? (p.scope === 'global' ? "global: in each instance's memory" : null),
        ]),
      ),
    )
  }
  return parts.join('\n')
}

/** `esk inspect` as text. */
export function formatInspect(report: InspectReport): string {
  const lines = [`${report.aggregate} ${report.id} (partition ${report.partition}): ${report.events.length} event(s) in the log`]
  if (report.events.length > 0) {
    lines.push(
      table(
        ['offset', 'version', 'type', 'command', 'payload'],
        report.events.map((e) => [e.offset, e.version, e.type, e.commandId, JSON.stringify(e.payload)]),
      ),
    )
  }
  if (report.snapshot) {
    const s = report.snapshot
    lines.push(
      `snapshot: version ${s.version}, offset ${s.offset}, schema ${s.schemaVersion}, ${s.recent.length} recent command(s)` +
        `${report.ready ? '' : ' (partition not ready: being rebuilt)'}`,
    )
    lines.push(`state: ${JSON.stringify(s.state)}`)
  } else {
    lines.push(`snapshot: none${report.ready ? '' : ' (partition not ready: being rebuilt)'}`)
  }
  const verdicts = { agree: 'events and snapshot agree', disagree: 'events and snapshot DISAGREE', unchecked: 'not compared', empty: 'no such aggregate' }
  lines.push(`${verdicts[report.verdict]}${report.difference ? `: ${report.difference}` : ''}`)
  return lines.join('\n')
}

/** `esk rebuild` as text. */
export function formatRebuild(report: RebuildReport): string {
  return table(
    ['partition', 'result', 'events replayed', 'held by', 'seconds'],
    report.partitions.map((p) => [
      p.partition,
      p.result === 'rebuilt' ? 'rebuilt' : 'finished by its processor',
      p.events,
      p.heldBy,
      (p.elapsedMs / 1000).toFixed(1),
    ]),
  )
}

/** `esk projection reset|rebuild` as text. */
export function formatProjection(report: ProjectionActionReport): string {
  if (report.action === 'reset') return `read model ${report.name} reset: every process running it starts again from the first event`
  const r = report.rebuild!
  return `read model ${report.name} rebuilt: generation ${r.generation} is live, ${r.events} event(s) in ${(r.elapsedMs / 1000).toFixed(1)} s`
}

/** `esk dlq list` as text. */
export function formatDeadLetters(entries: DeadLetterEntry[]): string {
  if (entries.length === 0) return 'no dead letters'
  return table(
    ['aggregate', 'entry', 'at', 'code', 'type', 'aggregate id', 'command id', 'reason'],
    entries.map((e) => [e.aggregate, e.entry, e.at, e.code, e.type, e.aggregateId, e.commandId, truncate(e.reason, 60)]),
  )
}

/** `esk dlq show` as text. */
export function formatDeadLetter(entry: DeadLetterDetail): string {
  return [
    `${entry.aggregate} dead letter ${entry.entry} (command offset ${entry.commandOffset ?? '-'}), ${entry.at}`,
    `code: ${entry.code ?? '-'}`,
    `reason: ${entry.reason ?? '-'}`,
    `aggregate id: ${entry.aggregateId ?? '-'}`,
    `command id: ${entry.commandId ?? '-'}`,
    `command: ${JSON.stringify(entry.command, null, 2)}`,
  ].join('\n')
}

/** `esk dlq replay` as text. */
export function formatReplay(report: ReplayReport): string {
  const lines = [
    `sent ${report.entry} again to ${report.aggregate} partition ${report.partition} as command ${report.commandId} ` +
      `(it was ${report.originalCommandId})`,
  ]
  if (report.outcome !== undefined) lines.push(report.outcome ? `outcome: ${describeOutcome(report.outcome)}` : 'outcome: none yet')
  return lines.join('\n')
}

/** `esk outcome` as text. */
export function formatOutcome(report: OutcomeReport): string {
  const where = `${report.aggregate} ${report.id} command ${report.commandId} (partition ${report.partition})`
  if (!report.found || !report.outcome) {
    return `${where}: no trace in the store, the event log or the dead letters (not processed yet, never sent, or its refusal was forgotten)`
  }
  const sources = {
    snapshot: 'the aggregate\'s dedup window',
    unlogged: 'the partition\'s unlogged outcomes',
    'event-log': `the event log (offsets ${report.offsets?.join(', ')})`,
    'dead-letters': 'the dead letters',
  }
  return `${where}: ${describeOutcome(report.outcome)}, from ${sources[report.source!]}`
}

function describeOutcome(outcome: NonNullable<OutcomeReport['outcome']>): string {
  return outcome.status === 'accepted'
    ? `accepted at version ${outcome.version} with ${outcome.events} event(s)`
    : `rejected with ${outcome.error.code}: ${outcome.error.message}`
}

/** `esk topics check` as text. */
export function formatTopics(report: TopicsReport): string {
  const lines: string[] = []
  for (const a of report.aggregates) {
    lines.push(`${a.aggregate}${a.expectedPartitions !== null ? ` (configured with ${a.expectedPartitions} partitions)` : ''}`)
    lines.push(
      table(
        ['topic', 'partitions', 'cleanup.policy', 'retention.ms', 'retention.bytes', 'check'],
        a.topics.map((t) => [
          t.topic,
          t.partitions,
          t.cleanupPolicy,
          t.retentionMs,
          t.retentionBytes,
          t.problems.length === 0 ? 'ok' : t.problems.some((p) => p.severity === 'error') ? 'ERROR' : 'warning',
        ]),
      ),
    )
    for (const t of a.topics) for (const p of t.problems) lines.push(`  ${p.severity}: ${t.topic} ${p.message}`)
  }
  if (report.aggregates.length === 0) lines.push('no aggregate types found (configure aggregates, or check --topic-prefix)')
  lines.push(report.ok ? 'topics ok' : 'topics have errors')
  return lines.join('\n')
}

function truncate(text: string | null, length: number): string | null {
  return text === null || text.length <= length ? text : `${text.slice(0, length - 1)}…`
}
