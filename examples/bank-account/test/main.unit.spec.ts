import type { SnapshotStore, Transport } from '@esk/core'
import { MemoryBackend, memoryDriver } from '@esk/memory'
import { describe, expect, it } from 'vitest'
import { ExpectationFailed, run } from '../src/app.js'
import { driverFromArgs, type DriverFactory } from '../src/driver.js'

describe('bank-account example', () => {
  it('runs the whole story on the embedded driver and reports what it saw', async () => {
    const lines: string[] = []
    const result = await run((line) => lines.push(line), { runId: 'test' })

    expect(result.ids).toEqual({ ada: 'ada-test', bob: 'bob-test' })
    const expected = { ada: { balance: 185, version: 4 }, bob: { balance: -30, version: 3 } }
    expect(result.live).toEqual(expected)
    expect(result.afterRestart).toEqual(expected)
    expect(result.afterRebuild).toEqual(expected)
    expect(result.duplicate).toEqual({ first: 3, second: 3 })
    expect(result.refusals).toEqual({
      overdraft: { code: 'ESK_COMMAND_REJECTED', reason: 'INSUFFICIENT_FUNDS' },
      staleVersion: { code: 'ESK_VERSION_CONFLICT' },
      invalidDeposit: { code: 'ESK_INVALID_COMMAND', problems: ['amount must be a whole number > 0'] },
      invalidOpen: { code: 'ESK_INVALID_COMMAND', problems: ['owner is required'] },
    })
    // Snapshots were current at the restart; the rebuild folded all seven events again.
    expect(result.replayed).toEqual({ restart: 0, rebuild: 7 })

    const text = lines.join('\n')
    expect(text).toContain('refused ESK_COMMAND_REJECTED, reason INSUFFICIENT_FUNDS')
    expect(text).toContain("account 'ada-test' is at version 4, not the expected 3")
    expect(text).toMatch(/same commandId +-> version 3, the recorded outcome/)
    expect(text).toContain('get(ada-test): balance 175 at version 3: applied once')
    expect(lines.filter((l) => l.startsWith('   recovery account/'))).toHaveLength(8)
    expect(lines.at(-1)).toBe('All expectations held.')
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
      return { transport, store: { snapshots, outcomes: driver.store.outcomes, close: () => driver.store.close() } }
    }
    const lines: string[] = []
    const failure = run((line) => lines.push(line), { driver: amnesiac })
    await expect(failure).rejects.toBeInstanceOf(ExpectationFailed)
    await expect(failure).rejects.toThrow('the rebuild replayed 0 events, fewer than the 7 written')
    expect(lines).not.toContain('All expectations held.')
  })

  it('uses the embedded driver by default and refuses arguments it does not know', () => {
    const lines: string[] = []
    expect(driverFromArgs([], (l) => lines.push(l))).toBeUndefined()
    expect(lines).toEqual(['Driver: embedded (in memory; the data lives as long as this process)'])
    expect(() => driverFromArgs(['--kafka'], () => undefined)).toThrow(/not wired/)
    expect(() => driverFromArgs(['--verbose'], () => undefined)).toThrow(/unknown argument --verbose/)
  })
})
