import { ConfigurationError } from '@esk/core'
import { sleep, type StreamSpec } from '@esk/core/driver'
import type { Admin } from 'kafkajs'
import { ConfigResourceTypes } from './kafkajs.js'
import { kafkaErrorType } from './errors.js'
import { streamNames, type ResolvedKafkaOptions } from './options.js'

/** An admin client that talks to one broker (`host:port`) only; the caller connects and closes it. */
export type BrokerAdminFactory = (broker: string) => Admin

/**
 * Creates the command, event and dead-letter topics of each stream, or checks existing ones: all
 * must have the stream's partition count (an aggregate's commands and events share a partition
 * number), and the event topic must keep everything forever and never compact (it is the truth).
 * Dead letters are kept forever too: they are few, and each is a command someone must look at. Topics
 * it created are in every broker's metadata when it returns.
 */
export async function provisionTopics(
  admin: Admin,
  options: ResolvedKafkaOptions,
  streams: readonly StreamSpec[],
  brokerAdmin: BrokerAdminFactory,
): Promise<void> {
  for (const stream of streams) {
    const names = streamNames(options.topicPrefix, stream.aggregate)
    const topics = [names.commands, names.events, names.deadLetters]
    const existing = await partitionCounts(admin, topics)
    const missing = [
      !existing.has(names.commands) && {
        topic: names.commands,
        numPartitions: stream.partitions,
        replicationFactor: options.replicationFactor,
        configEntries: [
          { name: 'cleanup.policy', value: 'delete' },
          { name: 'retention.ms', value: String(options.commandRetentionMs) },
        ],
      },
      !existing.has(names.events) && {
        topic: names.events,
        numPartitions: stream.partitions,
        replicationFactor: options.replicationFactor,
        configEntries: [
          { name: 'cleanup.policy', value: 'delete' },
          { name: 'retention.ms', value: '-1' },
          { name: 'retention.bytes', value: '-1' },
        ],
      },
      !existing.has(names.deadLetters) && {
        topic: names.deadLetters,
        numPartitions: stream.partitions,
        replicationFactor: options.replicationFactor,
        configEntries: [
          { name: 'cleanup.policy', value: 'delete' },
          { name: 'retention.ms', value: '-1' },
        ],
      },
    ].filter((t) => t !== false)
    if (missing.length > 0) {
      try {
        await admin.createTopics({ topics: missing, waitForLeaders: true })
      } catch (error) {
        // Another process may have created them at the same moment; the checks below decide. On
        // a cluster, the broker that created them can answer kafkajs's wait for their leaders
        // before it has applied them itself: created, then, and awaited below.
        const type = kafkaErrorType(error)
        if (type !== 'TOPIC_ALREADY_EXISTS' && type !== UNKNOWN_TOPIC) throw error
      }
    }
    // Also when another process created them a moment ago: a broker that has not applied them yet
    // answers as if they did not exist, or had no partitions.
    await awaitEveryBroker(admin, brokerAdmin, topics)
    const read = (): Promise<Map<string, number>> =>
      partitionCounts(admin, topics).catch((error: unknown) => {
        if (kafkaErrorType(error) === UNKNOWN_TOPIC) return new Map<string, number>()
        throw error
      })
    let counts = await read()
    for (const deadline = Date.now() + TOPIC_PROPAGATION_TIMEOUT_MS; Date.now() < deadline; ) {
      if (topics.every((t) => (counts.get(t) ?? 0) > 0)) break
      await sleep(200)
      counts = await read()
    }
    for (const topic of topics) {
      const count = counts.get(topic)
      if (count !== stream.partitions) {
        throw new ConfigurationError(
          `topic ${topic} has ${count ?? 'no'} partitions but aggregate '${stream.aggregate}' is configured with ` +
            `${stream.partitions}; the command, event and dead-letter topics must all have exactly that many (ids are ` +
            `hashed to partitions): configure partitions: ${count ?? stream.partitions}, or use a new topicPrefix`,
          { topic, partitions: count, expected: stream.partitions },
        )
      }
    }
    await checkEventRetention(admin, names.events)
  }
}

const UNKNOWN_TOPIC = 'UNKNOWN_TOPIC_OR_PARTITION'

/**
 * How long a new topic may take to reach every broker's metadata. Each broker of a cluster learns
 * of it from the metadata log on its own, and until then answers as if it did not exist, so a
 * client asking that broker next (a consumer subscribing, a producer sending) would fail.
 */
const TOPIC_PROPAGATION_TIMEOUT_MS = 15_000

/**
 * Waits until each broker, asked on its own, knows the topics. One broker (a single node) knows
 * what it created. At the timeout it gives up quietly: this only spares the clients that come
 * next a retry, and they report their own errors.
 */
async function awaitEveryBroker(admin: Admin, brokerAdmin: BrokerAdminFactory, topics: string[]): Promise<void> {
  const { brokers } = await admin.describeCluster()
  if (brokers.length < 2) return
  const deadline = Date.now() + TOPIC_PROPAGATION_TIMEOUT_MS
  await Promise.all(
    brokers.map(async ({ host, port }) => {
      const one = brokerAdmin(`${host}:${port}`)
      try {
        await one.connect()
        for (let pause = 25; Date.now() < deadline; pause = Math.min(pause * 2, 500)) {
          if (await knowsTopics(one, topics)) return
          await sleep(pause)
        }
      } catch {
        // A broker that cannot be reached now is left to the clients' own retries.
      } finally {
        await one.disconnect().catch(() => undefined)
      }
    }),
  )
}

/** True when the broker this admin was bootstrapped with has every topic in its metadata. */
async function knowsTopics(admin: Admin, topics: string[]): Promise<boolean> {
  try {
    const metadata = await admin.fetchTopicMetadata({ topics })
    return topics.every((t) => metadata.topics.some((m) => m.name === t && m.partitions.length > 0))
  } catch (error) {
    if (kafkaErrorType(error) === UNKNOWN_TOPIC) return false
    throw error
  }
}

async function partitionCounts(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  const listed = new Set(await admin.listTopics())
  const present = topics.filter((t) => listed.has(t))
  const counts = new Map<string, number>()
  if (present.length === 0) return counts
  let metadata: Awaited<ReturnType<Admin['fetchTopicMetadata']>>
  try {
    metadata = await admin.fetchTopicMetadata({ topics: present })
  } catch (error) {
    // Listed by one broker, unknown to the next one asked: just created by another process.
    // Absent, as far as this call can tell; creating it then meets TOPIC_ALREADY_EXISTS.
    if (kafkaErrorType(error) === UNKNOWN_TOPIC) return counts
    throw error
  }
  for (const topic of metadata.topics) counts.set(topic.name, topic.partitions.length)
  return counts
}

async function checkEventRetention(admin: Admin, topic: string): Promise<void> {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['cleanup.policy', 'retention.ms', 'retention.bytes'] }],
  })
  const entries = new Map(described.resources[0]?.configEntries.map((e) => [e.configName, e.configValue]) ?? [])
  const problems: string[] = []
  if ((entries.get('cleanup.policy') ?? '').includes('compact')) problems.push('cleanup.policy includes compact')
  if (entries.get('retention.ms') !== '-1') problems.push(`retention.ms is ${entries.get('retention.ms')}, not -1`)
  if (entries.has('retention.bytes') && entries.get('retention.bytes') !== '-1') {
    problems.push(`retention.bytes is ${entries.get('retention.bytes')}, not -1`)
  }
  if (problems.length > 0) {
    throw new ConfigurationError(
      `event topic ${topic} would lose events (${problems.join('; ')}); it is the source of truth: set ` +
        `cleanup.policy=delete, retention.ms=-1 and retention.bytes=-1 on it`,
      { topic, problems },
    )
  }
}
