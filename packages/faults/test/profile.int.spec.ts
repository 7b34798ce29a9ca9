import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { localStack } from '@esk/testing'
import { describe, expect, it } from 'vitest'
import { CHECKS } from '../src/checker.js'
import { PROFILES, runScenario, type ScenarioReport } from '../src/harness.js'
import { summaryTable } from '../src/summary.js'

/*
 * Scenarios of the short profile, end to end: processor and client processes (from dist/, so
 * build first), faults injected under load, the liveness round and the checker, which must find
 * nothing. Before the fenced store (issue 6), redis-flush failed checks 3, 5 and 6 in every run:
 * an existing account was created a second time after a flush in the middle of a batch.
 */

const DIST = fileURLToPath(new URL('../dist/processor-main.js', import.meta.url))
const stackDir = process.env.ESK_STACK_DIR ?? fileURLToPath(new URL('../../../.stack', import.meta.url))

describe('the short profile, two cheap scenarios', () => {
  const profile = { ...PROFILES.short!, loadMs: 15_000, faults: 2 }
  const env = { brokers: localStack().brokers, stackDir, workDir: mkdtempSync(join(tmpdir(), 'esk-faults-')), log: (line: string) => console.log(line) }

  it.each(['kill', 'redis-flush'])('runs %s under load, injects its faults and checks the history', async (scenario) => {
    expect(existsSync(DIST), 'build first: the harness starts processes from dist/').toBe(true)
    const report: ScenarioReport = await runScenario(scenario, { ...profile, faults: scenario === 'kill' ? 4 : 2 }, 11, env)
    console.log(summaryTable([report]))
    expect(report.failure).toBeUndefined()
    expect(report.faults.length).toBeGreaterThanOrEqual(1)
    expect(report.accepted).toBeGreaterThan(50)
    expect(report.stats.events).toBeGreaterThan(50)
    expect(Object.keys(report.violations)).toEqual([...CHECKS])
    expect(report.violations, JSON.stringify(report.details.slice(0, 5))).toEqual(Object.fromEntries(CHECKS.map((c) => [c, 0])))
  }, 240_000)
})
