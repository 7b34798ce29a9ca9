/**
 * A child process of the suite (started with child_process.fork): a processor of one system, or
 * the client that loads it. The parent drives it with IPC messages; every answer is a message too.
 *
 * Processor: sends `ready`; `mark` starts a measuring window; `report` answers the window's
 * commands, CPU time, event-loop use and pauses (see `PauseWatch`); `stop` closes it and exits.
 * Client: `setup` creates the workload's aggregates; `closed` keeps N commands in flight; `open`
 * sends at a fixed rate from a schedule, whatever the replies do; `mark`/`report` bound the window
 * (latency is measured from the intended send time in open loop); `halt` stops sending and waits
 * for the outstanding replies; `exit` closes it.
 */
import { CommandSource, aggregateId, type Workload } from './workload.js'
import { dueBy, intendedTime } from './schedule.js'
import { newHistogram, recordMs, summarize, type LatencySummary } from './latency.js'
import { openClient, startProcessor, type SystemClient, type SystemConfig } from './systems.js'
import { WindowProfiler } from './window-profile.js'
import { PauseWatch, type PauseSummary } from './pauses.js'

/** The argument of a worker. */
export interface WorkerArgs {
  role: 'processor' | 'client'
  config: SystemConfig
  /** Profile every measuring window into `<profile>-w<n>.cpuprofile`. */
  profile?: string
}

/** A processor's measuring window. */
export interface ProcessorReport {
  type: 'report'
  commands: number
  /** User + system CPU of the whole process, µs. */
  cpuUs: number
  /** Share of the window the event loop was busy (0..1). */
  eventLoopUtilization: number
  seconds: number
  pauses: PauseSummary
}

/** A client's measuring window. */
export interface ClientReport {
  type: 'report'
  completed: number
  refused: number
  errors: number
  /** Commands sent (open loop) or started (closed loop) in the window. */
  sent: number
  seconds: number
  latency: LatencySummary
  find?: LatencySummary
  firstError?: string
  pauses: PauseSummary
}

/** Messages from the parent. */
export type WorkerCommand =
  | { type: 'mark' }
  | { type: 'report' }
  | { type: 'stop' }
  | { type: 'setup'; count: number; inFlight: number }
  | { type: 'closed'; inFlight: number; workload: Workload; seed: number }
  | { type: 'open'; rate: number; workload: Workload; seed: number }
  | { type: 'halt'; timeoutMs: number }
  | { type: 'exit' }

const args = JSON.parse(process.argv[2] ?? '{}') as WorkerArgs
const send = (message: object): void => {
  process.send?.(message)
}
const onMessage = (handler: (message: WorkerCommand) => void | Promise<void>): void => {
  process.on('message', (message) => {
    Promise.resolve(handler(message as WorkerCommand)).catch((error: unknown) => {
      send({ type: 'error', message: String((error as Error)?.stack ?? error) })
    })
  })
}
// The parent is gone: nothing left to do.
process.on('disconnect', () => process.exit(0))
const profiler = args.profile ? new WindowProfiler(args.profile) : undefined
const pauses = new PauseWatch()

async function runProcessor(): Promise<void> {
  const processor = await startProcessor(args.config)
  let window = { commands: 0, cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), at: performance.now() }
  onMessage(async (message) => {
    if (message.type === 'mark') {
      await profiler?.start()
      pauses.reset()
      window = { commands: processor.commands(), cpu: process.cpuUsage(), elu: performance.eventLoopUtilization(), at: performance.now() }
    } else if (message.type === 'report') {
      const cpu = process.cpuUsage(window.cpu)
      const report: ProcessorReport = {
        type: 'report',
        commands: processor.commands() - window.commands,
        cpuUs: cpu.user + cpu.system,
        eventLoopUtilization: performance.eventLoopUtilization(window.elu).utilization,
        seconds: (performance.now() - window.at) / 1000,
        pauses: pauses.summary(),
      }
      send(report)
      await profiler?.stop()
    } else if (message.type === 'stop') {
      await processor.close()
      send({ type: 'stopped' })
      process.exit(0)
    }
  })
  send({ type: 'ready' })
}

async function runClient(): Promise<void> {
  const client: SystemClient = await openClient(args.config)
  let workload: Workload = { name: 'none', keys: 'uniform', aggregates: 1 }
  let source = new CommandSource(workload, 1, '')
  let runs = 0
  const begin = (next: Workload, seed: number): void => {
    workload = next
    source = new CommandSource(next, seed, `${process.pid}-${runs++}`)
    running = true
    findLoops()
  }
  let histogram = newHistogram()
  let finds = newHistogram()
  let counts = { completed: 0, refused: 0, errors: 0, sent: 0, at: performance.now() }
  let firstError: string | undefined
  let running = false
  const outstanding = new Set<Promise<void>>()

  const issue = (startedAt: number): Promise<void> => {
    const command = source.next()
    // A reply that arrives after its load was halted (beyond the halt's wait) belongs to no window.
    const generation = runs
    counts.sent += 1
    const call = command.kind === 'create' ? client.create(command.id) : client.deposit(command.id, command.amount, command.note)
    const done = call.then(
      (accepted) => {
        if (generation !== runs) return
        recordMs(histogram, performance.now() - startedAt)
        counts.completed += 1
        if (!accepted) counts.refused += 1
      },
      (error: unknown) => {
        if (generation !== runs) return
        counts.errors += 1
        firstError ??= String((error as Error)?.message ?? error)
      },
    )
    const tracked = done.finally(() => outstanding.delete(tracked))
    outstanding.add(tracked)
    return tracked
  }

  const findLoops = (): void => {
    const generation = runs
    for (let i = 0; i < (workload.findInFlight ?? 0); i++) {
      void (async () => {
        while (running && generation === runs) {
          const started = performance.now()
          try {
            await client.find(source.pickExisting())
            recordMs(finds, performance.now() - started)
          } catch {
            counts.errors += 1
          }
        }
      })()
    }
  }

  onMessage(async (message) => {
    switch (message.type) {
      case 'setup': {
        const started = performance.now()
        let next = 0
        let failed = 0
        await Promise.all(
          Array.from({ length: Math.min(message.inFlight, message.count) }, async () => {
            while (next < message.count) {
              const rank = next++
              if (!(await client.create(aggregateId(rank)).catch(() => false))) failed += 1
            }
          }),
        )
        send({ type: 'setup-done', seconds: (performance.now() - started) / 1000, failed })
        break
      }
      case 'closed': {
        begin(message.workload, message.seed)
        const generation = runs
        for (let i = 0; i < message.inFlight; i++) {
          void (async () => {
            while (running && generation === runs) {
              const errors = counts.errors
              await issue(performance.now())
              // A failing system must not turn this loop into a busy one.
              if (counts.errors > errors) await new Promise((r) => setTimeout(r, 50))
            }
          })()
        }
        break
      }
      case 'open': {
        begin(message.workload, message.seed)
        const start = performance.now()
        const rate = message.rate
        let index = 0
        const tick = (): void => {
          if (!running) return
          const due = dueBy(performance.now() - start, rate)
          // The schedule, not the replies, decides when a command leaves; latency counts from then.
          for (; index < due; index++) void issue(start + intendedTime(index, rate))
          setTimeout(tick, 1)
        }
        tick()
        break
      }
      case 'mark':
        await profiler?.start()
        pauses.reset()
        histogram = newHistogram()
        finds = newHistogram()
        counts = { completed: 0, refused: 0, errors: 0, sent: 0, at: performance.now() }
        firstError = undefined
        break
      case 'report': {
        const report: ClientReport = {
          type: 'report',
          ...counts,
          seconds: (performance.now() - counts.at) / 1000,
          latency: summarize(histogram),
          ...(workload.findInFlight ? { find: summarize(finds) } : {}),
          ...(firstError !== undefined && { firstError }),
          pauses: pauses.summary(),
        }
        send(report)
        await profiler?.stop()
        break
      }
      case 'halt': {
        running = false
        const deadline = Date.now() + message.timeoutMs
        while (outstanding.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
        send({ type: 'halted', unanswered: outstanding.size })
        break
      }
      case 'exit':
        await client.close().catch(() => undefined)
        send({ type: 'stopped' })
        process.exit(0)
    }
  })
  send({ type: 'ready' })
}

await (args.role === 'processor' ? runProcessor() : runClient())
