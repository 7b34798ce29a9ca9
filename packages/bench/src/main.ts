/**
 * `npm run bench -- --profile quick|full [--only stages] [--systems esk,tx,plain] [--from report.json]` (`--help` lists every option)
 *
 * Warms the broker, then measures esk against the hand-written baselines in the same run,
 * interleaved window by window, and writes `reports/bench-<date>.json`, docs/benchmarks.md's
 * figures section and its charts. See docs/benchmarks.md for what each stage measures.
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { ESK_DEFAULTS } from '@esk/core'
import { kafkaTransport, logLevel, resolveKafkaOptions, streamNames } from '@esk/kafka'
import { TransactionalWriter } from '@esk/kafka/driver'
import { localStack } from '@esk/testing/stack'
import { stackPids } from './cpu.js'
import { topFunctions, type CpuProfile, type HotFunction } from './cpuprofile.js'
import { dropKeys, measureMemory, type MemoryResult } from './memory.js'
import { uniform, type Profile } from './profile.js'
import { USAGE, UsageError, parseCommandLine, type BenchOptions } from './cli.js'
import { projections, type ProjectionResult } from './projections.js'
import { recovery, type RecoveryResult } from './recovery.js'
import { writeDocs } from './report.js'
import { spread } from './stats.js'
import { sweepRates } from './schedule.js'
import { Session, profileBase, type BenchEnv, type WindowResult } from './session.js'
import { windowProfileFiles } from './window-profile.js'
import { dropTopics, type SystemName } from './systems.js'

/** Everything a run measured; the JSON report and the input of the docs. */
export interface BenchReport {
  date: string
  profile: Profile
  stages: string[]
  machine: {
    cpus: number
    cpuModel: string | undefined
    memoryGiB: number
    node: string
    /** Flags every processor and client ran with (`--node-flags`). */
    nodeFlags?: string[]
    kafkaVersion: string
    loadAverageStart: number[]
    loadAverageEnd: number[]
  }
  warmup?: { transactions: number; seconds: number }
  setups: Array<{ system: SystemName; partitions: number; processors: number; aggregates: number; seconds: number; failed: number }>
  throughput: WindowResult[]
  openLoop: WindowResult[]
  workloads: WindowResult[]
  memory: MemoryResult[]
  /**
   * With --cpu-prof: each processor's top functions by self time over its measuring windows
   * (`files`, one profile per window).
   */
  cpuProfiles?: Array<{ system: SystemName; partitions: number; processors: number; files: string[]; top: HotFunction[] }>
  recovery?: RecoveryResult
  projections?: ProjectionResult[]
  /** Stages that failed; the others still ran. */
  failures: Array<{ stage: string; error: string }>
  durationSeconds: number
}

let options: BenchOptions
try {
  options = parseCommandLine(process.argv.slice(2))
} catch (error) {
  if (!(error instanceof UsageError)) throw error
  process.stderr.write(`bench: ${error.message}\n\n${USAGE}\n`)
  process.exit(2)
}
if (options.help) {
  console.log(USAGE)
  process.exit(0)
}

/** The Kafka version of the stack's broker, from its class path; "unknown" elsewhere. */
function kafkaVersion(stackDir: string | undefined): string {
  for (const [name, pid] of Object.entries(stackPids(stackDir))) {
    if (!name.startsWith('kafka')) continue
    try {
      const match = /kafka_[\d.]+-(\d+\.\d+\.\d+)/.exec(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))
      if (match) return match[1]!
    } catch {
      // not running
    }
  }
  return process.env.ESK_KAFKA_VERSION ?? 'unknown'
}

const log = (text: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${text}`)

/** A few thousand transactions on 4 partitions in parallel, so the broker's JIT and caches are warm. */
async function warmup(env: BenchEnv, transactions: number): Promise<{ transactions: number; seconds: number }> {
  const prefix = `bench${randomUUID().slice(0, 8)}.`
  const quiet = { brokers: env.brokers, logLevel: logLevel.ERROR, topicPrefix: prefix }
  const transport = kafkaTransport(quiet)
  const started = performance.now()
  let done = 0
  try {
    await transport.provision([{ aggregate: 'warmup', partitions: 4 }])
    const options = resolveKafkaOptions(quiet)
    const deadline = Date.now() + 120_000
    await Promise.all(
      [0, 1, 2, 3].map(async (p) => {
        const writer = await TransactionalWriter.open(transport.client, options, streamNames(prefix, 'warmup'), p)
        for (let i = 0; i < transactions / 4 && Date.now() < deadline; i++, done++) {
          const events = [{ aggregateId: `w${i}`, type: 'warmup', version: 1, commandId: `c${i}`, commandPosition: i, payload: '{}' }]
          // On a broker just started, the group coordinator is not available until the offsets
          // topic is loaded: the first transactions fail with a retriable error. Try again.
          for (;;) {
            try {
              await writer.commit(events, i)
              break
            } catch (error) {
              if ((error as { retriable?: boolean }).retriable !== true || Date.now() >= deadline) throw error
              await sleep(500)
            }
          }
        }
        await writer.close()
      }),
    )
  } finally {
    await transport.close()
    await dropTopics(env.brokers, prefix).catch(() => undefined)
  }
  return { transactions: done, seconds: Math.round((performance.now() - started) / 10) / 100 }
}

/** The systems in turn, starting one further each repetition, so none always follows the same one. */
function rotated<T>(items: T[], by: number): T[] {
  const start = by % Math.max(1, items.length)
  return [...items.slice(start), ...items.slice(0, start)]
}

/** Closes the sessions and deletes their topics and keys. */
async function closeAll(env: BenchEnv, sessions: Session[]): Promise<void> {
  for (const session of sessions) {
    await session.close()
    await dropKeys(env.redisUrl, session.config.prefix)
    await dropTopics(env.brokers, session.config.prefix).catch(() => undefined)
  }
}

/**
 * For each partition count and processor count: a session per system, then the closed-loop
 * windows interleaved system by system, the open-loop sweep, the Redis memory, and the workloads.
 */
async function loadStages(env: BenchEnv, profile: Profile, stages: Set<string>, report: BenchReport): Promise<void> {
  const workloadCombo = { partitions: profile.workloadPartitions, processors: profile.processors[0]! }
  const combos: Array<{ partitions: number; processors: number }> = []
  if (stages.has('throughput') || stages.has('openloop') || stages.has('memory')) {
    for (const partitions of profile.partitions) for (const processors of profile.processors) combos.push({ partitions, processors })
  }
  if (stages.has('workloads') && !combos.some((c) => c.partitions === workloadCombo.partitions && c.processors === workloadCombo.processors)) {
    combos.push(workloadCombo)
  }
  let memoryDone = false
  for (const { partitions, processors } of combos) {
    const sessions: Session[] = []
    try {
      for (const system of profile.systems) {
        log(`${system}: ${partitions} partition(s), ${processors} processor(s): starting and creating ${profile.aggregates} aggregates`)
        const session = await Session.open(env, system, partitions, processors)
        sessions.push(session)
        const setup = await session.setup(profile.aggregates)
        report.setups.push({ system, partitions, processors, aggregates: profile.aggregates, seconds: Math.round(setup.seconds * 100) / 100, failed: setup.failed })
      }
      // One unrecorded window each, so no system's first recorded window pays for its JIT or cold caches.
      for (const session of sessions) await session.measure(uniform(profile.aggregates), { mode: 'closed', inFlight: profile.inFlight[0]! }, profile.warmS, 1)
      const closedMedian = new Map<SystemName, number>()
      if (stages.has('throughput')) {
        for (const inFlight of profile.inFlight) {
          for (let rep = 0; rep < profile.repetitions; rep++) {
            for (const session of rotated(sessions, rep)) {
              const result = await session.measure(uniform(profile.aggregates), { mode: 'closed', inFlight }, profile.warmS, profile.measureS)
              report.throughput.push(result)
              log(`  closed ${inFlight} in flight, ${session.system} #${rep + 1}: ${result.commandsPerSecond}/s p99 ${result.latency.p99Ms} ms, ${result.cpuUsPerCommand} µs/cmd, others ${result.cpu.others.toFixed(2)} cores`)
            }
          }
        }
        for (const session of sessions) {
          const windows = report.throughput.filter((r) => r.system === session.system && r.partitions === partitions && r.processors === processors && r.load.mode === 'closed' && r.load.inFlight === profile.inFlight[0])
          closedMedian.set(session.system, spread(windows.map((w) => w.commandsPerSecond)).median)
        }
      }
      if (stages.has('openloop') && processors === 1 && profile.openLoopPartitions.includes(partitions)) {
        // Each system at fractions of its own closed-loop maximum (a probe window if none was measured).
        const rates = new Map<SystemName, number[]>()
        for (const session of sessions) {
          let maximum = closedMedian.get(session.system)
          if (!(maximum! > 0)) {
            maximum = (await session.measure(uniform(profile.aggregates), { mode: 'closed', inFlight: profile.inFlight[0]! }, profile.warmS, profile.measureS)).commandsPerSecond
          }
          rates.set(session.system, sweepRates(Math.max(1, maximum ?? 1), profile.openLoopFractions))
        }
        // A system that fails a window (it cannot drain an overload within the bound) runs no more
        // windows here; the other systems, and the configurations after this one, still run.
        const overloaded = new Set<SystemName>()
        for (let rep = 0; rep < profile.openLoopRepetitions; rep++) {
          for (let step = 0; step < profile.openLoopFractions.length; step++) {
            for (const session of rotated(sessions, rep + step)) {
              const rate = rates.get(session.system)![step]
              if (rate === undefined || overloaded.has(session.system)) continue
              try {
                const result = await session.measure(uniform(profile.aggregates), { mode: 'open', rate }, profile.warmS, profile.measureS)
                report.openLoop.push(result)
                log(`  open ${rate}/s, ${session.system} #${rep + 1}: ${result.commandsPerSecond}/s p99 ${result.latency.p99Ms} ms p99.9 ${result.latency.p999Ms} ms`)
              } catch (error) {
                overloaded.add(session.system)
                const stage = `openloop ${session.system} ${partitions} partition(s) ${rate}/s`
                report.failures.push({ stage, error: String((error as Error)?.message ?? error) })
                log(`  open ${rate}/s, ${session.system} #${rep + 1}: failed, no more open-loop windows for it here: ${String(error)}`)
              }
            }
          }
        }
      }
      if (stages.has('memory') && !memoryDone && processors === 1) {
        for (const session of sessions) report.memory.push(await measureMemory(session.config))
        memoryDone = true
      }
      if (stages.has('workloads') && partitions === workloadCombo.partitions && processors === workloadCombo.processors) {
        for (const workload of profile.workloads) {
          for (let rep = 0; rep < profile.workloadRepetitions; rep++) {
            for (const session of rotated(sessions, rep)) {
              const result = await session.measure(workload, { mode: 'closed', inFlight: profile.inFlight[0]! }, profile.warmS, profile.measureS)
              report.workloads.push(result)
              log(`  ${workload.name}, ${session.system} #${rep + 1}: ${result.commandsPerSecond}/s p99 ${result.latency.p99Ms} ms${result.find ? `, find p99 ${result.find.p99Ms} ms` : ''}`)
            }
          }
        }
      }
    } finally {
      await closeAll(env, sessions)
    }
    if (env.cpuProfileDir) {
      const written = readdirSync(env.cpuProfileDir)
      for (const session of sessions) {
        for (let i = 1; i <= processors; i++) {
          const files = windowProfileFiles(written, profileBase(env.cpuProfileDir, session.system, partitions, processors, String(i)))
          if (files.length === 0) continue
          const top = topFunctions(files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), 15)
          ;(report.cpuProfiles ??= []).push({ system: session.system, partitions, processors, files, top })
        }
      }
    }
  }
}

async function main(): Promise<void> {
  const docsDir = new URL('../../../docs/', import.meta.url)
  if (options.from) {
    const report = JSON.parse(readFileSync(options.from, 'utf8')) as BenchReport
    writeDocs(report, options.from, docsDir)
    log(`docs/benchmarks.md regenerated from ${options.from}`)
    return
  }
  const { profile, stages } = options
  const stack = localStack()
  const date = new Date().toISOString()
  const env: BenchEnv = {
    brokers: stack.brokers,
    redisUrl: stack.redisUrl,
    // The stack script's default directory when none is named, so the broker's CPU and version are found.
    stackDir: process.env.ESK_STACK_DIR ?? fileURLToPath(new URL('../../../.stack', import.meta.url)),
    // Room for every aggregate of the workload, as the baselines have, unless told otherwise.
    eskHeld: options.eskHeld ?? Math.max(ESK_DEFAULTS.snapshotCacheSize, profile.aggregates),
    ...(options.cpuProf && { cpuProfileDir: resolve(options.out, `profiles-${date.replace(/[:.]/g, '-')}`) }),
    ...(options.nodeFlags.length > 0 && { nodeFlags: options.nodeFlags }),
  }
  if (env.cpuProfileDir) mkdirSync(env.cpuProfileDir, { recursive: true })
  const started = performance.now()
  const report: BenchReport = {
    date,
    profile,
    stages: [...stages],
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      ...(options.nodeFlags.length > 0 && { nodeFlags: options.nodeFlags }),
      kafkaVersion: kafkaVersion(env.stackDir),
      loadAverageStart: loadavg().map((l) => Math.round(l * 100) / 100),
      loadAverageEnd: [],
    },
    setups: [],
    throughput: [],
    openLoop: [],
    workloads: [],
    memory: [],
    failures: [],
    durationSeconds: 0,
  }
  log(`profile ${profile.name}, stages ${[...stages].join(',')}, brokers ${env.brokers.join(',')}, load average ${report.machine.loadAverageStart.join(' ')}`)
  // A stage that fails is reported, and the others still run.
  const attempt = async (stage: string, run: () => Promise<void>): Promise<void> => {
    try {
      await run()
    } catch (error) {
      const text = String((error as Error)?.stack ?? error)
      report.failures.push({ stage, error: text })
      log(`${stage} failed: ${text}`)
    }
  }
  if (stages.has('warmup')) {
    await attempt('warmup', async () => {
      report.warmup = await warmup(env, profile.warmupTransactions)
      log(`warm-up: ${report.warmup.transactions} transactions in ${report.warmup.seconds} s`)
    })
  }
  await attempt('load', () => loadStages(env, profile, stages, report))
  if (stages.has('recovery')) {
    await attempt('recovery', async () => {
      log(`recovery: ${profile.recoveryEvents} events`)
      report.recovery = await recovery(env, profile.recoveryEvents, profile.recoveryAggregates, profile.repetitions)
      log(`  rebuild ${report.recovery.rebuildEventsPerSecond}/s, bare read ${report.recovery.bareReadEventsPerSecond}/s (medians; rebuild/read ${report.recovery.ratios?.join(', ')}), takeover ${report.recovery.takeoverSeconds} s`)
    })
  }
  if (stages.has('projections')) {
    await attempt('projections', async () => {
      const events = profile.projectionEvents
      log(`projections: ${events} events`)
      report.projections = await projections(env, events, 256, 600_000)
    })
  }
  report.machine.loadAverageEnd = loadavg().map((l) => Math.round(l * 100) / 100)
  report.durationSeconds = Math.round((performance.now() - started) / 1000)
  mkdirSync(options.out, { recursive: true })
  const file = `${options.out}/bench-${report.date.replace(/[:.]/g, '-')}.json`
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n')
  log(`report written to ${file} (${report.durationSeconds} s)`)
  if (options.docs) {
    writeDocs(report, file, docsDir)
    log('docs/benchmarks.md and its charts regenerated')
  }
  if (report.failures.length > 0) process.exitCode = 1
}

await main()
