import { describe, expect, it } from 'vitest'
import type { BenchReport } from '../src/main.js'
import { quick } from '../src/profile.js'
import { charts, figuresMarkdown } from '../src/report.js'
import type { PauseSummary } from '../src/pauses.js'
import type { WindowResult } from '../src/session.js'
import type { SystemName } from '../src/systems.js'

function window(system: SystemName, partitions: number, commandsPerSecond: number, extra: Partial<WindowResult> = {}): WindowResult {
  return {
    system,
    partitions,
    processors: 1,
    workload: 'uniform',
    load: { mode: 'closed', inFlight: 128 },
    commandsPerSecond,
    completed: commandsPerSecond * 6,
    refused: 0,
    errors: 0,
    unanswered: 0,
    latency: { count: 1, p50Ms: 10, p99Ms: 40, p999Ms: 60, maxMs: 70 },
    cpuUsPerCommand: system === 'esk' ? 120 : 60,
    eventLoopUtilization: 0.5,
    cpu: { seconds: 6, machine: 1.9, processes: { kafka: 0.8 }, others: 0.3 },
    loadAverage: [3, 3, 3],
    ...extra,
  }
}

function paused(stallMs: number, minorGcMaxMs: number, majorGcMaxMs: number): PauseSummary {
  return { minorGcs: 3, minorGcMs: 30, minorGcMaxMs, majorGcs: 1, majorGcMs: 5, majorGcMaxMs, loopDelayP99Ms: 1, loopDelayMaxMs: stallMs }
}

function report(): BenchReport {
  const profile = { ...quick, partitions: [1, 4], openLoopPartitions: [4], openLoopFractions: [0.25, 0.5, 1] }
  const throughput: WindowResult[] = []
  // 1 partition: esk at 0.95x of the transactional pipeline in every pair; 4 partitions: 0.5x.
  for (const [esk, tx] of [[950, 1000], [1900, 2000], [2850, 3000]] as const) throughput.push(window('esk', 1, esk), window('tx', 1, tx))
  for (const [esk, tx] of [[500, 1000], [1000, 2000], [1500, 3000]] as const) throughput.push(window('esk', 4, esk), window('tx', 4, tx))
  const open = (rate: number, p99Ms: number, pauses?: WindowResult['pauses']): WindowResult =>
    window('esk', 4, rate, { load: { mode: 'open', rate }, latency: { count: 1, p50Ms: 5, p99Ms, p999Ms: p99Ms * 2, maxMs: p99Ms * 3 }, ...(pauses && { pauses }) })
  // At 500/s: the worst processor stalled 40 and 30 ms (median 35), the client 5 and 7 (median 6);
  // the longest collections 20 and 10 ms (median 15) in processors, 4 and 6 in the client.
  const first = { processors: [paused(12, 20, 3), paused(40, 2, 1)], client: paused(5, 4, 0) }
  const second = { processors: [paused(30, 1, 10)], client: paused(7, 0, 6) }
  return {
    date: '2026-01-01T00:00:00.000Z',
    profile,
    stages: ['throughput', 'openloop', 'recovery'],
    machine: { cpus: 2, cpuModel: 'test', memoryGiB: 4, node: 'v20', kafkaVersion: '3.9.1', loadAverageStart: [1, 1, 1], loadAverageEnd: [2, 2, 2] },
    setups: [],
    throughput,
    // Two sweeps: at 500/s (the 0.5 step) p99 45 and 55 ms, median 50 ms.
    openLoop: [open(1000, 80), open(250, 20), open(500, 45, first), open(250, 30), open(500, 55, second), open(1000, 90)],
    workloads: [],
    memory: [],
    recovery: {
      events: 50_000,
      aggregates: 1000,
      writeSeconds: 1,
      bareReadSeconds: 1,
      bareReadEventsPerSecond: 50_000,
      rebuildSeconds: 2,
      rebuildEventsPerSecond: 25_000,
      rebuildOverRead: 0.5,
      ratios: [0.5, 0.42, 0.61],
      takeoverSeconds: 0.5,
    },
    failures: [],
    durationSeconds: 600,
  }
}

describe('the generated figures', () => {
  const text = figuresMarkdown(report(), 'reports/bench-x.json')
  const goal = (start: string): string => text.split('\n').find((line) => line.startsWith(`| ${start}`)) ?? ''

  it('marks each goal pass or miss from the paired ratios and thresholds, and counts the runs that met it', () => {
    // Three runs all on one side would happen by chance once in 8: too often to decide anything.
    expect(goal('commands/s ≥ 0.9× hand-written, 1 partition')).toMatch(/0\.95.*\| \*\*pass\*\*, 3 of 3 pairs of windows, undecided \|$/)
    expect(goal('commands/s ≥ 0.9× hand-written, 4 partition')).toMatch(/0\.50.*\| \*\*miss\*\*, 0 of 3 pairs of windows, undecided \|$/)
    // The point at 50% of the sweep (500/s, the middle rate once sorted): median p99 of 45 and 55 ms.
    // The median passes, but one window of two missed: the run cannot tell, and the count says so.
    expect(goal('p99 ≤ 50 ms at 50%')).toMatch(/50 ms \(45 ms–55 ms\) at 500\/s.*\| \*\*pass\*\*, 1 of 2 windows, undecided \|$/)
    expect(goal('processor CPU per command ≤ 100 µs, 1')).toMatch(/120 \(120–120\) µs \| \*\*miss\*\*, 0 of 3 windows, undecided \|$/)
    // The median of the repetitions' ratios, with their range.
    expect(goal('recovery ≥ 0.8×')).toMatch(/0\.50× \(0\.42–0\.61\).*\| \*\*miss\*\*, 0 of 3 repetitions, undecided \|$/)
    expect(goal('time to take commands')).toMatch(/0\.50 s \| reported/)
  })

  it('calls a verdict decided only when the count of runs on its side beats chance (a one-sided sign test at 5%)', () => {
    const rows = (ratios: number[], cpus: number[]): { throughput: string; cpu: string } => {
      const r = report()
      r.throughput = ratios.flatMap((x, i) => [window('esk', 1, 1000 * x, { cpuUsPerCommand: cpus[i] }), window('tx', 1, 1000)])
      const markdown = figuresMarkdown(r, 'reports/bench-x.json').split('\n')
      const find = (start: string): string => markdown.find((line) => line.startsWith(`| ${start}`)) ?? ''
      return { throughput: find('commands/s ≥ 0.9× hand-written, 1 partition'), cpu: find('processor CPU per command ≤ 100 µs, 1') }
    }
    // Five of five: once in 32 by chance. Four of five: 6 in 32.
    const five = rows([0.95, 0.92, 0.97, 0.91, 0.99], [90, 80, 99, 101, 70])
    expect(five.throughput).toMatch(/\*\*pass\*\*, 5 of 5 pairs of windows, decided \|$/)
    expect(five.cpu).toMatch(/\*\*pass\*\*, 4 of 5 windows, undecided \|$/)
    // A miss is decided the same way, from the runs that missed: 13 of 15 (2 met the goal).
    const fifteen = [0.8, 0.85, 0.81, 0.95, 0.79, 0.83, 0.88, 0.7, 0.91, 0.86, 0.84, 0.82, 0.8, 0.87, 0.78]
    expect(rows(fifteen, fifteen.map(() => 50)).throughput).toMatch(/\*\*miss\*\*, 2 of 15 pairs of windows, decided \|$/)
    // 11 of 15 meeting it would come up about 6 times in 100 by chance: not decided.
    const eleven = fifteen.map((x, i) => (i < 11 ? 0.95 : x))
    expect(rows(eleven, fifteen.map(() => 50)).throughput).toMatch(/\*\*pass\*\*, 11 of 15 pairs of windows, undecided \|$/)
  })

  it('gives a verdict without a count when there was one run', () => {
    const single = report()
    single.recovery = { ...single.recovery!, rebuildOverRead: 0.85, ratios: [0.85] }
    const row = figuresMarkdown(single, 'reports/bench-x.json').split('\n').find((line) => line.startsWith('| recovery ≥ 0.8×')) ?? ''
    expect(row).toMatch(/0\.85×.*\| \*\*pass\*\* \|$/)
  })

  it('describes the machine and says when the profile uses fewer aggregates than the issue', () => {
    expect(text).toContain('2 cores (test), 4 GiB, Node v20, Kafka 3.9.1')
    expect(text).toContain('fewer to stay short')
  })

  it('finds the knee from the medians over repetitions', () => {
    expect(text).toMatch(/\| 4 \| esk \| 1,000\/s \(the highest tried\) \| 500\/s \|/)
  })

  it("shows each open-loop rate's longest stall and collection, of the worst processor and of the client", () => {
    const row = (rate: string): string => text.split('\n').find((line) => line.startsWith(`| 4 | esk | ${rate} |`)) ?? ''
    expect(row('500')).toContain('| 35 ms / 6.0 ms | 15 ms / 5.0 ms |')
    // Reports written before pauses were measured.
    expect(row('250')).toContain('| n/a | n/a |')
  })

  it('shows the takeover until its partition is ready and until its first command is answered', () => {
    const recoveryRow = (markdown: string): string => markdown.split('\n').find((line) => line.startsWith('| 50,000 |')) ?? ''
    const split = report()
    split.recovery = { ...split.recovery!, takeoverReadySeconds: 0.12 }
    expect(recoveryRow(figuresMarkdown(split, 'reports/bench-x.json'))).toMatch(/\| 0\.12 s \| 0\.5 s \|$/)
    // Reports written before the split was measured.
    expect(recoveryRow(text)).toMatch(/\| n\/a \| 0\.5 s \|$/)
  })

  it("shows what esk's replay costs by itself, on the embedded driver, beside the rebuild on Kafka", () => {
    const recoveryRow = (markdown: string): string => markdown.split('\n').find((line) => line.startsWith('| 50,000 |')) ?? ''
    const measured = report()
    measured.recovery = { ...measured.recovery!, embedded: { rebuildEventsPerSecond: 960_000, cpuMicrosPerEvent: 1.04 } }
    expect(recoveryRow(figuresMarkdown(measured, 'reports/bench-x.json'))).toContain('| 0.50× (0.42–0.61) | 960,000 | 1.04 µs |')
    // Reports written before it was measured.
    expect(recoveryRow(text)).toContain('| 0.50× (0.42–0.61) | n/a | n/a |')
  })

  it('charts what was measured', () => {
    const files = charts(report())
    expect(Object.keys(files).sort()).toEqual(['open-loop-p99.svg', 'open-loop-throughput.svg', 'recovery.svg', 'throughput.svg'])
    expect(files['throughput.svg']).toContain('esk')
  })
})
