import { afterEach, describe, expect, it } from 'vitest'
import { PauseWatch } from '../src/pauses.js'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function block(ms: number): void {
  const until = performance.now() + ms
  while (performance.now() < until) {
    // Holds the event loop, as a long collection or a long batch would.
  }
}

describe('PauseWatch', () => {
  let watch: PauseWatch | undefined
  afterEach(() => watch?.close())

  it('reports how long the event loop was held in the window, and nothing from before it', async () => {
    watch = new PauseWatch()
    await sleep(30)
    block(150)
    await sleep(30)
    watch.reset()
    await sleep(40)
    block(80)
    await sleep(40)
    const { loopDelayMaxMs, loopDelayP99Ms } = watch.summary()
    // The timer is due every 10 ms: held for 80 ms, it ran at least 70 ms late.
    expect(loopDelayMaxMs).toBeGreaterThanOrEqual(65)
    // The 150 ms block came before the window.
    expect(loopDelayMaxMs).toBeLessThan(140)
    expect(loopDelayP99Ms).toBeLessThanOrEqual(loopDelayMaxMs)
  })

  it('counts the collections of the window', async () => {
    watch = new PauseWatch()
    watch.reset()
    // Short-lived garbage: the young generation fills and is collected many times over.
    let kept = 0
    for (let i = 0; i < 200_000; i++) kept += Array.from({ length: 20 }, (_, j) => ({ i, j })).length
    expect(kept).toBe(4_000_000)
    // Collections are reported to the observer asynchronously.
    await sleep(50)
    const summary = watch.summary()
    expect(summary.minorGcs).toBeGreaterThan(0)
    expect(summary.minorGcMs).toBeGreaterThan(0)
    expect(summary.minorGcMaxMs).toBeLessThanOrEqual(summary.minorGcMs)
    watch.reset()
    expect(watch.summary().minorGcs).toBe(0)
  })
})
