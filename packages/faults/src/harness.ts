import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { consoleLogger, createEsk, type Esk } from '@esk/core'
import { kafkaTransport, streamNames } from '@esk/kafka'
import { redisStore } from '@esk/redis'
import { seededRandom } from '@esk/testing'
import { Redis } from 'ioredis'
import { Kafka, logLevel } from 'kafkajs'
import { check, CHECKS, type CheckName, type CheckReport, type Violation } from './checker.js'
import type { ClientLiveness, ClientPlan } from './client.js'
import { AGGREGATE, between, controlFile, topics, type ArmedFault, type RunConfig, type StackMode, type Variant } from './config.js'
import { Account } from './domain.js'
import { HistoryWriter, readHistory } from './history.js'
import { readLog } from './log.js'
import { probePartitions } from './probe.js'
import { Child, OwnRedis, pause, spawnNode, StackBroker, StackCluster } from './processes.js'
import { readStore, sampleCheckpoints, type CheckpointSample, type StoreLocation } from './store-view.js'

/** The probes run inside the harness, whose output is the run's log: only errors from esk there. */
const quiet = consoleLogger('error')

/** How long a liveness round after healing tries every partition, ms. */
const LIVENESS_TIMEOUT_MS = 90_000

const DIST = fileURLToPath(new URL('../dist/', import.meta.url))
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

/** Sizes of a run. */
export interface Profile {
  name: string
  partitions: number
  processors: number
  clients: number
  /** Aggregates per client. */
  aggregatesPerClient: number
  commandsPerClient: number
  concurrency: number
  /** How long clients send, ms. */
  loadMs: number
  commandTimeoutMs: number
  sessionTimeoutMs: number
  /** Faults per scenario (each scenario takes what it can fit). */
  faults: number
}

/** The built-in profiles. */
export const PROFILES: Record<string, Profile> = {
  short: { name: 'short', partitions: 6, processors: 3, clients: 2, aggregatesPerClient: 100, commandsPerClient: 5_000, concurrency: 4, loadMs: 14_000, commandTimeoutMs: 5_000, sessionTimeoutMs: 6_000, faults: 2 },
  long: { name: 'long', partitions: 12, processors: 3, clients: 3, aggregatesPerClient: 100, commandsPerClient: 50_000, concurrency: 6, loadMs: 180_000, commandTimeoutMs: 5_000, sessionTimeoutMs: 6_000, faults: 20 },
}

/** One injected fault and how long the partitions took to answer again after it healed. */
export interface FaultRecord {
  kind: string
  at: number
  healedAt: number
  /** From healing until every partition answered a new command; null when some never did in time. */
  recoveryMs: number | null
  /**
   * For faults the system must ride out before they heal (a cluster node down): from the fault
   * until every partition answered a new command with the fault still in place; null when some
   * never did in time.
   */
  failoverMs?: number | null
}

/** Median and maximum of some durations, ms; null when there are none. */
export interface Spread {
  medianMs: number | null
  maxMs: number | null
}

/** The result of one scenario. */
export interface ScenarioReport {
  scenario: string
  seed: number
  durationMs: number
  commands: number
  attempts: number
  accepted: number
  refused: number
  timeouts: number
  errors: number
  faults: FaultRecord[]
  violations: Record<CheckName, number>
  details: Violation[]
  recovery: Spread
  /** Spread of {@link FaultRecord.failoverMs}, for scenarios that measure it. */
  failover?: Spread
  stats: CheckReport['stats']
  dir: string
  /** Prefix of the run's topics (deleted at the end unless kept). */
  topicPrefix: string
  stack: StackMode
  /** The broken variant the processors ran, if any (violations are then expected). */
  variant?: Variant
  /** Set when the run itself failed (not a finding of the checker). */
  failure?: string
  /**
   * Processors and clients that exited by themselves with an error code, which none of them
   * should (a kill by signal, the faults' way, is not one of these): each with its log.
   */
  crashes: Crash[]
}

/** A process of the run that exited by itself with an error code. */
export interface Crash {
  process: string
  code: number
  log: string
  /** The first line of its log that names an error, if any. */
  error?: string
}

/** Where the run finds the stack. */
export interface Environment {
  brokers: string[]
  stackDir: string
  /** The single node (default) or the three-node cluster; the brokers must be that stack's. */
  stack?: StackMode
  /** Directory for run files. */
  workDir: string
  log?: (line: string) => void
}

/**
 * The brokers of the stack `scripts/stack.sh` runs with the same environment: `ESK_KAFKA_BROKERS`
 * when set, else the single node on `ESK_KAFKA_PORT` (9092) or the three nodes from
 * `ESK_KAFKA_CLUSTER_PORT` (9192, 9193, 9194).
 */
export function stackBrokers(mode: StackMode, env: NodeJS.ProcessEnv = process.env): string[] {
  const listed = env.ESK_KAFKA_BROKERS?.split(',').map((b) => b.trim()).filter(Boolean)
  if (listed && listed.length > 0) return listed
  if (mode === 'single') return [`127.0.0.1:${env.ESK_KAFKA_PORT ?? '9092'}`]
  const first = Number(env.ESK_KAFKA_CLUSTER_PORT ?? '9192')
  return StackCluster.NODES.map((n) => `127.0.0.1:${first + n - 1}`)
}

/** A scenario: injects its faults while the load runs, and leaves everything healable. */
type Scenario = (run: Run, count: number) => Promise<void>

/** A scenario and what it needs. */
export interface ScenarioSpec {
  run: Scenario
  /**
   * The stacks it runs on: `any` touches no broker (it runs on either), `single` restarts the
   * single node, `cluster` kills nodes of the three-node cluster.
   */
  stack: StackMode | 'any'
  /** How long the clients send, when the profile's `loadMs` cannot fit the scenario's faults. */
  loadMs?: (profile: Profile) => number
}

/** Every scenario by name. */
export const SCENARIOS: Record<string, ScenarioSpec> = {
  // A kill and its recovery take about 12 s: the load lasts long enough for the profile's count.
  kill: { run: killScenario, stack: 'any', loadMs: (p) => Math.max(p.loadMs, p.faults * 12_000) },
  zombie: { run: zombieScenario, stack: 'any' },
  'redis-flush': { run: redisFlushScenario, stack: 'any' },
  'redis-restart': { run: redisRestartScenario, stack: 'any' },
  broker: { run: brokerScenario, stack: 'single' },
  stack: { run: stackScenario, stack: 'single' },
  rebalance: { run: rebalanceScenario, stack: 'any' },
  rolling: { run: rollingScenario, stack: 'any' },
  // A node kill, the failover, the restart and the recovery take 20 to 60 s on a small machine.
  leader: { run: leaderScenario, stack: 'cluster', loadMs: (p) => Math.max(p.loadMs, leaderFaults(p.faults) * 50_000) },
}

/** True when `name` runs on `stack`. */
export function runsOn(name: string, stack: StackMode): boolean {
  const spec = SCENARIOS[name]
  return spec !== undefined && (spec.stack === 'any' || spec.stack === stack)
}

/**
 * The scenarios a run on `stack` does when none are named: on the single node every one that
 * runs there, on the cluster the ones that need it (the others run the same on either stack).
 */
export function defaultScenarios(stack: StackMode): string[] {
  return Object.keys(SCENARIOS).filter((name) => (stack === 'single' ? runsOn(name, 'single') : SCENARIOS[name]!.stack === 'cluster'))
}

/** One scenario's processes, store, probes and fault log. */
export class Run {
  readonly config: RunConfig
  readonly processors: Child[] = []
  readonly clients: Child[] = []
  /** Created once everything is healed: the clients' cue for their liveness round. */
  private readonly livenessFile: string
  readonly faults: FaultRecord[] = []
  readonly redis: OwnRedis
  readonly broker: StackBroker
  readonly cluster: StackCluster
  readonly stack: StackMode
  /** How long the clients send, ms. */
  readonly loadMs: number
  readonly random: () => number
  private readonly samples: CheckpointSample[] = []
  private probeClient: Esk | undefined
  private probeHistory: HistoryWriter
  private probeSeq = 0
  private processorSeq = 0
  private loadDone = false
  /** Set when injecting the faults threw: the run then did not test what it says. */
  faultError: Error | undefined
  schemaVersion = 1

  constructor(
    readonly scenario: string,
    readonly profile: Profile,
    readonly seed: number,
    readonly env: Environment,
    variant?: Variant,
  ) {
    const id = `${scenario}-${seed}-${Date.now().toString(36)}`
    const dir = `${env.workDir}/${id}`
    for (const sub of ['history', 'logs', 'control', 'redis']) mkdirSync(`${dir}/${sub}`, { recursive: true })
    this.redis = new OwnRedis(`${dir}/redis`)
    this.broker = new StackBroker(REPO_ROOT, env.stackDir)
    this.cluster = new StackCluster(REPO_ROOT, env.stackDir)
    this.stack = env.stack ?? 'single'
    this.loadMs = SCENARIOS[scenario]?.loadMs?.(profile) ?? profile.loadMs
    this.random = seededRandom(seed)
    this.config = {
      brokers: env.brokers,
      redisPath: this.redis.socket,
      topicPrefix: `faults.${id}.`,
      keyPrefix: 'esk:',
      partitions: profile.partitions,
      sessionTimeoutMs: profile.sessionTimeoutMs,
      dir,
      ...(this.stack === 'cluster' && { replicationFactor: StackCluster.NODES.length }),
      ...(variant !== undefined && { variant }),
    }
    this.probeHistory = new HistoryWriter(`${dir}/history/liveness.jsonl`)
    this.livenessFile = `${dir}/control/liveness-go`
  }

  log(line: string): void {
    this.env.log?.(`[${this.scenario}] ${line}`)
  }

  /** True while the clients are still sending. */
  get loading(): boolean {
    return !this.loadDone
  }

  /** Starts a processor process; waits for it to be ready when `wait`. */
  async startProcessor(wait = true): Promise<Child> {
    const name = `processor-${++this.processorSeq}`
    const child = spawnNode(name, `${DIST}processor-main.js`, [JSON.stringify(this.config)], `${this.config.dir}/logs/${name}.log`, {
      FAULTS_SCHEMA_VERSION: String(this.schemaVersion),
    })
    this.processors.push(child)
    if (wait && !(await child.waitLine(/^ready$/, 90_000))) this.log(`${name} (pid ${child.pid}) did not report ready within 90 s`)
    return child
  }

  /** Processors still running. */
  live(): Child[] {
    return this.processors.filter((p) => p.alive)
  }

  /** A running processor chosen at random. */
  pickProcessor(): Child | undefined {
    const live = this.live().filter((p) => !p.stopped)
    return live.length === 0 ? undefined : live[Math.floor(this.random() * live.length)]
  }

  /** Arms a self-inflicted fault in a processor (see {@link ArmedFault}). */
  arm(child: Child, fault: ArmedFault): void {
    writeFileSync(controlFile(this.config.dir, child.pid), JSON.stringify({ fault }))
    child.signal('SIGUSR2')
  }

  /**
   * Arms `fault` in every running processor and waits until one of them hits it (dies, or prints
   * that it stopped), then disarms the others. Returns the processors that hit it (more than one
   * when two hit it at the same moment); empty when none did within `timeoutMs`.
   */
  async armAny(fault: Exclude<ArmedFault, 'none'>, timeoutMs: number): Promise<Child[]> {
    const armed = this.live().filter((p) => !p.stopped)
    const before = new Map(armed.map((p) => [p, p.lines.filter((l) => l === 'stopped-in-handler').length]))
    const hit = (p: Child) => !p.alive || p.lines.filter((l) => l === 'stopped-in-handler').length > before.get(p)!
    for (const p of armed) this.arm(p, fault)
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline && !armed.some(hit)) await pause(20)
    for (const p of armed) if (p.alive) this.arm(p, 'none')
    await pause(200)
    const hits = armed.filter(hit)
    for (const p of hits) if (p.alive) p.stopped = true
    return hits
  }

  /**
   * Arms `fault` in one running processor at a time, in random order, each for its share of
   * `timeoutMs`, until one hits it; so a stop freezes one member and the others can take over.
   */
  async armOne(fault: 'stop-in-handler', timeoutMs: number): Promise<Child[]> {
    const candidates = this.live().filter((p) => !p.stopped).sort(() => this.random() - 0.5)
    for (const p of candidates) {
      const before = p.lines.filter((l) => l === 'stopped-in-handler').length
      this.arm(p, fault)
      const deadline = Date.now() + timeoutMs / candidates.length
      while (Date.now() < deadline && p.alive && p.lines.filter((l) => l === 'stopped-in-handler').length === before) await pause(20)
      if (p.lines.filter((l) => l === 'stopped-in-handler').length > before) {
        p.stopped = true
        return [p]
      }
      this.arm(p, 'none')
    }
    return []
  }

  /** Tops the processors up to the profile's count. */
  async replenish(wait = true): Promise<void> {
    const missing = this.profile.processors - this.live().length
    await Promise.all(Array.from({ length: Math.max(0, missing) }, () => this.startProcessor(wait)))
  }

  /** Records a fault once it has healed, then measures how long until every partition answers. */
  async healed(kind: string, at: number, extra: Pick<FaultRecord, 'failoverMs'> = {}): Promise<void> {
    const healedAt = Date.now()
    const recoveryMs = await this.answerTime(healedAt, 60_000)
    this.faults.push({ kind, at, healedAt, recoveryMs, ...extra })
    this.log(`${kind}: recovered in ${recoveryMs === null ? 'never (60 s)' : `${recoveryMs} ms`}`)
  }

  /** Probes every partition; returns how long after `since` the last one answered, or null if some never did within `timeoutMs`. */
  async answerTime(since: number, timeoutMs: number): Promise<number | null> {
    const answered = await this.probe(timeoutMs)
    return answered.every((t) => t !== undefined) ? Math.max(...(answered as number[])) - since : null
  }

  /** One liveness round from the harness's own client (see {@link probePartitions}). */
  async probe(timeoutMs: number): Promise<Array<number | undefined>> {
    const app = await this.probeApp()
    return probePartitions(app, { partitions: this.profile.partitions, idPrefix: `probe-${++this.probeSeq}`, client: 'liveness', timeoutMs, history: this.probeHistory })
  }

  /**
   * The client the probes send with, created once (before any fault, so its start never meets
   * one). kafkajs's own logs are off: while a broker is down every connection attempt would log an
   * error, and what the probes got is in the history anyway.
   */
  async probeApp(): Promise<Esk> {
    this.probeClient ??= await createEsk({
      aggregates: [{ aggregate: Account, partitions: this.profile.partitions }],
      driver: {
        transport: kafkaTransport({
          brokers: this.config.brokers,
          topicPrefix: this.config.topicPrefix,
          replicationFactor: this.config.replicationFactor ?? -1,
          logger: quiet,
          logLevel: logLevel.NOTHING,
        }),
        store: redisStore({ url: this.config.redisPath, keyPrefix: this.config.keyPrefix, logger: quiet }),
      },
      processing: false,
      commandTimeoutMs: 5_000,
      logger: quiet,
    })
    return this.probeClient
  }

  /** Samples checkpoints and snapshot offsets every `everyMs` until `stop` resolves. */
  async sample(stop: Promise<void>, everyMs = 500): Promise<void> {
    const client = new Redis({ path: this.config.redisPath, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 200 })
    client.on('error', () => undefined)
    let stopped = false
    void stop.then(() => (stopped = true))
    const location = this.location()
    for (let i = 0; i < 100_000 && !stopped; i++) {
      try {
        this.samples.push(...(await sampleCheckpoints(client, location)))
      } catch {
        // Redis is down right now: nothing to sample.
      }
      await Promise.race([pause(everyMs), stop])
    }
    client.disconnect()
  }

  location(): StoreLocation {
    return { prefix: this.config.keyPrefix, aggregate: AGGREGATE, partitions: this.profile.partitions }
  }

  /**
   * Runs the clients' load to its end (bounded), with `faults` injected meanwhile. The clients
   * stay up for their own liveness round in {@link verify}.
   */
  async load(faults: () => Promise<void>): Promise<void> {
    const plans = this.plans()
    const clients = plans.map((plan) =>
      spawnNode(plan.name, `${DIST}client-main.js`, [JSON.stringify(this.config), JSON.stringify(plan)], `${this.config.dir}/logs/${plan.name}.log`),
    )
    this.clients.push(...clients)
    const limit = this.loadMs + this.profile.commandTimeoutMs * 3 + 60_000
    const clientsDone = Promise.all(
      clients.map(async (c) => {
        if (!(await c.waitLine(/^\{"done"/, limit)) && c.alive) {
          this.log(`${c.name} still sending after ${limit} ms: killing it`)
          c.signal('SIGKILL')
        }
      }),
    ).then(() => {
      this.loadDone = true
    })
    let stopSampling!: () => void
    const sampling = this.sample(new Promise<void>((resolve) => (stopSampling = resolve)))
    const faulting = faults().catch((error: unknown) => {
      this.faultError = error instanceof Error ? error : new Error(String(error))
      this.log(`fault injection failed: ${this.faultError.stack ?? this.faultError.message}`)
    })
    await clientsDone
    await faulting
    stopSampling()
    await sampling
    for (const c of clients) {
      const summary = c.lines.find((l) => l.startsWith('{"done"'))
      this.log(`${c.name}: ${summary ?? 'no summary (killed?)'}`)
    }
  }

  private plans(): ClientPlan[] {
    const ids = (c: number) => Array.from({ length: this.profile.aggregatesPerClient }, (_, i) => `acct-${c}-${i}`)
    return Array.from({ length: this.profile.clients }, (_, c) => ({
      name: `client-${c}`,
      seed: this.seed * 1000 + c,
      aggregates: ids(c),
      shared: Array.from({ length: this.profile.clients }, (_, o) => o).filter((o) => o !== c).flatMap(ids),
      commands: this.profile.commandsPerClient,
      concurrency: this.profile.concurrency,
      commandTimeoutMs: this.profile.commandTimeoutMs,
      durationMs: this.loadMs,
      maxAttempts: 3,
      historyPath: `${this.config.dir}/history/client-${c}.jsonl`,
      livenessFile: this.livenessFile,
      livenessTimeoutMs: LIVENESS_TIMEOUT_MS,
    }))
  }

  /** Heals whatever is still broken: resumes stopped processors, restarts Redis and the brokers, tops processors up. */
  async healAll(): Promise<void> {
    for (const p of this.live()) if (p.stopped) p.signal('SIGCONT')
    await this.redis.start()
    await this.stackUp()
    await this.replenish()
  }

  /**
   * Makes sure the run's stack is up: the single node is started when it is down; cluster nodes
   * that are down are started again, but a cluster that does not run at all is an error that says
   * how to start it (the harness never starts a stack of three brokers by itself).
   */
  async stackUp(): Promise<void> {
    if (this.stack === 'single') {
      if (this.broker.pid() !== undefined) return
      if (this.cluster.running().length > 0) {
        throw new Error(
          `the three-node cluster runs under ESK_STACK_DIR=${this.env.stackDir}, not the single node this run needs: ` +
            `run with --stack cluster, or 'scripts/stack.sh stop' and 'scripts/stack.sh start'`,
        )
      }
      await this.broker.start()
      return
    }
    const running = this.cluster.running()
    if (running.length === 0) {
      throw new Error(
        `scenario ${this.scenario} runs on the three-node cluster, and no node of it runs under ESK_STACK_DIR=${this.env.stackDir}: ` +
          `start it with 'scripts/stack.sh start --cluster' (ports from ESK_KAFKA_CLUSTER_PORT and ESK_KAFKA_CLUSTER_CONTROLLER_PORT, ` +
          `the same environment as this run), or run the single-node scenarios with --stack single`,
      )
    }
    for (const n of StackCluster.NODES) if (!running.includes(n)) await this.cluster.start(n)
  }

  /** Checks that the brokers the run talks to are the stack it was told (three brokers for the cluster). */
  async checkBrokers(): Promise<void> {
    const admin = new Kafka({ brokers: this.config.brokers, logLevel: logLevel.NOTHING }).admin()
    try {
      await admin.connect()
      const { brokers } = await admin.describeCluster()
      const expected = this.stack === 'cluster' ? StackCluster.NODES.length : 1
      if (brokers.length !== expected) {
        throw new Error(
          `the brokers ${this.config.brokers.join(',')} form a cluster of ${brokers.length}, but a run on the ${this.stack} stack ` +
            `expects ${expected}: point ESK_KAFKA_BROKERS (or the port variables) at that stack`,
        )
      }
    } finally {
      await admin.disconnect().catch(() => undefined)
    }
  }

  /** Pauses between faults so that `count` of them spread over the load. */
  spacing(count: number): number {
    return Math.max(1_000, Math.floor(this.loadMs / (count + 1)))
  }

  /** The final liveness round, the quiet read of the store and the log, and the check. */
  async verify(): Promise<{ report: CheckReport; liveness: Violation[] }> {
    await this.healAll()
    // Every partition must answer a new command: from a fresh client, and from each load client
    // through the connections it kept through the faults.
    writeFileSync(this.livenessFile, `${Date.now()}\n`)
    const [answered, clientRounds] = await Promise.all([this.probe(LIVENESS_TIMEOUT_MS), this.clientLiveness()])
    const liveness: Violation[] = []
    const seconds = LIVENESS_TIMEOUT_MS / 1000
    answered.forEach((t, p) => {
      if (t === undefined) liveness.push({ check: 'liveness', partition: p, message: `partition ${p} did not answer a new command within ${seconds} s after healing` })
    })
    for (const [client, times] of clientRounds) {
      if (times === undefined) {
        liveness.push({ check: 'liveness', message: `${client} did not report its liveness round after healing (see its log)` })
        continue
      }
      times.forEach((t, p) => {
        if (t === null) {
          liveness.push({ check: 'liveness', partition: p, message: `${client} got no answer from partition ${p} to a new command within ${seconds} s after healing, through the connections it kept through the faults` })
        }
      })
    }
    await pause(2_000)
    const redis = new Redis({ path: this.config.redisPath, maxRetriesPerRequest: 2 })
    redis.on('error', () => undefined)
    try {
      const store = await readStore(redis, this.location())
      const t = topics(this.config)
      const log = await readLog({ brokers: this.config.brokers, eventsTopic: t.events, commandsTopic: t.commands })
      const history = readHistory(`${this.config.dir}/history`)
      const report = check({ history, log, partitions: this.profile.partitions, store, samples: this.samples, healed: liveness.length === 0 })
      for (const v of liveness) {
        report.counts.liveness += 1
        report.details.push(v)
      }
      return { report, liveness }
    } finally {
      redis.disconnect()
    }
  }

  /** Processors and clients that have exited by themselves with an error code so far. */
  crashes(): Crash[] {
    return [...this.processors, ...this.clients]
      .filter((c) => typeof c.code === 'number' && c.code !== 0)
      .map((c) => {
        const log = `${this.config.dir}/logs/${c.name}.log`
        const error = existsSync(log) ? readFileSync(log, 'utf8').split('\n').find((l) => /Error\b/.test(l)) : undefined
        return { process: c.name, code: c.code as number, log, ...(error !== undefined && { error: error.slice(0, 300) }) }
      })
  }

  /** Waits (bounded) for each load client's liveness round; per client, its answer times, or undefined when it reported none. */
  private async clientLiveness(): Promise<Array<[string, Array<number | null> | undefined]>> {
    return Promise.all(
      this.clients.map(async (c): Promise<[string, Array<number | null> | undefined]> => {
        await c.waitLine(/^\{"liveness"/, LIVENESS_TIMEOUT_MS + 30_000)
        const line = c.lines.find((l) => l.startsWith('{"liveness"'))
        if (!line) return [c.name, undefined]
        const { liveness } = JSON.parse(line) as ClientLiveness
        return [c.name, liveness]
      }),
    )
  }

  /**
   * Stops every process this run started and deletes its topics (commands, events, dead letters)
   * and its processors' consumer group: a stack that keeps every run's topics gets slower at each
   * start and each failover.
   */
  async teardown(deleteTopics: boolean): Promise<void> {
    this.probeHistory.close()
    await this.probeClient?.close().catch(() => undefined)
    await Promise.all([...this.clients, ...this.processors].map((p) => p.stop()))
    await this.redis.stop()
    if (deleteTopics) {
      await deleteRunTopics(this.config.brokers, this.config.topicPrefix).catch((error: unknown) => this.log(`could not delete the run's topics: ${String(error)}`))
    }
  }
}

/**
 * Deletes what a run left on the brokers: its command, event and dead-letter topics and its
 * processors' consumer group. Returns the topics it deleted.
 */
export async function deleteRunTopics(brokers: string[], topicPrefix: string): Promise<string[]> {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin()
  try {
    await admin.connect()
    const names = streamNames(topicPrefix, AGGREGATE)
    // A group that is already gone (or never had offsets) is not an error here.
    await admin.deleteGroups([names.group]).catch(() => undefined)
    const present = new Set(await admin.listTopics())
    const mine = [names.commands, names.events, names.deadLetters].filter((t) => present.has(t))
    if (mine.length > 0) await admin.deleteTopics({ topics: mine, timeout: 30_000 })
    return mine
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

/** Runs one scenario end to end and reports it. */
/** What a run may change besides the profile. */
export interface RunOptions {
  /** Delete the run's topics and group at the end. Default true. */
  deleteTopics?: boolean
  /** Run processors broken on purpose (see {@link VARIANTS}); the checker should then report violations. */
  variant?: Variant
}

/**
 * Runs one scenario end to end and reports it. Throws, before starting anything, when the
 * scenario does not run on `env.stack` or that stack is not there (for the cluster: not started);
 * a failure after that is reported in {@link ScenarioReport.failure}.
 */
export async function runScenario(name: string, profile: Profile, seed: number, env: Environment, options: RunOptions = {}): Promise<ScenarioReport> {
  const scenario = SCENARIOS[name]
  if (!scenario) throw new Error(`unknown scenario '${name}'; known: ${Object.keys(SCENARIOS).join(', ')}`)
  const stack = env.stack ?? 'single'
  if (!runsOn(name, stack)) {
    throw new Error(
      scenario.stack === 'cluster'
        ? `scenario ${name} needs the three-node cluster: start it with 'scripts/stack.sh start --cluster' and run with --stack cluster`
        : `scenario ${name} restarts the single node and does not run on the cluster: run it with --stack single`,
    )
  }
  const started = Date.now()
  const run = new Run(name, profile, seed, env, options.variant)
  await run.stackUp()
  await run.checkBrokers()
  const empty = Object.fromEntries(CHECKS.map((c) => [c, 0])) as Record<CheckName, number>
  const base = { scenario: name, seed, dir: run.config.dir, topicPrefix: run.config.topicPrefix, stack, ...(options.variant !== undefined && { variant: options.variant }) }
  try {
    await run.redis.start()
    run.log(`starting ${profile.processors} processors${options.variant ? ` (broken variant: ${options.variant})` : ''}`)
    await run.replenish()
    await run.probeApp()
    await run.load(() => scenario.run(run, profile.faults))
    run.log('load done; healing and checking')
    const { report } = await run.verify()
    // A run whose faults did not happen tested nothing; the checker's findings are kept anyway.
    const failure = run.faultError ? `fault injection failed: ${run.faultError.message}` : run.faults.length === 0 ? 'no fault was injected (see the run log)' : undefined
    const failovers = run.faults.filter((f) => f.failoverMs !== undefined)
    return {
      ...base,
      durationMs: Date.now() - started,
      commands: report.stats.commandIds,
      attempts: report.stats.attempts,
      accepted: report.stats.accepted,
      refused: report.stats.refused,
      timeouts: report.stats.timeouts,
      errors: report.stats.errors,
      faults: run.faults,
      violations: report.counts,
      details: report.details,
      recovery: spread(run.faults.map((f) => f.recoveryMs)),
      ...(failovers.length > 0 && { failover: spread(failovers.map((f) => f.failoverMs ?? null)) }),
      stats: report.stats,
      ...(failure !== undefined && { failure }),
      crashes: run.crashes(),
    }
  } catch (error) {
    run.log(`run failed: ${(error as Error).stack ?? String(error)}`)
    return {
      ...base,
      durationMs: Date.now() - started,
      commands: 0, attempts: 0, accepted: 0, refused: 0, timeouts: 0, errors: 0,
      faults: run.faults,
      violations: empty,
      details: [],
      recovery: { medianMs: null, maxMs: null },
      stats: { attempts: 0, commandIds: 0, accepted: 0, refused: 0, timeouts: 0, errors: 0, events: 0, aggregates: 0, applications: 0, samples: 0 },
      failure: (error as Error).message,
      crashes: run.crashes(),
    }
  } finally {
    await run.teardown(options.deleteTopics ?? true).catch((error: unknown) => run.log(`teardown failed: ${String(error)}`))
  }
}

/** Median and maximum of the durations that are known (null ones, never recovered, are left out). */
function spread(durations: Array<number | null>): Spread {
  const known = durations.filter((m): m is number => m !== null).sort((a, b) => a - b)
  return known.length === 0 ? { medianMs: null, maxMs: null } : { medianMs: known[Math.floor((known.length - 1) / 2)]!, maxMs: known.at(-1)! }
}

// ------------------------------------------------------------------------------- scenarios

/** kill -9 of a processor: at random, right after a snapshot load, right before a save, and during recovery. */
async function killScenario(run: Run, count: number): Promise<void> {
  const modes = ['kill-before-save', 'random', 'during-recovery', 'kill-after-load'] as const
  const n = Math.max(count, 4)
  for (let i = 0; i < n && (run.loading || i === 0); i++) {
    await pause(run.spacing(n) * (0.3 + 0.5 * run.random()))
    const mode = modes[i % modes.length]!
    const at = Date.now()
    if (mode === 'during-recovery') {
      const fresh = await run.startProcessor(false)
      await pause(between(run.random, 300, 2_000))
      fresh.signal('SIGKILL')
    } else if (mode === 'random') {
      const victim = run.pickProcessor()
      if (!victim) continue
      victim.signal('SIGKILL')
      await victim.exited
    } else {
      // The first processor to reach that point kills itself.
      const hits = await run.armAny(mode, 10_000)
      if (hits.length === 0) {
        run.log(`no processor reached ${mode} within 10 s; skipped`)
        continue
      }
    }
    run.log(`kill -9 (${mode})`)
    await run.replenish(false)
    await run.healed(`kill:${mode}`, at)
  }
}

/** A processor frozen past its session timeout, inside a handler or at random, then resumed. */
async function zombieScenario(run: Run, count: number): Promise<void> {
  const n = Math.max(2, Math.min(count, 5))
  for (let i = 0; i < n && (run.loading || i === 0); i++) {
    await pause(run.spacing(n) * 0.3)
    const at = Date.now()
    let mode = 'in-handler'
    let victims = i % 2 === 0 ? await run.armOne('stop-in-handler', 5_000) : []
    if (victims.length === 0) {
      mode = 'random'
      const victim = run.pickProcessor()
      if (!victim) continue
      victim.signal('SIGSTOP')
      victims = [victim]
    }
    run.log(`SIGSTOP ${victims.map((v) => v.name).join(', ')} (${mode})`)
    await pause(run.profile.sessionTimeoutMs + 4_000)
    for (const v of victims) v.signal('SIGCONT')
    run.log('SIGCONT')
    await run.healed(`zombie:${mode}`, at)
  }
}

/** FLUSHALL under load, at random and while a processor is inside a batch. */
async function redisFlushScenario(run: Run, count: number): Promise<void> {
  const n = Math.max(2, count)
  const admin = new Redis({ path: run.config.redisPath, maxRetriesPerRequest: 2 })
  admin.on('error', () => undefined)
  try {
    for (let i = 0; i < n && (run.loading || i === 0); i++) {
      await pause(run.spacing(n) * (0.3 + run.random() * 0.4))
      const at = Date.now()
      // Every other flush happens while a processor is inside a handler, between its snapshot
      // load and its commit; it resumes at once, well within its session.
      const victims = i % 2 === 0 ? await run.armOne('stop-in-handler', 5_000) : []
      const mode = victims.length > 0 ? 'in-batch' : 'random'
      await admin.flushall()
      for (const v of victims) v.signal('SIGCONT')
      run.log(`FLUSHALL (${mode})`)
      await run.healed(`redis-flush:${mode}`, at)
    }
  } finally {
    admin.disconnect()
  }
}

/** redis-server killed with -9 and started again empty, at random and while a processor is inside a batch. */
async function redisRestartScenario(run: Run, count: number): Promise<void> {
  const n = Math.max(2, Math.min(count, 6))
  for (let i = 0; i < n && (run.loading || i === 0); i++) {
    await pause(run.spacing(n) * (0.3 + run.random() * 0.4))
    const at = Date.now()
    const victims = i % 2 === 1 ? await run.armOne('stop-in-handler', 5_000) : []
    const mode = victims.length > 0 ? 'in-batch' : 'random'
    await run.redis.kill()
    await pause(between(run.random, 300, 1_000))
    await run.redis.start()
    for (const v of victims) v.signal('SIGCONT')
    run.log(`redis-server kill -9 and restart (${mode})`)
    await run.healed(`redis-restart:${mode}`, at)
  }
}

/** The broker killed with -9 and restarted, then stopped cleanly and restarted. */
async function brokerScenario(run: Run, count: number): Promise<void> {
  const n = Math.max(2, Math.min(count, 6))
  for (let i = 0; i < n && (run.loading || i === 0); i++) {
    await pause(run.spacing(n) * 0.3)
    const mode = i % 2 === 0 ? 'kill-9' : 'clean'
    const at = Date.now()
    await run.broker.kill(mode === 'kill-9' ? 'SIGKILL' : 'SIGTERM')
    await pause(between(run.random, 500, 2_000))
    await run.broker.start()
    run.log(`broker ${mode} and restart`)
    await run.healed(`broker:${mode}`, at)
  }
}

/** The whole stack (broker and redis-server) killed with -9 and restarted under load. */
async function stackScenario(run: Run, count: number): Promise<void> {
  const n = Math.max(1, Math.min(count, 4))
  for (let i = 0; i < n && (run.loading || i === 0); i++) {
    await pause(run.spacing(n) * 0.3)
    const at = Date.now()
    await Promise.all([run.broker.kill('SIGKILL'), run.redis.kill()])
    await pause(between(run.random, 500, 2_000))
    await Promise.all([run.redis.start(), run.broker.start()])
    run.log('stack kill -9 and restart')
    await run.healed('stack:kill-9', at)
  }
}

/** Rebalances: a processor added, then one removed cleanly. */
async function rebalanceScenario(run: Run, count: number): Promise<void> {
  const n = Math.max(2, Math.min(count, 10))
  for (let i = 0; i < n && (run.loading || i === 0); i++) {
    await pause(run.spacing(n) * 0.3)
    const at = Date.now()
    if (i % 2 === 0) {
      await run.startProcessor(false)
      run.log('processor added')
      await run.healed('rebalance:add', at)
    } else {
      const victim = run.pickProcessor()
      if (!victim) continue
      await victim.stop()
      run.log(`${victim.name} removed`)
      await run.healed('rebalance:remove', at)
    }
  }
}

/** A rolling restart with a schema-version bump: each processor replaced by one of the next version. */
async function rollingScenario(run: Run, count: number): Promise<void> {
  const rounds = Math.max(1, Math.min(count, 3))
  for (let r = 0; r < rounds && (run.loading || r === 0); r++) {
    await pause(run.spacing(rounds) * 0.3)
    run.schemaVersion += 1
    for (const old of run.live()) {
      const at = Date.now()
      await run.startProcessor(true)
      await old.stop()
      run.log(`${old.name} replaced by schema version ${run.schemaVersion}`)
      await run.healed(`rolling:v${run.schemaVersion}`, at)
    }
  }
}

/** Leader kills per run: the profile's fault count, at least 2 and at most 10 (each takes up to a minute). */
function leaderFaults(count: number): number {
  return Math.max(2, Math.min(count, 10))
}

/**
 * On the three-node cluster: the node leading a partition of the event or the command topic is
 * killed with -9 under load. The time until every partition answers with that node still down is
 * the failover time (the controller first waits for the node's broker session to expire, about
 * 9 s); then the node is started again and the recovery time measured as for every fault.
 */
async function leaderScenario(run: Run, count: number): Promise<void> {
  const n = leaderFaults(count)
  const names = topics(run.config)
  const admin = new Kafka({ brokers: run.config.brokers, logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    for (let i = 0; i < n && (run.loading || i === 0); i++) {
      // Each fault takes long enough by itself: a short random pause spreads them over the load.
      await pause(between(run.random, 2_000, 8_000))
      const topic = i % 2 === 0 ? names.events : names.commands
      const partition = between(run.random, 0, run.profile.partitions - 1)
      const leader = await partitionLeader(admin, topic, partition)
      if (leader === undefined || run.cluster.pid(leader) === undefined) {
        run.log(`no running leader found for ${topic}[${partition}]; skipped`)
        continue
      }
      const kind = `leader:${topic === names.events ? 'events' : 'commands'}`
      const at = Date.now()
      await run.cluster.kill(leader)
      run.log(`node ${leader}, leader of ${topic}[${partition}], killed with -9`)
      const failoverMs = await run.answerTime(at, 90_000)
      const next = await partitionLeader(admin, topic, partition).catch(() => undefined)
      run.log(`${kind}: every partition answered ${failoverMs === null ? 'never (90 s)' : `${failoverMs} ms after the kill`}, node ${leader} still down; ${topic}[${partition}] now led by node ${String(next)}`)
      await pause(between(run.random, 500, 2_000))
      await run.cluster.start(leader)
      run.log(`node ${leader} started again`)
      await run.healed(kind, at, { failoverMs })
    }
  } finally {
    await admin.disconnect().catch(() => undefined)
  }
}

/** The node id leading `topic[partition]`, as the cluster's metadata says now; undefined when it cannot be told. */
async function partitionLeader(admin: ReturnType<Kafka['admin']>, topic: string, partition: number): Promise<number | undefined> {
  try {
    const { topics: found } = await admin.fetchTopicMetadata({ topics: [topic] })
    const leader = found[0]?.partitions.find((p) => p.partitionId === partition)?.leader
    return leader !== undefined && leader >= 0 ? leader : undefined
  } catch {
    return undefined
  }
}
