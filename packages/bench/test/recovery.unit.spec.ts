import { afterEach, describe, expect, it, vi } from 'vitest'
import { embeddedRebuild } from '../src/recovery.js'

describe("the recovery stage's replay alone, on the embedded driver", () => {
  afterEach(() => vi.restoreAllMocks())

  // Found in review: the embedded log held the events but not the command they name, so every
  // rebuilt application refused its partition after the replay (CommandLogTruncatedError, logged
  // as a background failure) while the stage went on reporting a rate. This failed before the fix.
  it('rebuilds the series and takes its partition without any error logged', async () => {
    const errors: string[] = []
    vi.spyOn(console, 'error').mockImplementation((line: unknown) => void errors.push(String(line)))
    const result = await embeddedRebuild({ aggregate: 'bench-account', partitions: 1 }, 2_000, 50, 1)
    expect(errors).toEqual([])
    expect(result?.rebuildEventsPerSecond).toBeGreaterThan(0)
    expect(result?.cpuMicrosPerEvent).toBeGreaterThan(0)
  })
})
