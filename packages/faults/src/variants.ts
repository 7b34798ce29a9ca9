/*
 * The broken variants of a processor process (see VARIANTS in config.ts): wrappers around the
 * driver that `processor-main.ts` gives esk, each taking one guarantee away, so that a test can
 * show the checker reports what follows. esk's own code runs unchanged inside them.
 */
import { randomUUID } from 'node:crypto'
import type { PartitionLease, PartitionWriter, Store, Transport } from '@esk/core/driver'
import { streamNames, type KafkaTransport, type StreamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { Redis } from 'ioredis'
import { Partitioners, type Producer } from 'kafkajs'
import { AGGREGATE, type RunConfig } from './config.js'
import { partitionKeys } from './store-view.js'

/** How long an unfenced writer's producer outlives its lease, so a batch in flight can still commit. */
const LINGER_MS = 30_000

/**
 * `unfenced-writer`: the transport as it is, except that each partition lease writes through a
 * transactional producer with a random id. The transport still initialises the partition's fixed
 * id when it takes the partition, but no owner commits with that id any more, so the fence hits
 * nothing: an owner that lost the partition (a zombie) commits its batch beside the new owner's.
 */
export function unfencedTransport(transport: KafkaTransport, config: RunConfig): Transport {
  return {
    provision: (streams) => transport.provision(streams),
    send: (stream, partition, key, value) => transport.send(stream, partition, key, value),
    readEvents: (stream, partition, from, until) => transport.readEvents(stream, partition, from, until),
    startProcessing: (streams, host) =>
      transport.startProcessing(streams, {
        reportError: (error, context) => host.reportError(error, context),
        open: async (lease) => host.open({ ...lease, writer: await unfencedWriter(transport, config, lease) }),
      }),
    stopProcessing: () => transport.stopProcessing(),
    close: () => transport.close(),
  }
}

async function unfencedWriter(transport: KafkaTransport, config: RunConfig, lease: PartitionLease): Promise<PartitionWriter> {
  const names = streamNames(config.topicPrefix, lease.stream.aggregate)
  const producer = transport.client.producer({
    transactionalId: `${TransactionalWriter.transactionalId(names, lease.partition)}.unfenced.${randomUUID()}`,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  lease.signal.addEventListener('abort', () => setTimeout(() => void producer.disconnect().catch(() => undefined), LINGER_MS), { once: true })
  // esk's own writer (its commit code unchanged) over that producer. Its constructor is private
  // to esk, so it is reached through a cast; its parameters are (producer, names, partition,
  // first retry delay after CONCURRENT_TRANSACTIONS in ms).
  const Writer = TransactionalWriter as unknown as new (producer: Producer, names: StreamNames, partition: number, retryMs: number) => PartitionWriter
  return new Writer(producer, names, lease.partition, 5)
}

/**
 * `no-dedup`: every snapshot comes back from a load without its window of recent command ids. Its
 * processors hold no snapshots between batches (see processor-main.ts), so every batch loads.
 */
export function withoutDedup(store: Store): Store {
  const snapshots = Object.create(store.snapshots) as Store['snapshots']
  snapshots.load = async (...args) => {
    const loaded = await store.snapshots.load(...args)
    const stripped = new Map([...loaded.snapshots].map(([id, snapshot]) => [id, { ...snapshot, recent: [] }]))
    return { ...loaded, snapshots: stripped }
  }
  return { snapshots, outcomes: store.outcomes, close: () => store.close() }
}

/**
 * `stale-snapshot`: around each save, the saved aggregates' stored snapshots are read first;
 * after the save, one in five times, one of them that existed before is written back as it was,
 * with a plain Redis client (esk's store refuses a save that goes backwards, so the variant goes
 * around it). The next command on that aggregate is decided on its older state.
 */
export function withStaleSnapshots(store: Store, config: RunConfig): Store {
  const redis = new Redis({ path: config.redisPath, maxRetriesPerRequest: 2 })
  redis.on('error', () => undefined)
  const location = { prefix: config.keyPrefix, aggregate: AGGREGATE, partitions: config.partitions }
  const snapshots = Object.create(store.snapshots) as Store['snapshots']
  snapshots.save = async (stream, partition, token, write) => {
    const key = partitionKeys(location, partition).state
    const ids = write.snapshots.map((s) => s.aggregateId)
    const fields = ids.flatMap((id) => [`s:${id}`, `o:${id}`, `w:${id}`, `t:${id}`])
    const before = ids.length === 0 ? [] : await redis.hmget(key, ...fields)
    await store.snapshots.save(stream, partition, token, write)
    const k = ids.findIndex((_, i) => before[4 * i] != null && before[4 * i + 1] != null)
    if (k >= 0 && Math.random() < 0.2) {
      // The whole stored snapshot as it was: its window too, in the fields it had of its own.
      const back = [0, 1, 2, 3].flatMap((j) => (before[4 * k + j] == null ? [] : [fields[4 * k + j]!, before[4 * k + j]!]))
      await redis.hset(key, ...back)
    }
  }
  return {
    snapshots,
    outcomes: store.outcomes,
    close: async () => {
      redis.disconnect()
      await store.close()
    },
  }
}
