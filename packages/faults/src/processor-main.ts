/**
 * A processor process of a fault run: one member of the run's consumer group, on Kafka and the
 * run's redis-server. Prints `ready` on stdout once `createEsk` returns. SIGTERM closes it
 * cleanly; SIGUSR2 arms the fault named in its control file (see {@link ArmedFault}). With a
 * `variant` in its config it runs broken on purpose (see `variants.ts`).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { createEsk } from '@esk/core'
import { type Store } from '@esk/core/driver'
import { kafkaTransport } from '@esk/kafka'
import { redisStore } from '@esk/redis'
import { controlFile, type ArmedFault, type RunConfig } from './config.js'
import { Account, handlerHook } from './domain.js'
import { unfencedTransport, withoutDedup, withStaleSnapshots } from './variants.js'

const config = JSON.parse(process.argv[2] ?? '{}') as RunConfig
let armed: ArmedFault | undefined

process.on('SIGUSR2', () => {
  const file = controlFile(config.dir, process.pid)
  if (!existsSync(file)) return
  const fault = (JSON.parse(readFileSync(file, 'utf8')) as { fault: ArmedFault }).fault
  armed = fault === 'none' ? undefined : fault
  rmSync(file, { force: true })
  process.stderr.write(`armed ${armed}\n`)
})

handlerHook.inHandler = () => {
  if (armed !== 'stop-in-handler') return
  armed = undefined
  process.stdout.write('stopped-in-handler\n')
  process.kill(process.pid, 'SIGSTOP')
}

/** The run's store, with the armed kill points around snapshot loads and saves. */
function instrumented(store: Store): Store {
  const snapshots = Object.create(store.snapshots) as Store['snapshots']
  snapshots.load = async (...args) => {
    const loaded = await store.snapshots.load(...args)
    if (armed === 'kill-after-load') process.kill(process.pid, 'SIGKILL')
    return loaded
  }
  snapshots.save = async (...args) => {
    if (armed === 'kill-before-save') process.kill(process.pid, 'SIGKILL')
    return store.snapshots.save(...args)
  }
  return { snapshots, outcomes: store.outcomes, close: () => store.close() }
}

const transport = kafkaTransport({
  brokers: config.brokers,
  topicPrefix: config.topicPrefix,
  replicationFactor: config.replicationFactor ?? -1,
  sessionTimeoutMs: config.sessionTimeoutMs,
  heartbeatIntervalMs: Math.max(100, Math.floor(config.sessionTimeoutMs / 5)),
})
let store: Store = redisStore({ url: config.redisPath, keyPrefix: config.keyPrefix })
if (config.variant === 'no-dedup') store = withoutDedup(store)
if (config.variant === 'stale-snapshot') store = withStaleSnapshots(store, config)
if (config.variant !== undefined) process.stderr.write(`running the broken variant ${config.variant}\n`)

const app = await createEsk({
  aggregates: [{ aggregate: Account, partitions: config.partitions }],
  driver: {
    transport: config.variant === 'unfenced-writer' ? unfencedTransport(transport, config) : transport,
    store: instrumented(store),
  },
  processing: true,
  // Aggregates held between batches are never loaded again, so without this the broken load of
  // `no-dedup` would only show after a restart.
  ...(config.variant === 'no-dedup' && { snapshotCacheSize: 0 }),
})
process.stdout.write('ready\n')

let closing = false
process.on('SIGTERM', () => {
  if (closing) return
  closing = true
  const timer = setTimeout(() => process.exit(3), 30_000)
  app.close().then(
    () => {
      clearTimeout(timer)
      process.exit(0)
    },
    (error: unknown) => {
      process.stderr.write(`close failed: ${String(error)}\n`)
      process.exit(2)
    },
  )
})
