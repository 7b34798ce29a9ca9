import { ConfigurationError, type StreamSpec } from '@esk/core'
import type { Admin } from 'kafkajs'
import { ConfigResourceTypes } from './kafkajs.js'
import { kafkaErrorType } from './errors.js'
import { streamNames, type ResolvedKafkaOptions } from './options.js'

/**
 * Creates the command, event and dead-letter topics of each stream, or checks existing ones: all
 * must have the stream's partition count (an aggregate's commands and events share a partition
 * number), and the event topic must keep everything forever and never compact (it is the truth).
 * Dead letters are kept forever too: they are few, and each is a command someone must look at.
 */
export async function provisionTopics(admin: Admin, options: ResolvedKafkaOptions, streams: readonly StreamSpec[]): Promise<void> {
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
        // Another process may have created them at the same moment; the checks below decide.
        if (kafkaErrorType(error) !== 'TOPIC_ALREADY_EXISTS') throw error
      }
    }
    const counts = await partitionCounts(admin, topics)
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

async function partitionCounts(admin: Admin, topics: string[]): Promise<Map<string, number>> {
  const listed = new Set(await admin.listTopics())
  const present = topics.filter((t) => listed.has(t))
  const counts = new Map<string, number>()
  if (present.length === 0) return counts
  const metadata = await admin.fetchTopicMetadata({ topics: present })
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
