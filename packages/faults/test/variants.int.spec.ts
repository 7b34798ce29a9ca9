import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { localStack } from '@esk/testing/stack'
import { describe, expect, it } from 'vitest'
import type { CheckName } from '../src/checker.js'
import type { Variant } from '../src/config.js'
import { PROFILES, runScenario } from '../src/harness.js'
import { summaryTable } from '../src/summary.js'

/*
 * The checker must be able to fail. Each case runs a short scenario with processors broken on
 * purpose (a hook in the fault suite's processor process, esk itself unchanged) and expects the
 * checker to report the violations that breakage causes, under the check that names them.
 *
 * Shown to fail once: with processor-main.ts ignoring the no-dedup variant (esk as it is), the
 * no-dedup case read clean (0 violations) and its last expectation failed.
 */

const DIST = fileURLToPath(new URL('../dist/processor-main.js', import.meta.url))
const stackDir = process.env.ESK_STACK_DIR ?? fileURLToPath(new URL('../../../.stack', import.meta.url))
const seed = Number(process.env.ESK_FAULTS_SEED ?? Math.floor(Math.random() * 1_000_000))

const cases: Array<{ variant: Variant; scenario: string; check: CheckName; why: string }> = [
  // A frozen processor resumes inside a handler and commits the batch its successor also
  // committed: nothing fenced it.
  { variant: 'unfenced-writer', scenario: 'zombie', check: 'one-application', why: 'a zombie commits commands its successor also applied' },
  // The next command on a rewound aggregate is decided on its older state and repeats a version.
  { variant: 'stale-snapshot', scenario: 'kill', check: 'versions', why: 'commands decided on a rewound snapshot repeat versions' },
  // A command id sent again after its answer is applied a second time.
  { variant: 'no-dedup', scenario: 'kill', check: 'one-application', why: 'repeated command ids are applied again' },
]

// About 2 minutes of load, and whether a broken variant trips within one short run depends on
// timing: run on demand (ESK_FAULTS_VARIANTS=1), not in every `npm test`. The checker's own
// broken-history tests (checker.int.spec.ts) run every time.
const enabled = process.env.ESK_FAULTS_VARIANTS === '1'

describe.skipIf(!enabled)(`the checker against processors broken on purpose (seed ${seed}; on demand: ESK_FAULTS_VARIANTS=1)`, () => {
  const env = { brokers: localStack().brokers, stackDir, workDir: mkdtempSync(join(tmpdir(), 'esk-faults-variants-')), log: (line: string) => console.log(line) }

  it.each(cases)('$variant under $scenario: $why', async ({ variant, scenario, check }) => {
    expect(existsSync(DIST), 'build first: the harness starts processes from dist/').toBe(true)
    const report = await runScenario(scenario, PROFILES.short!, seed, env, { variant })
    console.log(summaryTable([report]))
    expect(report.failure).toBeUndefined()
    expect(report.variant).toBe(variant)
    expect(report.faults.length).toBeGreaterThanOrEqual(1)
    expect(report.accepted).toBeGreaterThan(20)
    expect(report.violations[check], JSON.stringify(report.details.slice(0, 5))).toBeGreaterThan(0)
  }, 400_000)
})
