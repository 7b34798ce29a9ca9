/*
 * The client side of a fault run: a bounded load of account commands sent through esk (no
 * processing), every attempt recorded in the client's history file. `client-main.ts` runs it as
 * a process of its own.
 */
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createEsk } from '@esk/core'
import { kafkaTransport } from '@esk/kafka'
import { redisStore } from '@esk/redis'
import { seededRandom } from '@esk/testing'
import { between, type RunConfig } from './config.js'
import { Account, commandClasses } from './domain.js'
import { classify, HistoryWriter, type Attempt, type AttemptResult } from './history.js'
import { CommandType } from './model.js'
import { probePartitions } from './probe.js'
import { startWithin } from './start.js'

/** What one client does. */
export interface ClientPlan {
  name: string
  seed: number
  /** Aggregate ids this client creates and mostly updates. */
  aggregates: string[]
  /** Ids of other clients' aggregates it sometimes updates too. */
  shared: string[]
  /** Commands (not attempts) to send in total. */
  commands: number
  /** Commands in flight at once. */
  concurrency: number
  /** How long one attempt waits for its outcome, ms. */
  commandTimeoutMs: number
  /** Stop starting new commands after this long, ms. */
  durationMs: number
  /** Attempts per command when the answer is a timeout or an error (same command id). */
  maxAttempts: number
  historyPath: string
  /**
   * After the load, the client waits for this file (the harness creates it once every fault is
   * healed), then runs a liveness round of its own: one new command to every partition through
   * its own, long-lived connections, which lived through the faults.
   */
  livenessFile?: string
  /** How long the liveness round tries, ms. */
  livenessTimeoutMs?: number
}

/** What a client prints on stdout once its liveness round is over: per partition, ms from the go to its answer, or null. */
export interface ClientLiveness {
  liveness: Array<number | null>
}

interface Intent {
  op: 'save' | 'update'
  aggregateId: string
  payload: { type: string } & Record<string, unknown>
  expectedVersion?: number
}

/** Sends the plan's load, records it, prints one JSON summary line on stdout, then exits the process. */
export async function runClient(config: RunConfig, plan: ClientPlan): Promise<void> {
  const random = seededRandom(plan.seed)
  const history = new HistoryWriter(plan.historyPath)
  // Started while the stack restarts, the first attempts find no broker: try again, as an
  // application's supervisor would, for a bounded time.
  const app = await startWithin(60_000, () =>
    createEsk({
      aggregates: [{ aggregate: Account, partitions: config.partitions }],
      driver: {
        transport: kafkaTransport({ brokers: config.brokers, topicPrefix: config.topicPrefix, replicationFactor: config.replicationFactor ?? -1 }),
        store: redisStore({ url: config.redisPath, keyPrefix: config.keyPrefix }),
      },
      processing: false,
      commandTimeoutMs: plan.commandTimeoutMs,
    }),
  )
  const accounts = app.repository(Account)
  const created = new Set<string>()
  const versions = new Map<string, number>()
  const counts = { commands: 0, attempts: 0, accepted: 0, refused: 0, timeout: 0, error: 0 }
  const deadline = Date.now() + plan.durationMs
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!

  const nextIntent = (): Intent => {
    const uncreated = plan.aggregates.filter((id) => !created.has(id))
    if (uncreated.length > 0 && (created.size === 0 || random() < 0.3)) {
      const id = pick(uncreated)
      created.add(id) // optimistic: a refused or lost creation shows up as not-found updates
      return { op: 'save', aggregateId: id, payload: { type: CommandType.Open, owner: id, initialDeposit: between(random, 0, 200), overdraftLimit: between(random, 0, 100) } }
    }
    const known = [...created]
    const r = random()
    const id = r < 0.85 || plan.shared.length === 0 ? pick(known) : pick(plan.shared)
    const known_version = versions.get(id)
    const roll = random()
    if (roll < 0.02) return { op: 'save', aggregateId: id, payload: { type: CommandType.Open, owner: id, initialDeposit: 1, overdraftLimit: 0 } } // exists
    if (roll < 0.04) return { op: 'update', aggregateId: `missing-${randomUUID()}`, payload: { type: CommandType.Deposit, amount: 1 } } // not found
    if (roll < 0.07) return { op: 'update', aggregateId: id, payload: { type: CommandType.Deposit, amount: 0 } } // invalid
    if (roll < 0.35) return { op: 'update', aggregateId: id, payload: { type: CommandType.Deposit, amount: between(random, 1, 100) } }
    if (roll < 0.43) return { op: 'update', aggregateId: id, payload: { type: CommandType.DepositMany, amounts: [between(random, 1, 20), between(random, 1, 20), between(random, 1, 20)].slice(0, between(random, 1, 3)) } }
    if (roll < 0.75) return { op: 'update', aggregateId: id, payload: { type: CommandType.Withdraw, amount: between(random, 1, 250) } }
    if (roll < 0.9 && known_version !== undefined) {
      return { op: 'update', aggregateId: id, expectedVersion: known_version, payload: { type: CommandType.ChangeLimit, limit: between(random, 0, 150) } }
    }
    return { op: 'update', aggregateId: id, ...(known_version !== undefined && { expectedVersion: known_version }), payload: { type: CommandType.Deposit, amount: between(random, 1, 50) } }
  }

  const attempt = async (intent: Intent, commandId: string): Promise<AttemptResult> => {
    const { type, ...fields } = intent.payload
    const Cls = commandClasses[type as keyof typeof commandClasses]
    const command = Object.assign(new (Cls as new () => object)(), fields)
    const start = Date.now()
    let result: AttemptResult
    try {
      const r =
        intent.op === 'save'
          ? await accounts.save(command, { id: intent.aggregateId, commandId })
          : await accounts.update(intent.aggregateId, command, { commandId, ...(intent.expectedVersion !== undefined && { expectedVersion: intent.expectedVersion }) })
      result = { kind: 'accepted', version: r.version }
      versions.set(intent.aggregateId, Math.max(versions.get(intent.aggregateId) ?? 0, r.version))
    } catch (error) {
      result = classify(error)
    }
    const record: Attempt = {
      client: plan.name,
      op: intent.op,
      aggregateId: intent.aggregateId,
      commandId,
      ...(intent.expectedVersion !== undefined && { expectedVersion: intent.expectedVersion }),
      payload: intent.payload,
      start,
      end: Date.now(),
      result,
    }
    history.write(record)
    counts.attempts += 1
    counts[result.kind] += 1
    return result
  }

  const worker = async (): Promise<void> => {
    while (counts.commands < plan.commands && Date.now() < deadline) {
      counts.commands += 1
      const intent = nextIntent()
      const commandId = randomUUID()
      let result = await attempt(intent, commandId)
      for (let n = 1; n < plan.maxAttempts && (result.kind === 'timeout' || result.kind === 'error'); n++) {
        await new Promise((resolve) => setTimeout(resolve, 200 + between(random, 0, 300)))
        result = await attempt(intent, commandId)
      }
      // Now and then, ask again about a command that already has an answer: it must be the same.
      if (result.kind !== 'timeout' && result.kind !== 'error' && random() < 0.03) await attempt(intent, commandId)
    }
  }
  await Promise.all(Array.from({ length: plan.concurrency }, () => worker()))
  process.stdout.write(`${JSON.stringify({ done: true, ...counts })}\n`)
  if (plan.livenessFile !== undefined) {
    // The harness heals everything first (it may restart brokers): wait for it, bounded.
    const waitUntil = Date.now() + 10 * 60_000
    while (!existsSync(plan.livenessFile) && Date.now() < waitUntil) await new Promise((resolve) => setTimeout(resolve, 200))
    const go = Date.now()
    const answered = existsSync(plan.livenessFile)
      ? await probePartitions(app, { partitions: config.partitions, idPrefix: `live-${plan.name}`, client: `${plan.name}/liveness`, timeoutMs: plan.livenessTimeoutMs ?? 90_000, history })
      : Array.from({ length: config.partitions }, () => undefined)
    const report: ClientLiveness = { liveness: answered.map((t) => (t === undefined ? null : t - go)) }
    process.stdout.write(`${JSON.stringify(report)}\n`)
  }
  history.close()
  const timer = setTimeout(() => process.exit(0), 10_000)
  await app.close().catch(() => undefined)
  clearTimeout(timer)
  process.exit(0)
}

