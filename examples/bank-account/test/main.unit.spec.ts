import type { SnapshotStore, Transport } from '@esk/core/driver'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { describe, expect, it } from 'vitest'
import { ExpectationFailed, run } from '../src/app.js'
import type { DriverFactory } from '../src/driver.js'
import { expectStory } from './story.js'

describe('bank-account example', () => {
  it('runs the whole story on the embedded driver and reports what it saw', async () => {
    const lines: string[] = []
    const result = await run((line) => lines.push(line), { runId: 'test' })

    expectStory(result, lines, 'test')
    // Snapshots were current at the restart; the rebuild folded all seven events again.
    expect(result.replayed).toEqual({ restart: 0, rebuild: 7 })
  })

  it('keeps separate runs on one persistent driver apart by run id', async () => {
    const a = await run(() => undefined)
    const b = await run(() => undefined)
    expect(a.ids.ada).not.toBe(b.ids.ada)
  })

  it('recovers by replaying the log when the snapshots were lost between starts', async () => {
    const backend = new MemoryBackend()
    let starts = 0
    const flushing: DriverFactory = () => {
      if (starts++ > 0) backend.flushSnapshots()
      return memoryDriver({ backend, replayBatchSize: 2 })
    }
    const result = await run(() => undefined, { driver: flushing })
    expect(result.afterRestart).toEqual(result.live)
    expect(result.replayed).toEqual({ restart: 7, rebuild: 7 })
  })

  it('fails with ExpectationFailed when the story does not hold', async () => {
    const backend = new MemoryBackend()
    let starts = 0
    // The third start (the rebuild) gets a log that lost its events and a store that ignores
    // reset(): balances still read fine, but the rebuild replays nothing, which run() catches.
    const amnesiac: DriverFactory = () => {
      const driver = memoryDriver({ backend })
      if (++starts < 3) return driver
      const transport: Transport = Object.create(driver.transport) as Transport
      transport.readEvents = async function* () {}
      const snapshots: SnapshotStore = Object.create(driver.store.snapshots) as SnapshotStore
      snapshots.reset = async () => {}
      return {
        transport,
        store: { snapshots, outcomes: driver.store.outcomes, projections: driver.store.projections, close: () => driver.store.close() },
      }
    }
    const lines: string[] = []
    const failure = run((line) => lines.push(line), { driver: amnesiac })
    await expect(failure).rejects.toBeInstanceOf(ExpectationFailed)
    await expect(failure).rejects.toThrow('the rebuild replayed 0 events, fewer than the 7 written')
    expect(lines).not.toContain('All expectations held.')
  })
})
