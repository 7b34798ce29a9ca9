/**
 * A system under load: its processor processes and one client process, kept for a series of
 * measuring windows (so repetitions of different systems interleave without restarting them).
 */
import { randomUUID } from 'node:crypto'
import { loadavg } from 'node:os'
import { Child } from './child.js'
import { CpuWindow, stackPids, type CpuUse } from './cpu.js'
import type { LatencySummary } from './latency.js'
import type { PauseSummary } from './pauses.js'
import { provision, type SystemConfig, type SystemName } from './systems.js'
import type { ClientReport, ProcessorReport } from './worker.js'
import type { Workload } from './workload.js'

/** Where the brokers and Redis are. */
export interface BenchEnv {
  brokers: string[]
  redisUrl: string
  stackDir: string | undefined
  /** When set, processors and clients profile their measuring windows into this directory (see `WindowProfiler`). */
  cpuProfileDir?: string
  /**
   * esk's `snapshotCacheSize`: the aggregates each partition holds in memory. The hand-written
   * pipelines hold every aggregate's state; by default esk is given room for all of them too.
   */
  eskHeld?: number
  /** Node flags every processor and client runs with, whatever its system. */
  nodeFlags?: string[]
}

/** How a window loads the system. */
export type Load = { mode: 'closed'; inFlight: number } | { mode: 'open'; rate: number }

/** One measuring window. */
export interface WindowResult {
  system: SystemName
  partitions: number
  processors: number
  workload: string
  load: Load
  commandsPerSecond: number
  completed: number
  refused: number
  errors: number
  firstError?: string
  /** Left without a reply when the client stopped waiting (up to 120 s after the window). */
  unanswered: number
  latency: LatencySummary
  find?: LatencySummary
  /** Processor CPU (all its threads) per processed command, µs. */
  cpuUsPerCommand: number
  /** Share of the window the processors' event loops were busy (mean over processors). */
  eventLoopUtilization: number
  cpu: CpuUse
  loadAverage: number[]
  /** Each process's pauses during the window (absent from reports of earlier versions). */
  pauses?: { processors: PauseSummary[]; client: PauseSummary }
}

const live = new Set<Child>()

/** The pids whose CPU each window reports by name: the stack's and every live worker's. */
function namedPids(env: BenchEnv): Record<string, number> {
  const pids: Record<string, number> = { ...stackPids(env.stackDir), suite: process.pid }
  for (const child of live) pids[child.name] = child.pid
  return pids
}

/** Where a profiled process writes its windows' profiles (see `WindowProfiler`). */
export function profileBase(dir: string, system: SystemName, partitions: number, processors: number, process: string): string {
  return `${dir}/${system}-p${partitions}-x${processors}-${process}`
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A system's processes over a series of windows. */
export class Session {
  private seed = 1

  private constructor(
    private readonly env: BenchEnv,
    readonly config: SystemConfig,
    private readonly processors: Child[],
    private readonly client: Child,
  ) {}

  /** Provisions fresh topics, starts `processors` processors and a client, waits until all are ready. */
  static async open(env: BenchEnv, system: SystemName, partitions: number, processors: number): Promise<Session> {
    const profileDir = env.cpuProfileDir
    const config: SystemConfig = {
      system,
      brokers: env.brokers,
      redisUrl: env.redisUrl,
      prefix: `bench${randomUUID().slice(0, 8)}.`,
      partitions,
      ...(env.eskHeld !== undefined && { eskHeld: env.eskHeld }),
    }
    await provision(config)
    const started: Child[] = []
    try {
      for (let i = 0; i < processors; i++) {
        const name = `${system}-processor-${i + 1}`
        // A profiled processor writes `<system>-p<partitions>-x<processors>-<n>-w<window>.cpuprofile`.
        const profile = profileDir && profileBase(profileDir, system, partitions, processors, String(i + 1))
        const child = new Child(name, { role: 'processor', config, ...(profile && { profile }) }, env.nodeFlags)
        started.push(child)
        live.add(child)
        await child.next('ready', 120_000)
      }
      const profile = profileDir && profileBase(profileDir, system, partitions, processors, 'client')
      const client = new Child(`${system}-client`, { role: 'client', config, ...(profile && { profile }) }, env.nodeFlags)
      started.push(client)
      live.add(client)
      await client.next('ready', 60_000)
      return new Session(env, config, started.slice(0, processors), client)
    } catch (error) {
      for (const child of started) {
        live.delete(child)
        await child.stop(child.name.endsWith('client') ? 'exit' : 'stop')
      }
      throw error
    }
  }

  get system(): SystemName {
    return this.config.system
  }

  /** Creates aggregates a0..a(count-1) through the system itself; returns the seconds it took. */
  async setup(count: number): Promise<{ seconds: number; failed: number }> {
    this.client.send({ type: 'setup', count, inFlight: 256 })
    return this.client.next('setup-done', 600_000)
  }

  /** Loads the system for `warmS` unmeasured seconds, then measures `measureS` seconds. */
  async measure(workload: Workload, load: Load, warmS: number, measureS: number): Promise<WindowResult> {
    const seed = this.seed++
    this.client.send(load.mode === 'closed' ? { type: 'closed', inFlight: load.inFlight, workload, seed } : { type: 'open', rate: load.rate, workload, seed })
    await sleep(warmS * 1000)
    for (const p of this.processors) p.send({ type: 'mark' })
    this.client.send({ type: 'mark' })
    const cpu = new CpuWindow(namedPids(this.env))
    await sleep(measureS * 1000)
    for (const p of this.processors) p.send({ type: 'report' })
    this.client.send({ type: 'report' })
    const processorReports = await Promise.all(this.processors.map((p) => p.next<ProcessorReport>('report', 30_000)))
    const client = await this.client.next<ClientReport>('report', 30_000)
    const use = cpu.stop()
    // An overloaded open-loop window leaves a backlog: let it drain (bounded) before the next window.
    this.client.send({ type: 'halt', timeoutMs: 120_000 })
    const { unanswered } = await this.client.next<{ unanswered: number }>('halted', 150_000)
    const commands = processorReports.reduce((a, r) => a + r.commands, 0)
    const cpuUs = processorReports.reduce((a, r) => a + r.cpuUs, 0)
    return {
      system: this.system,
      partitions: this.config.partitions,
      processors: this.processors.length,
      workload: workload.name,
      load,
      commandsPerSecond: Math.round(client.completed / client.seconds),
      completed: client.completed,
      refused: client.refused,
      errors: client.errors,
      ...(client.firstError !== undefined && { firstError: client.firstError }),
      unanswered,
      latency: client.latency,
      ...(client.find && { find: client.find }),
      cpuUsPerCommand: commands > 0 ? Math.round(cpuUs / commands) : NaN,
      eventLoopUtilization: processorReports.reduce((a, r) => a + r.eventLoopUtilization, 0) / Math.max(1, processorReports.length),
      cpu: use,
      loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
      pauses: { processors: processorReports.map((r) => r.pauses), client: client.pauses },
    }
  }

  /** Stops the client and the processors. */
  async close(): Promise<void> {
    for (const child of [this.client, ...this.processors]) {
      live.delete(child)
      await child.stop(child === this.client ? 'exit' : 'stop')
    }
  }
}
