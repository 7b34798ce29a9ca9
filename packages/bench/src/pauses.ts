/**
 * The pauses of a worker's event loop during a measuring window: garbage collections (from the
 * `gc` performance entries) and how late a timer ran (`monitorEventLoopDelay`). A tail latency
 * is mostly set by the few longest pauses of the window, so each window reports them beside its
 * percentiles.
 */
import { PerformanceObserver, constants, monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import { round } from './stats.js'

/** A window's pauses in one process, ms. */
export interface PauseSummary {
  /** Collections of the young generation (scavenges): how many, their total and the longest. */
  minorGcs: number
  minorGcMs: number
  minorGcMaxMs: number
  /** Every other collection (mark-compact, incremental marking steps, weak callbacks). */
  majorGcs: number
  majorGcMs: number
  majorGcMaxMs: number
  /** How late a timer due every {@link RESOLUTION_MS} ran: p99 over the window, and the longest. */
  loopDelayP99Ms: number
  loopDelayMaxMs: number
}

/** The sampling timer's period. */
const RESOLUTION_MS = 10

interface GcTally {
  count: number
  ms: number
  maxMs: number
}

const tally = (): GcTally => ({ count: 0, ms: 0, maxMs: 0 })

/** Watches this process's pauses from `reset()` to `summary()`; `close()` stops watching. */
export class PauseWatch {
  private readonly delay: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
  private readonly observer: PerformanceObserver
  private minor = tally()
  private major = tally()

  constructor() {
    this.observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const kind = (entry as { detail?: { kind?: number } }).detail?.kind
        const into = kind === constants.NODE_PERFORMANCE_GC_MINOR ? this.minor : this.major
        into.count += 1
        into.ms += entry.duration
        into.maxMs = Math.max(into.maxMs, entry.duration)
      }
    })
    this.observer.observe({ entryTypes: ['gc'] })
    this.delay.enable()
  }

  /** Starts a new window. */
  reset(): void {
    this.delay.reset()
    this.minor = tally()
    this.major = tally()
  }

  /**
   * The window so far. The histogram records the time between two turns of the timer, so the
   * timer's own period is taken off: 0 means it ran on time.
   */
  summary(): PauseSummary {
    const late = (ns: number): number => round(Math.max(0, ns / 1e6 - RESOLUTION_MS))
    const sampled = this.delay.count > 0
    return {
      minorGcs: this.minor.count,
      minorGcMs: round(this.minor.ms),
      minorGcMaxMs: round(this.minor.maxMs),
      majorGcs: this.major.count,
      majorGcMs: round(this.major.ms),
      majorGcMaxMs: round(this.major.maxMs),
      loopDelayP99Ms: sampled ? late(this.delay.percentile(99)) : 0,
      loopDelayMaxMs: sampled ? late(this.delay.max) : 0,
    }
  }

  close(): void {
    this.delay.disable()
    this.observer.disconnect()
  }
}
