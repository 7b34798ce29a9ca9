/** What every process of one scenario run shares: where the stack is and which topics and keys. */
export interface RunConfig {
  brokers: string[]
  /** The scenario's own redis-server: a unix socket path. */
  redisPath: string
  /** Topic prefix of this run (fresh per scenario, so runs never see each other's events). */
  topicPrefix: string
  /** Redis key prefix (esk's default). */
  keyPrefix: string
  partitions: number
  /** Consumer group session timeout of the processors, ms. */
  sessionTimeoutMs: number
  /** The run's directory: histories, control files, logs. */
  dir: string
  /** Replication factor of the topics esk creates (3 on the cluster); the broker's default when absent. */
  replicationFactor?: number
  /** A deliberately broken processor (see {@link VARIANTS}); absent for esk as it is. */
  variant?: Variant
}

/**
 * Processors broken on purpose, to show that the checker fails when esk's guarantees are taken
 * away. Each is a hook in the fault suite's own processor process (`processor-main.ts`) around
 * the driver esk is given; esk's code is not changed. Never the default.
 */
export const VARIANTS = {
  /** Each partition's writer has a transactional id of its own (random), so no new owner fences an old one. */
  'unfenced-writer': 'every partition writer gets a random transactional id: a new owner fences nothing',
  /** Now and then, right after a save, a snapshot is written back to the one it replaced. */
  'stale-snapshot': 'after a snapshot save, now and then the previous snapshot is written back (a save that goes backwards)',
  /** Snapshots are loaded without their window of recent command ids. */
  'no-dedup': 'every snapshot load drops the dedup window, so a repeated command id is decided again',
} as const

/** One of {@link VARIANTS}. */
export type Variant = keyof typeof VARIANTS

/** Which stack a run uses: the single node or the three-node cluster of `scripts/stack.sh`. */
export type StackMode = 'single' | 'cluster'

/** The aggregate type name of the domain (`@Aggregate({ name })`). */
export const AGGREGATE = 'account'

/** Topic names of the run's stream, as esk names them. */
export function topics(config: Pick<RunConfig, 'topicPrefix'>): { commands: string; events: string } {
  return { commands: `${config.topicPrefix}${AGGREGATE}.commands`, events: `${config.topicPrefix}${AGGREGATE}.events` }
}

/** A fault a processor performs on itself at a point of its work, armed by the controller. */
export type ArmedFault =
  /** SIGSTOP itself at the start of the next command handler (the controller sends SIGCONT). */
  | 'stop-in-handler'
  /** SIGKILL itself right after the next snapshot load, before the handlers run and the commit. */
  | 'kill-after-load'
  /** SIGKILL itself right before the next snapshot save, after the commit. */
  | 'kill-before-save'
  /** Disarms whatever was armed. */
  | 'none'

/** Where the controller writes the fault a processor should arm when it gets SIGUSR2. */
export function controlFile(dir: string, pid: number): string {
  return `${dir}/control/${pid}.json`
}

/** A whole number in [min, max]. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1))
}
