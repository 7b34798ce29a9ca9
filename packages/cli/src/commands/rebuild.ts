import {
  ClosedError,
  ConfigurationError,
  ESK_DEFAULTS,
  ErrorCode,
  InvalidArgumentError,
  UnavailableError,
  hasCode,
  type Class,
} from '@esk/core'
import { AggregateRuntime, Observers, PartitionProcessor, sleep, type PartitionLease, type Transport } from '@esk/core/driver'
import { PartitionKeys, StateFields } from '@esk/redis/driver'
import type { CliContext, Target } from '../context.js'
import { groupMembers } from './status.js'

/** Options of {@link rebuild}. */
export interface RebuildOptions {
  /** Only this partition. Default every partition of the aggregate type. */
  partition?: number
  /**
   * How long to follow a partition whose rebuild a processor took over before giving up, ms.
   * Default 600000.
   */
  timeoutMs?: number
  /**
   * Called as events are replayed: the partition, the offset reached, and the end of its event log
   * when the rebuild started (offsets, which transaction markers take too: not a count of events).
   */
  onProgress?: (progress: RebuildProgress) => void
}

/** Where a rebuild stands (offsets, which transaction markers take too: not a count of events). */
export interface RebuildProgress {
  /** The partition being rebuilt. */
  partition: number
  /** The offset its replay reached. */
  offset: number
  /** The end of its event log when the rebuild started. */
  end: number
  /** Over every partition of this rebuild: the offsets done, and their sum of ends. */
  overall: { done: number; total: number }
}

/** How the rebuild of one partition ended. */
export interface PartitionRebuild {
  partition: number
  /**
   * `rebuilt`: the CLI replayed the whole partition under its own owner token and marked it ready;
   * `taken-over`: a processor took the partition back meanwhile and finished the replay itself
   * (from the checkpoint the CLI had reached), the CLI followed it until it was ready.
   */
  result: 'rebuilt' | 'taken-over'
  /** Events the CLI replayed. */
  events: number
  /** The end offset of the partition's event log when it started. */
  end: number
  /** The processor group member that held the partition when it started; null when none did. */
  heldBy: string | null
  elapsedMs: number
}

/** What `esk rebuild` did. */
export interface RebuildReport {
  aggregate: string
  partitions: PartitionRebuild[]
}

/**
 * Rebuilds the snapshots of one partition, or of every partition, of an aggregate type from its
 * event log, safely while the application runs.
 *
 * The CLI does what a processor does when it recovers with `rebuild: true`, with the same code:
 * it takes the partition's store with a new owner token (every write of the running processor is
 * refused from then on), drops its snapshots, checkpoint and unlogged outcomes, replays every
 * event, and marks the partition ready. A processor that holds the partition finds another owner
 * in the store at its next command and stands down as fenced; its transport opens the partition
 * again with a new fence, which takes the store back and continues from the store's checkpoint.
 * If that happens before the CLI is done, the CLI's next write is refused, and it follows the
 * processor's replay until the partition is ready.
 */
export async function rebuild(context: CliContext, aggregate: string, options: RebuildOptions = {}): Promise<RebuildReport> {
  const target = await context.target(aggregate)
  if (!target.cls) {
    throw new ConfigurationError(`rebuilding '${aggregate}' needs its class: list it in aggregates of esk.config.mjs (or .js), as createEsk gets it`)
  }
  const { partitions } = target.stream
  if (options.partition !== undefined && !(Number.isInteger(options.partition) && options.partition >= 0 && options.partition < partitions)) {
    throw new InvalidArgumentError(`partition must be an integer from 0 to ${partitions - 1} for '${aggregate}', got ${String(options.partition)}`)
  }
  const chosen = options.partition !== undefined ? [options.partition] : Array.from({ length: partitions }, (_, p) => p)
  const runtime = new AggregateRuntime(target.cls as Class<object>)
  const holders = await holdersOf(context, target)
  const bounds = await context.transport.eventLogBounds(target.stream)
  const report: RebuildReport = { aggregate: target.name, partitions: [] }
  const total = chosen.reduce((sum, p) => sum + (bounds[p]?.end ?? 0), 0)
  let finished = 0
  for (const partition of chosen) {
    const end = bounds[partition]?.end ?? 0
    const onProgress = options.onProgress
      ? (offset: number): void => options.onProgress!({ partition, offset, end, overall: { done: finished + Math.min(offset, end), total } })
      : undefined
    report.partitions.push(await rebuildOne(context, target, runtime, partition, end, holders.get(partition) ?? null, options.timeoutMs, onProgress))
    finished += end
  }
  return report
}

async function rebuildOne(
  context: CliContext,
  target: Target,
  runtime: AggregateRuntime<object>,
  partition: number,
  end: number,
  heldBy: string | null,
  timeoutMs: number | undefined,
  onProgress: ((offset: number) => void) | undefined,
): Promise<PartitionRebuild> {
  const started = Date.now()
  const observers = new Observers()
  let events = 0
  let offset = 0
  observers.on('recovery', (progress) => {
    if (progress.partition !== partition) return
    events = progress.events
    onProgress?.(offset)
  })
  // The transport as recovery sees it, noting how far each batch it reads reaches.
  const inner = context.transport
  const transport: Transport = {
    provision: (streams) => inner.provision(streams),
    send: (s, p, key, value) => inner.send(s, p, key, value),
    startProcessing: (streams, host) => inner.startProcessing(streams, host),
    stopProcessing: () => inner.stopProcessing(),
    eventLogBounds: (s) => inner.eventLogBounds(s),
    close: async () => undefined,
    async *readEvents(s, p, from, until) {
      for await (const batch of inner.readEvents(s, p, from, until)) {
        const last = batch[batch.length - 1]
        if (last) offset = last.offset + 1
        yield batch
      }
    },
  }
  const stop = new AbortController()
  const lease: PartitionLease = {
    stream: target.stream,
    partition,
    signal: stop.signal,
    // Recovery writes only to the store; a commit here would be a bug.
    writer: { commit: () => Promise.reject(new ClosedError('the esk CLI', 'the esk CLI rebuilds snapshots and never writes to the logs')) },
  }
  const processor = new PartitionProcessor(
    {
      runtime,
      transport,
      snapshots: context.store.snapshots,
      outcomes: context.store.outcomes,
      observers,
      logger: context.logger,
      rebuild: true,
      snapshotCacheSize: 0,
      replayCacheSize: ESK_DEFAULTS.replayCacheSize,
      maxEventBytes: ESK_DEFAULTS.maxEventBytes,
      dedupWindow: context.config.dedupWindow,
      handlerTimeoutMs: ESK_DEFAULTS.handlerTimeoutMs,
    },
    lease,
  )
  onProgress?.(0)
  try {
    await processor.open()
    onProgress?.(end)
    return { partition, result: 'rebuilt', events, end, heldBy, elapsedMs: Date.now() - started }
  } catch (error) {
    if (!hasCode(error, ErrorCode.Fenced)) throw error
  } finally {
    stop.abort()
    await processor.close().catch(() => undefined)
  }
  // A processor took the partition back: it replays from the checkpoint reached. Follow it.
  await followProcessor(context, target, partition, end, timeoutMs ?? 600_000, onProgress)
  return { partition, result: 'taken-over', events, end, heldBy, elapsedMs: Date.now() - started }
}

async function followProcessor(
  context: CliContext,
  target: Target,
  partition: number,
  end: number,
  timeoutMs: number,
  onProgress: ((offset: number) => void) | undefined,
): Promise<void> {
  const key = new PartitionKeys(context.config.keyPrefix, target.stream, partition).state
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const [ready, offset] = await context.store.client.hmget(key, StateFields.ready, StateFields.offset)
    onProgress?.(Math.min(end, Number(offset ?? 0)))
    if (ready === '1') return
    if (Date.now() > deadline) {
      throw new UnavailableError(
        `a processor took ${target.name}/${partition} back during the rebuild and has not finished replaying it within ` +
          `${timeoutMs} ms; see esk status, or run the rebuild again`,
        { aggregate: target.name, partition },
      )
    }
    await sleep(250)
  }
}

/** The processor group member holding each partition now (`clientId@host`). */
async function holdersOf(context: CliContext, target: Target): Promise<Map<number, string>> {
  const admin = await context.admin()
  const described = await admin.describeGroups([target.names.group])
  return groupMembers(described.groups[0], target.names.commands).members
}
