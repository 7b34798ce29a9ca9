/** The suite's profiles: what each stage runs, and how long. */
import type { Workload } from './workload.js'
import type { SystemName } from './systems.js'

/** Every setting of a run. */
export interface Profile {
  name: string
  /** Transactions committed on the broker before anything is measured. */
  warmupTransactions: number
  systems: SystemName[]
  /** Aggregates created before the update workloads (the issue asks for 100k). */
  aggregates: number
  partitions: number[]
  inFlight: number[]
  processors: number[]
  /** Measuring windows per configuration and system, interleaved system by system. */
  repetitions: number
  warmS: number
  measureS: number
  /** Partition counts with an open-loop sweep (1 processor, the first in-flight value's maximum). */
  openLoopPartitions: number[]
  /**
   * Offered rates as fractions of each system's closed-loop median (at the first in-flight value):
   * a closed loop is bounded by its in-flight count, so the sweep goes beyond 1 to find saturation.
   */
  openLoopFractions: number[]
  /** Workloads beyond uniform updates, at `workloadPartitions`, with `workloadRepetitions` each. */
  /** Sweeps per open-loop partition count (each rate's windows interleaved system by system). */
  openLoopRepetitions: number
  workloads: Workload[]
  workloadPartitions: number
  workloadRepetitions: number
  recoveryEvents: number
  recoveryAggregates: number
  projectionEvents: number
}

/** The workloads of the issue, over `aggregates` pre-created aggregates. */
export function workloads(aggregates: number): Workload[] {
  return [
    { name: 'zipf', keys: 'zipf', aggregates, zipfExponent: 0.99 },
    { name: 'hot-aggregate', keys: 'hot', aggregates },
    { name: 'refused-5%', keys: 'uniform', aggregates, refusedFraction: 0.05 },
    { name: 'events-1-10KB', keys: 'uniform', aggregates, eventBytes: [1024, 10240] },
    { name: 'creation', keys: 'new', aggregates },
    { name: 'find-under-load', keys: 'uniform', aggregates, findInFlight: 16 },
  ]
}

/** The uniform update workload every throughput window runs. */
export function uniform(aggregates: number): Workload {
  return { name: 'uniform', keys: 'uniform', aggregates }
}

const QUICK_AGGREGATES = 10_000

/** About 12 minutes on a 2-core machine, broker warm-up included: every stage, at small sizes; five repetitions (one for the workloads and the open loop), since one window's ratio moves by ±0.15 here. */
export const quick: Profile = {
  name: 'quick',
  warmupTransactions: 2_000,
  systems: ['esk', 'tx', 'plain'],
  aggregates: QUICK_AGGREGATES,
  partitions: [1, 4, 8],
  inFlight: [128],
  processors: [1],
  repetitions: 5,
  warmS: 2,
  measureS: 6,
  openLoopPartitions: [4],
  openLoopFractions: [0.25, 0.5, 1, 1.5, 2],
  openLoopRepetitions: 1,
  workloads: workloads(QUICK_AGGREGATES),
  workloadPartitions: 4,
  workloadRepetitions: 1,
  // Large enough that the replay's own rate, not its fixed start and end (about 50 ms), sets the
  // figure: at 50,000 events those were a fifth of a rebuild, and the ratio moved from 0.5 to 0.8.
  recoveryEvents: 500_000,
  recoveryAggregates: 1_000,
  projectionEvents: 20_000,
}

/** Every sweep and workload of the issue, at its sizes; takes hours. */
export const full: Profile = {
  name: 'full',
  warmupTransactions: 5_000,
  systems: ['esk', 'tx', 'plain'],
  aggregates: 100_000,
  partitions: [1, 4, 8],
  inFlight: [128, 1024],
  processors: [1, 2],
  repetitions: 5,
  warmS: 3,
  measureS: 15,
  openLoopPartitions: [1, 4, 8],
  openLoopFractions: [0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2],
  openLoopRepetitions: 3,
  workloads: workloads(100_000),
  workloadPartitions: 4,
  workloadRepetitions: 3,
  recoveryEvents: 1_000_000,
  recoveryAggregates: 10_000,
  projectionEvents: 200_000,
}
