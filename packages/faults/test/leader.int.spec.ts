import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Kafka, logLevel } from 'kafkajs'
import { describe, expect, it } from 'vitest'
import { CHECKS } from '../src/checker.js'
import { topics } from '../src/config.js'
import { deleteRunTopics, PROFILES, runScenario, stackBrokers } from '../src/harness.js'
import { summaryTable } from '../src/summary.js'

/*
 * The leader scenario on the three-node cluster of `scripts/stack.sh start --cluster`: the node
 * leading an event or command partition is killed with -9 under load and started again, twice,
 * and the checker must find nothing. It kills nodes of that cluster, so it runs only when
 * ESK_STACK_MODE=cluster says the stack is the cluster (brokers from ESK_KAFKA_CLUSTER_PORT or
 * ESK_KAFKA_BROKERS), as packages/kafka/test/cluster.int.spec.ts does.
 *
 * Replay a failure with: ESK_STACK_MODE=cluster node packages/faults/dist/main.js --stack cluster --profile short --seed <seed>
 */

const onCluster = process.env.ESK_STACK_MODE === 'cluster'
const DIST = fileURLToPath(new URL('../dist/processor-main.js', import.meta.url))
const stackDir = process.env.ESK_STACK_DIR ?? fileURLToPath(new URL('../../../.stack', import.meta.url))
const seed = Number(process.env.ESK_FAULTS_SEED ?? Math.floor(Math.random() * 1_000_000))

describe.runIf(onCluster)(`the leader scenario on the three-broker cluster (seed ${seed})${onCluster ? '' : ': skipped, it needs ESK_STACK_MODE=cluster and scripts/stack.sh start --cluster'}`, () => {
  it('kills partition leaders under load with no violation, on topics replicated three times, and deletes them after', async () => {
    expect(existsSync(DIST), 'build first: the harness starts processes from dist/').toBe(true)
    const brokers = stackBrokers('cluster')
    const env = { brokers, stackDir, stack: 'cluster' as const, workDir: mkdtempSync(join(tmpdir(), 'esk-faults-leader-')), log: (line: string) => console.log(line) }
    const report = await runScenario('leader', PROFILES.short!, seed, env, { deleteTopics: false })
    const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin()
    await admin.connect()
    try {
      console.log(summaryTable([report]))
      expect(report.failure).toBeUndefined()
      expect(report.crashes, "processes that exited by themselves").toEqual([])
      expect(report.faults.length).toBeGreaterThanOrEqual(2)
      for (const fault of report.faults) {
        expect(fault.kind).toMatch(/^leader:(events|commands)$/)
        expect(fault.failoverMs, `${fault.kind}: every partition answers with the node down`).not.toBeNull()
        expect(fault.recoveryMs, `${fault.kind}: every partition answers after the restart`).not.toBeNull()
      }
      expect(report.accepted).toBeGreaterThan(20)
      expect(report.violations, JSON.stringify(report.details.slice(0, 5))).toEqual(Object.fromEntries(CHECKS.map((c) => [c, 0])))

      // The run's topics were created with replication factor 3, so one node down loses nothing.
      const names = topics({ topicPrefix: report.topicPrefix })
      const metadata = await admin.fetchTopicMetadata({ topics: [names.commands, names.events] })
      for (const topic of metadata.topics) {
        expect(topic.partitions.map((p) => p.replicas.length), topic.name).toEqual(topic.partitions.map(() => 3))
      }
    } finally {
      // ... and are gone after, the dead-letter topic too.
      const deleted = await deleteRunTopics(brokers, report.topicPrefix)
      expect(deleted).toHaveLength(3)
      const left = (await admin.listTopics()).filter((t) => t.startsWith(report.topicPrefix))
      await admin.disconnect()
      expect(left).toEqual([])
    }
  }, 600_000)
})
