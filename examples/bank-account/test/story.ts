import { expect } from 'vitest'
import type { RunResult } from '../src/app.js'

/** Balances the story ends with, whatever the driver. */
export const EXPECTED_BALANCES = { ada: { balance: 185, version: 4 }, bob: { balance: -30, version: 3 } }

/**
 * Checks what every driver must show for a run with `runId`: the balances live, after the
 * restart and after the rebuild, the duplicate applied once, the four refusals and the printed
 * narrative. How many events each start replayed depends on the driver and is left to the caller.
 */
export function expectStory(result: RunResult, lines: readonly string[], runId: string): void {
  expect(result.ids).toEqual({ ada: `ada-${runId}`, bob: `bob-${runId}` })
  expect(result.live).toEqual(EXPECTED_BALANCES)
  expect(result.afterRestart).toEqual(EXPECTED_BALANCES)
  expect(result.afterRebuild).toEqual(EXPECTED_BALANCES)
  expect(result.duplicate).toEqual({ first: 3, second: 3 })
  expect(result.refusals).toEqual({
    overdraft: { code: 'ESK_COMMAND_REJECTED', reason: 'INSUFFICIENT_FUNDS' },
    staleVersion: { code: 'ESK_VERSION_CONFLICT' },
    invalidDeposit: { code: 'ESK_INVALID_COMMAND', problems: ['amount must be a whole number > 0'] },
    invalidOpen: { code: 'ESK_INVALID_COMMAND', problems: ['owner is required'] },
  })

  // Read models: read-your-writes, the totals of this run, the lookup, and both survive a restart and a rebuild.
  const viewed = { ada: 185, bob: -30 }
  expect(result.readModels).toEqual({
    balances: viewed,
    listed: { byOwner: true, lookup: true },
    moved: { in: 235, out: 80 },
    afterRestart: { balances: viewed, moved: { in: 235, out: 80 } },
    afterRebuild: viewed,
  })

  const text = lines.join('\n')
  expect(text).toContain('refused ESK_COMMAND_REJECTED, reason INSUFFICIENT_FUNDS')
  expect(text).toContain(`account 'ada-${runId}' is at version 4, not the expected 3`)
  expect(text).toMatch(/same commandId +-> version 3, the recorded outcome/)
  expect(text).toContain(`get(ada-${runId}): balance 175 at version 3: applied once`)
  // Four partitions, each recovered once by the restart and once by the rebuild.
  expect(lines.filter((l) => l.startsWith('   recovery account/'))).toHaveLength(8)
  expect(text).toMatch(/accounts-by-owner.waitFor\(teller 1's deposit\) +-> Ada 185, Bob -30/)
  expect(text).toMatch(/accounts-by-owner rebuilt beside the live view from \d+ events and swapped in/)
  expect(lines.at(-1)).toBe('All expectations held.')
}
