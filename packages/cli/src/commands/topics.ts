import kafkajs from 'kafkajs'
import type { CliContext } from '../context.js'

const { ConfigResourceTypes } = kafkajs

/** A problem `topics check` found: an `error` makes it exit 1; a `warning` is only reported. */
export interface TopicProblem {
  severity: 'error' | 'warning'
  message: string
}

/** One topic as `topics check` saw it. */
export interface TopicCheck {
  topic: string
  role: 'commands' | 'events' | 'dead-letters'
  exists: boolean
  partitions: number | null
  cleanupPolicy: string | null
  retentionMs: string | null
  retentionBytes: string | null
  problems: TopicProblem[]
}

/** What `topics check` found. */
export interface TopicsReport {
  /** False when any topic has an error. */
  ok: boolean
  aggregates: Array<{ aggregate: string; expectedPartitions: number | null; topics: TopicCheck[] }>
}

/**
 * Compares the command, event and dead-letter topics of every (or one) aggregate type with what
 * esk needs: all three exist with the same partition count (the configured one, when configured);
 * the event topic keeps everything (cleanup.policy=delete, retention.ms=-1, retention.bytes=-1:
 * it is the truth); no topic is compacted (compaction keeps one record per aggregate id and would
 * drop commands, events and dead letters); dead letters should be kept forever.
 */
export async function topicsCheck(context: CliContext, aggregate?: string): Promise<TopicsReport> {
  const admin = await context.admin()
  const listed = new Set(await admin.listTopics())
  const report: TopicsReport = { ok: true, aggregates: [] }
  for (const target of await context.targets(aggregate)) {
    const { names } = target
    const roles = [
      { topic: names.commands, role: 'commands' as const },
      { topic: names.events, role: 'events' as const },
      { topic: names.deadLetters, role: 'dead-letters' as const },
    ]
    const present = roles.filter((r) => listed.has(r.topic)).map((r) => r.topic)
    const counts = new Map<string, number>()
    const configs = new Map<string, Map<string, string>>()
    if (present.length > 0) {
      const metadata = await admin.fetchTopicMetadata({ topics: present })
      for (const t of metadata.topics) counts.set(t.name, t.partitions.length)
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: present.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['cleanup.policy', 'retention.ms', 'retention.bytes'] })),
      })
      for (const resource of described.resources) {
        configs.set(resource.resourceName, new Map(resource.configEntries.map((e) => [e.configName, e.configValue])))
      }
    }
    const expected = target.partitions ?? null
    const reference = expected ?? counts.get(names.commands) ?? null
    const topics = roles.map(({ topic, role }): TopicCheck => {
      const config = configs.get(topic) ?? new Map<string, string>()
      const check: TopicCheck = {
        topic,
        role,
        exists: listed.has(topic),
        partitions: counts.get(topic) ?? null,
        cleanupPolicy: config.get('cleanup.policy') ?? null,
        retentionMs: config.get('retention.ms') ?? null,
        retentionBytes: config.get('retention.bytes') ?? null,
        problems: [],
      }
      const error = (message: string): void => void check.problems.push({ severity: 'error', message })
      const warning = (message: string): void => void check.problems.push({ severity: 'warning', message })
      if (!check.exists) {
        error('missing: an application creates it on start (createEsk provisions its topics)')
        return check
      }
      if (reference !== null && check.partitions !== reference) {
        error(
          `has ${check.partitions} partitions, expected ${reference}${expected !== null ? ' (configured)' : ' (as the command topic)'}: ` +
            'ids are hashed to partitions, and an aggregate\'s commands, events and dead letters share a partition number',
        )
      }
      if ((check.cleanupPolicy ?? '').includes('compact')) {
        error(`cleanup.policy is ${check.cleanupPolicy}: compaction keeps one record per aggregate id and drops the rest; set cleanup.policy=delete`)
      }
      if (role === 'events') {
        if (check.retentionMs !== '-1') error(`retention.ms is ${check.retentionMs}, not -1: the event topic is the truth and must keep every event`)
        if (check.retentionBytes !== null && check.retentionBytes !== '-1') {
          error(`retention.bytes is ${check.retentionBytes}, not -1: the event topic is the truth and must keep every event`)
        }
      }
      if (role === 'dead-letters' && check.retentionMs !== '-1') {
        warning(`retention.ms is ${check.retentionMs}: dead letters older than that are deleted before anyone looks at them`)
      }
      return check
    })
    if (topics.some((t) => t.problems.some((p) => p.severity === 'error'))) report.ok = false
    report.aggregates.push({ aggregate: target.name, expectedPartitions: expected, topics })
  }
  return report
}
