import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { localStack } from '@esk/testing/stack'
import { describe, expect, it } from 'vitest'
import { CHECKS } from '../src/checker.js'
import { defaultScenarios, PROFILES, runScenario, type ScenarioReport } from '../src/harness.js'
import { summaryTable } from '../src/summary.js'

/*
 * The short profile, every scenario of the single node, end to end: processor and client processes (from dist/, so
 * build first), faults injected under load, the liveness round and the checker, which must find
 * nothing. Before the fenced store (issue 6), redis-flush and redis-restart failed checks 3, 5 and
 * 6 in every run (an existing account created a second time after a flush in the middle of a
 * batch), and broker, stack and rolling failed liveness (fenced partitions that never reopened).
 *
 * The seed changes from run to run (ESK_FAULTS_SEED fixes it) and is printed with each report, so
 * a failure can be replayed: node packages/faults/dist/main.js --profile short --seed <seed> --scenarios <name>
 */

const DIST = fileURLToPath(new URL('../dist/processor-main.js', import.meta.url))
const stackDir = process.env.ESK_STACK_DIR ?? fileURLToPath(new URL('../../../.stack', import.meta.url))
const seed = Number(process.env.ESK_FAULTS_SEED ?? Math.floor(Math.random() * 1_000_000))

describe(`the short fault profile (seed ${seed})`, () => {
  const env = { brokers: localStack().brokers, stackDir, workDir: mkdtempSync(join(tmpdir(), 'esk-faults-')), log: (line: string) => console.log(line) }

  it.each(defaultScenarios('single'))('%s: faults under load leave no violation', async (scenario) => {
    expect(existsSync(DIST), 'build first: the harness starts processes from dist/').toBe(true)
    const report: ScenarioReport = await runScenario(scenario, PROFILES.short!, seed, env)
    console.log(summaryTable([report]))
    expect(report.failure).toBeUndefined()
    expect(report.crashes, "processes that exited by themselves").toEqual([])
    expect(report.faults.length).toBeGreaterThanOrEqual(1)
    expect(report.accepted).toBeGreaterThan(20)
    expect(report.stats.events).toBeGreaterThan(20)
    expect(report.violations, JSON.stringify(report.details.slice(0, 5))).toEqual(Object.fromEntries(CHECKS.map((c) => [c, 0])))
  }, 400_000)
})
