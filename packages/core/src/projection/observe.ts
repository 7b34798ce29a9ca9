import type { ProjectionDeadLetter } from './ports.js'

/**
 * Where a lane (one partition a read model reads) is in its life: `opening` (taking the lane in the
 * store, checking its position against the log), `running`, `failed` (an event keeps failing, or
 * the log was truncated under it; retried with backoff), `closed`.
 */
export type LaneState = 'opening' | 'running' | 'failed' | 'closed'

/** Something a read model did, as the `projection` observation reports it. */
export type ProjectionObservation =
  | {
      projection: string
      kind: 'lane'
      aggregate: string
      partition: number
      state: LaneState
      /** Why, for `failed`. */
      error?: unknown
    }
  | {
      projection: string
      kind: 'parked'
      /** The event set aside, with its error. */
      deadLetter: ProjectionDeadLetter
    }
  | {
      projection: string
      kind: 'truncated'
      aggregate: string
      partition: number
      /** The stored position; undefined for a lane that starts on a log whose first events are gone. */
      stored: number | undefined
      start: number
      end: number
      /** `failed`: the lane stopped; `reset`: the projection is rebuilt from what the log holds; `started`: a new lane began at the log's start. */
      action: 'failed' | 'reset' | 'started'
    }
  | {
      projection: string
      kind: 'rebuild'
      phase: 'start' | 'progress' | 'end'
      /** The generation being built. */
      generation: number
      /** Events applied so far. */
      events: number
      /** Events still to read, as of the last check. */
      lag: number
      elapsedMs: number
      eventsPerSecond: number
    }
  | {
      projection: string
      kind: 'swap'
      /** The generation readers were served from, if any. */
      from: number | undefined
      to: number
      reason: 'upgrade' | 'rebuild' | 'reset' | 'truncated'
    }
