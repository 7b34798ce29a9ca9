import { CHECKS } from './checker.js'
import type { ScenarioReport } from './harness.js'

/** Short column names of the checks, in {@link CHECKS} order. */
const SHORT = ['1', '2', '3', '4', '5', '6', '7', '8']

/** A plain-text table: one row per scenario, with counts, violations per check and recovery times. */
export function summaryTable(reports: ScenarioReport[]): string {
  const header = ['scenario', 'sent', 'accepted', 'refused', 'timeout', 'error', 'faults', ...SHORT.map((s) => `v${s}`), 'recovery med/max ms', 'time s']
  const rows = reports.map((r) => [
    r.scenario,
    ...counts(r),
    `${r.recovery.medianMs ?? '-'}/${r.recovery.maxMs ?? '-'}${r.faults.some((f) => f.recoveryMs === null) ? ' (some never)' : ''}`,
    String(Math.round(r.durationMs / 1000)),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const fmt = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')
  const lines = [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)]
  lines.push(`checks: ${CHECKS.map((c, i) => `v${SHORT[i]} ${c}`).join(', ')}`)
  for (const r of reports) {
    if (r.variant) lines.push(`${r.scenario}: processors ran the BROKEN VARIANT ${r.variant}`)
    if (r.failover) {
      const never = r.faults.some((f) => f.failoverMs === null) ? ' (some never)' : ''
      lines.push(`${r.scenario}: failover (fault to every partition answering, fault still in place) med/max ${r.failover.medianMs ?? '-'}/${r.failover.maxMs ?? '-'} ms${never}`)
    }
    if (r.failure) lines.push(`${r.scenario}: RUN FAILED: ${r.failure}`)
    for (const c of r.crashes) lines.push(`${r.scenario}: ${c.process} EXITED with code ${c.code} (${c.log})${c.error ? `: ${c.error}` : ''}`)
    for (const v of r.details.slice(0, 5)) lines.push(`${r.scenario}: [${v.check}] ${v.message}`)
    if (r.details.length > 5) lines.push(`${r.scenario}: ... ${r.details.length - 5} more in the report`)
  }
  return lines.join('\n')
}

/** The same results as a Markdown table (for docs/reliability.md), with the faults by kind and the crashes under it. */
export function markdownSummary(reports: ScenarioReport[]): string {
  const ms = (spread: { medianMs: number | null; maxMs: number | null } | undefined) =>
    spread === undefined || spread.medianMs === null ? '-' : `${(spread.medianMs / 1000).toFixed(1)} / ${((spread.maxMs ?? 0) / 1000).toFixed(1)}`
  const header = ['scenario', 'stack', 'sent', 'accepted', 'refused', 'timed out', 'errors', 'faults', ...SHORT.map((s) => `v${s}`), 'recovery s (median / max)', 'failover s (median / max)', 'time']
  const rows = reports.map((r) => [
    `\`${r.scenario}\``,
    r.stack,
    ...counts(r),
    ms(r.recovery) + (r.faults.some((f) => f.recoveryMs === null) ? ' (some never)' : ''),
    ms(r.failover),
    `${Math.floor(r.durationMs / 60_000)} min ${Math.round((r.durationMs % 60_000) / 1000)} s`,
  ])
  const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((row) => `| ${row.join(' | ')} |`), '']
  for (const r of reports) {
    const kinds = new Map<string, number>()
    for (const f of r.faults) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1)
    lines.push(`- \`${r.scenario}\` (seed ${r.seed}): ${[...kinds].map(([k, n]) => `${n} × ${k}`).join(', ') || 'no faults'}`)
    if (r.failure) lines.push(`  - run failed: ${r.failure}`)
    for (const c of r.crashes) lines.push(`  - ${c.process} exited with code ${c.code}${c.error ? `: ${c.error}` : ''}`)
  }
  return lines.join('\n')
}

/** The counts both tables show, in their column order: commands, outcomes, faults, violations per check. */
function counts(r: ScenarioReport): string[] {
  const values = [r.commands, r.accepted, r.refused, r.timeouts, r.errors, r.faults.length, ...CHECKS.map((c) => r.violations[c])]
  return values.map(String)
}
