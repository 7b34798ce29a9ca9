import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  CliContext,
  inspect,
  listDeadLetters,
  outcome,
  projectionRebuild,
  projectionReset,
  rebuild,
  replayDeadLetter,
  resolveConfig,
  run,
  showDeadLetter,
  status,
  topicsCheck,
  type EskCliConfig,
  type RebuildProgress,
} from '@esk/cli'
import { createEsk, defineProjection, on, type Esk } from '@esk/core'
import { partitionFor } from '@esk/core/driver'
import { kafkaTransport } from '@esk/kafka'
import { deleteKeysWithPrefix, redisStore } from '@esk/redis'
import { PartitionKeys, StateFields } from '@esk/redis/driver'
import { contractModel } from '@esk/testing/contract'
import { eventually, localStack } from '@esk/testing/stack'
import { Redis } from 'ioredis'
import { Kafka, logLevel } from 'kafkajs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

const { ContractAccount, Open, Deposit, Deposited, Opened, Withdraw, Explode } = contractModel

const PARTITIONS = 2
const stack = localStack()
const id = randomUUID().slice(0, 8)
const topicPrefix = `esk-cli-${id}.`
const keyPrefix = `esk-cli-${id}:`
const stream = { aggregate: 'contract-account', partitions: PARTITIONS }

/** Sums every amount opened with and deposited, per aggregate. */
const Balances = defineProjection({
  name: `cli-balances-${id}`,
  handlers: [
    on(Opened, (event, meta, store) => store.hash('balances').incr(meta.aggregateId, event.initial)),
    on(Deposited, (event, meta, store) => store.hash('balances').incr(meta.aggregateId, event.amount)),
  ],
})

const config: EskCliConfig = {
  brokers: stack.brokers,
  redisUrl: stack.redisUrl,
  topicPrefix,
  keyPrefix,
  aggregates: [{ aggregate: ContractAccount, partitions: PARTITIONS }],
  projections: [Balances],
  dedupWindow: 2,
}

let app: Esk
let redis: Redis
const contexts: CliContext[] = []

/** A CLI context over the application's topics and keys, closed after each test. */
function cli(extra: Partial<EskCliConfig> = {}): CliContext {
  const context = new CliContext(resolveConfig({ ...config, ...extra }))
  contexts.push(context)
  return context
}

async function startApp(): Promise<Esk> {
  return createEsk({
    aggregates: [{ aggregate: ContractAccount, partitions: PARTITIONS }],
    driver: {
      transport: kafkaTransport({ brokers: stack.brokers, topicPrefix, logLevel: logLevel.NOTHING, sessionTimeoutMs: 6_000 }),
      store: redisStore({ url: stack.redisUrl, keyPrefix }),
    },
    projections: [Balances],
    dedupWindow: 2,
    commandTimeoutMs: 30_000,
  })
}

function stateKey(partition: number): string {
  return new PartitionKeys(keyPrefix, stream, partition).state
}

beforeAll(async () => {
  redis = new Redis(stack.redisUrl)
  app = await startApp()
})

afterEach(async () => {
  for (const context of contexts.splice(0)) await context.close()
})

afterAll(async () => {
  await app?.close()
  await deleteKeysWithPrefix(redis, keyPrefix)
  redis.disconnect()
})

describe('esk CLI against Kafka and Redis', () => {
  it('status: owner in Redis, ready, checkpoint, lag and event end per partition, and read models', async () => {
    const accounts = app.repository(ContractAccount)
    const { id: account } = await accounts.save(new Open('st', 5))
    await app.projection(Balances).waitFor(await accounts.update(account, new Deposit(1)))
    const report = await status(cli())
    expect(report.aggregates).toHaveLength(1)
    const [aggregate] = report.aggregates
    expect(aggregate).toMatchObject({ aggregate: 'contract-account', partitions: PARTITIONS, group: { id: `${topicPrefix}contract-account.processor`, state: 'Stable', members: 1 } })
    const partition = partitionFor(account, PARTITIONS)
    const row = aggregate!.rows[partition]!
    // The owner in Redis is the token of this application's processor.
    const held = app.status().partitions.find((p) => p.partition === partition)!
    expect(row).toMatchObject({ partition, ready: true, owner: held.owner, member: expect.stringContaining('@'), lag: 0 })
    // Transaction markers take offsets after the last event: the end is a little past the checkpoint.
    expect(row.checkpoint!.offset).toBeLessThanOrEqual(row.eventEnd)
    expect(row.checkpoint!.offset).toBeGreaterThan(row.eventEnd - 3)
    expect(row.committed).toBe(row.commandEnd)
    expect(report.projections).toEqual([expect.objectContaining({ name: Balances.options.name, caughtUp: true, lag: 0 })])
  })

  it('inspect: events and snapshot agree, and a snapshot changed behind esk is shown to disagree with the first difference', async () => {
    const accounts = app.repository(ContractAccount)
    const { id: account } = await accounts.save(new Open('in', 10))
    await accounts.update(account, new Deposit(7))
    await accounts.get(account, { atLeastVersion: 2 })
    const good = await inspect(cli(), 'contract-account', account)
    expect(good).toMatchObject({ verdict: 'agree', partition: partitionFor(account, PARTITIONS), ready: true })
    expect(good.events.map((e) => [e.version, e.type])).toEqual([
      [1, 'contract.Opened'],
      [2, 'contract.Deposited'],
    ])
    expect(good.snapshot).toMatchObject({ version: 2, state: expect.objectContaining({ balance: 17 }) })

    // Same version and offset, another balance: only folding the events can tell.
    const key = stateKey(partitionFor(account, PARTITIONS))
    const stored = JSON.parse((await redis.hget(key, StateFields.snapshot(account)))!) as { state: string }
    stored.state = stored.state.replace('"balance":17', '"balance":99')
    await redis.hset(key, StateFields.snapshot(account), JSON.stringify(stored))
    const bad = await inspect(cli(), 'contract-account', account)
    expect(bad.verdict).toBe('disagree')
    expect(bad.difference).toMatch(/^state balance: /)
    expect(await run(['inspect', 'contract-account', account], io(captured()))).toBe(1)

    // Rebuilding the partition puts the snapshot right again.
    await rebuild(cli(), 'contract-account', { partition: partitionFor(account, PARTITIONS) })
    expect((await inspect(cli(), 'contract-account', account)).verdict).toBe('agree')
    expect(await inspect(cli(), 'contract-account', 'never-opened')).toMatchObject({ verdict: 'empty', events: [], snapshot: null })
  })

  it('rebuild: every partition while the application runs; its processors take their partitions back and go on', async () => {
    const accounts = app.repository(ContractAccount)
    // Three accounts on each partition: a processor takes its partition back at its next command
    // there. Failed about once in 32 runs before, when the six random ids all fell on one
    // partition and the other one waited for a command that never came.
    const ids: string[] = []
    for (let i = 0; i < 6; i++) {
      let id = randomUUID()
      while (partitionFor(id, PARTITIONS) !== i % PARTITIONS) id = randomUUID()
      const { id: account } = await accounts.save(new Open(`rb-${i}`, i), { id })
      await accounts.update(account, new Deposit(100))
      ids.push(account)
    }
    const progress: RebuildProgress[] = []
    const report = await rebuild(cli(), 'contract-account', { onProgress: (p) => progress.push(p) })
    expect(report.partitions.map((p) => p.partition)).toEqual([0, 1])
    for (const p of report.partitions) {
      expect(p.heldBy).toEqual(expect.stringContaining('@'))
      if (p.result === 'rebuilt') expect(p.events).toBeGreaterThan(0)
      // Progress reached the end of each partition's log.
      expect(progress.filter((e) => e.partition === p.partition).at(-1)).toMatchObject({ partition: p.partition, offset: p.end, end: p.end })
    }
    const total = report.partitions.reduce((sum, p) => sum + p.end, 0)
    expect(progress.at(-1)!.overall).toEqual({ done: total, total })
    // Every partition is served again, and every aggregate is as its events say.
    for (const [i, account] of ids.entries()) expect((await accounts.get(account)).state.balance).toBe(i + 100)
    // The running processors stand down at their next command and take their partitions back.
    for (const account of ids) expect((await accounts.update(account, new Deposit(1))).version).toBe(3)
    for (let p = 0; p < PARTITIONS; p++) {
      await eventually(async () => (await redis.hget(stateKey(p), StateFields.owner)) === app.status().partitions.find((s) => s.partition === p)?.owner, `the processor to own ${p} again`, 60_000)
    }
    for (const account of ids) expect((await inspect(cli(), 'contract-account', account)).verdict).toBe('agree')
  })

  it('rebuild: follows a processor that takes the partition back before the CLI is done, writing nothing after', async () => {
    const accounts = app.repository(ContractAccount)
    const { id: account } = await accounts.save(new Open('tk', 1))
    const partition = partitionFor(account, PARTITIONS)
    const key = stateKey(partition)
    const calls: RebuildProgress[] = []
    let taken: Promise<unknown> | undefined
    const rebuilding = rebuild(cli(), 'contract-account', {
      partition,
      timeoutMs: 30_000,
      onProgress: (p) => {
        calls.push(p)
        // The second report comes once the CLI holds the store (the first is before it starts):
        // take it with another token, as a processor reopening the partition does. The command is
        // written at once, while the CLI's next step is a round trip to Kafka before its next write.
        if (calls.length === 2) taken = redis.hset(key, StateFields.owner, 'a-processor-token')
      },
    })
    // The CLI's next write is refused; it follows until the partition is ready, which the "processor" says.
    await eventually(async () => taken !== undefined && (await taken, true), 'the store to be taken')
    await eventually(async () => (await redis.hget(key, StateFields.ready)) === null, 'the CLI to wait for the processor', 10_000)
    await redis.hset(key, StateFields.ready, '1')
    const report = await rebuilding
    expect(report.partitions).toEqual([expect.objectContaining({ partition, result: 'taken-over' })])
    expect(await redis.hget(key, StateFields.owner)).toBe('a-processor-token')
    // The application's processor finds another owner at its next command, and takes the partition back with a new fence.
    expect((await accounts.update(account, new Deposit(2))).version).toBe(2)
    await eventually(async () => (await redis.hget(key, StateFields.owner)) === app.status().partitions.find((s) => s.partition === partition)?.owner, 'the processor to own it again', 60_000)
    expect((await inspect(cli(), 'contract-account', account)).verdict).toBe('agree')
  })

  it('projection rebuild and reset, through the read model API', async () => {
    const accounts = app.repository(ContractAccount)
    const { id: account } = await accounts.save(new Open('pr', 3))
    await app.projection(Balances).waitFor(await accounts.update(account, new Deposit(4)))
    const before = (await app.projection(Balances).status()).live!.id
    const progress: number[] = []
    const rebuilt = await projectionRebuild(cli(), Balances.options.name, { onProgress: (p) => progress.push(p.events) })
    expect(rebuilt.rebuild!.generation).toBeGreaterThan(before)
    expect(progress.length).toBeGreaterThan(0)
    await eventually(async () => (await app.projection(Balances).status()).live!.id === rebuilt.rebuild!.generation, 'the new generation')
    expect(await app.projection(Balances).hash('balances').get(account)).toBe(7)

    await projectionReset(cli(), Balances.options.name)
    await eventually(async () => (await app.projection(Balances).hash('balances').get(account)) === 7 && (await app.projection(Balances).status()).caughtUp, 'the reset read model to catch up', 60_000)
    expect(await run(['projection', 'rebuild', 'no-such-model'], io(captured()))).toBe(2)
  })

  it('dlq list, show, and replay with a new command id; outcome finds each kind of command', async () => {
    const accounts = app.repository(ContractAccount)
    const { id: account, ...opened } = await accounts.save(new Open('dl', 1))
    const explodeId = randomUUID()
    await expect(accounts.update(account, new Explode(), { commandId: explodeId })).rejects.toMatchObject({ code: 'ESK_HANDLER_FAILED' })
    const listed = (await listDeadLetters(cli(), 'contract-account')).filter((d) => d.aggregateId === account)
    expect(listed).toEqual([
      expect.objectContaining({ code: 'ESK_HANDLER_FAILED', commandId: explodeId, type: 'contract.Explode', partition: partitionFor(account, PARTITIONS) }),
    ])
    const shown = await showDeadLetter(cli(), 'contract-account', listed[0]!.entry)
    expect(shown.command).toMatchObject({ commandId: explodeId, aggregateId: account, type: 'contract.Explode' })

    const replayed = await replayDeadLetter(cli(), 'contract-account', listed[0]!.entry, { wait: true })
    expect(replayed.commandId).not.toBe(explodeId)
    expect(replayed.originalCommandId).toBe(explodeId)
    // Still a bug in the handler: refused again, under its new id, and dead-lettered again.
    expect(replayed.outcome).toMatchObject({ status: 'rejected', commandId: replayed.commandId, error: { code: 'ESK_HANDLER_FAILED' } })
    await eventually(async () => (await listDeadLetters(cli(), 'contract-account')).filter((d) => d.aggregateId === account).length === 2, 'a second dead letter')
    await expect(showDeadLetter(cli(), 'contract-account', '0:999999')).rejects.toMatchObject({ code: 'ESK_INVALID_ARGUMENT' })

    // outcome: from the dedup window, the unlogged outcomes, the event log, the dead letters.
    const context = cli()
    expect(await outcome(context, 'contract-account', account, opened.commandId)).toMatchObject({ found: true, source: 'snapshot', outcome: { status: 'accepted', version: 1 } })
    const refusedId = randomUUID()
    await expect(accounts.update(account, new Withdraw(1000), { commandId: refusedId })).rejects.toMatchObject({ code: 'ESK_COMMAND_REJECTED' })
    expect(await outcome(context, 'contract-account', account, refusedId)).toMatchObject({ source: 'unlogged', outcome: { status: 'rejected', error: { code: 'ESK_COMMAND_REJECTED' } } })
    // Two more accepted commands push the first out of the window of 2: the event log still knows it.
    await accounts.update(account, new Deposit(1))
    await accounts.update(account, new Deposit(1))
    expect(await outcome(context, 'contract-account', account, opened.commandId)).toMatchObject({ source: 'event-log', outcome: { status: 'accepted', version: 1, events: 1 } })
    // Unlogged outcomes forgotten (as after a flush): the dead letters still tell.
    await redis.del(new PartitionKeys(keyPrefix, stream, partitionFor(account, PARTITIONS)).unlogged)
    expect(await outcome(context, 'contract-account', account, explodeId)).toMatchObject({ source: 'dead-letters', outcome: { status: 'rejected', error: { code: 'ESK_HANDLER_FAILED' } } })
    expect(await outcome(context, 'contract-account', account, 'never-sent')).toMatchObject({ found: false, source: null })
  })

  it('topics check: the topics of a running application pass; compaction, short retention and other partition counts fail', async () => {
    const good = await topicsCheck(cli())
    expect(good.ok).toBe(true)
    expect(good.aggregates[0]!.topics.map((t) => [t.role, t.partitions, t.problems])).toEqual([
      ['commands', PARTITIONS, []],
      ['events', PARTITIONS, []],
      ['dead-letters', PARTITIONS, []],
    ])
    // Topics made by hand, wrong: a compacted event topic with short retention, a dead-letter topic with 3 partitions.
    const kafka = new Kafka({ brokers: stack.brokers, logLevel: logLevel.NOTHING })
    const admin = kafka.admin()
    await admin.connect()
    try {
      await admin.createTopics({
        waitForLeaders: true,
        topics: [
          { topic: `${topicPrefix}handmade.commands`, numPartitions: 2 },
          { topic: `${topicPrefix}handmade.events`, numPartitions: 2, configEntries: [{ name: 'cleanup.policy', value: 'compact' }, { name: 'retention.ms', value: '3600000' }] },
          { topic: `${topicPrefix}handmade.dead-letters`, numPartitions: 3 },
        ],
      })
    } finally {
      await admin.disconnect()
    }
    const bad = await topicsCheck(cli({ aggregates: ['handmade'] }))
    expect(bad.ok).toBe(false)
    const problems = bad.aggregates[0]!.topics.flatMap((t) => t.problems.map((p) => `${t.role} ${p.severity}: ${p.message}`))
    expect(problems).toEqual([
      expect.stringMatching(/^events error: cleanup.policy is compact/),
      expect.stringMatching(/^events error: retention.ms is 3600000, not -1/),
      expect.stringMatching(/^dead-letters error: has 3 partitions, expected 2/),
      expect.stringMatching(/^dead-letters warning: retention.ms is/),
    ])
  })

  it('the built esk binary: a JSON configuration file, --json output and exit codes', async () => {
    const bin = fileURLToPath(new URL('../dist/bin.js', import.meta.url))
    const dir = await mkdtemp(join(tmpdir(), 'esk-cli-'))
    try {
      const file = join(dir, 'esk.config.json')
      // One retry, so that the unreachable broker below fails fast.
      const kafka = { kafka: { retry: { retries: 1, initialRetryTime: 100 } } }
      await writeFile(file, JSON.stringify({ brokers: stack.brokers, redisUrl: stack.redisUrl, topicPrefix, keyPrefix, aggregates: ['contract-account', 'handmade'], kafka }))
      const exec = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
        try {
          const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { cwd: dir, timeout: 60_000 })
          return { code: 0, stdout, stderr }
        } catch (error) {
          const e = error as { code: number; stdout: string; stderr: string }
          return { code: e.code, stdout: e.stdout, stderr: e.stderr }
        }
      }
      const statusRun = await exec('status', 'contract-account', '--json')
      expect(statusRun.code).toBe(0)
      const parsed = JSON.parse(statusRun.stdout) as { aggregates: Array<{ rows: Array<{ ready: boolean }> }> }
      expect(parsed.aggregates[0]!.rows.map((r) => r.ready)).toEqual([true, true])
      // The hand-made topics of the previous test are wrong: exit 1.
      const check = await exec('topics', 'check', '--json')
      expect(check.code).toBe(1)
      expect((JSON.parse(check.stdout) as { ok: boolean }).ok).toBe(false)
      const text = await exec('topics', 'check', 'contract-account')
      expect(text).toMatchObject({ code: 0, stdout: expect.stringContaining('topics ok') })
      const unknown = await exec('inspect', 'nothing-like-it', 'x', '--json')
      expect(unknown.code).toBe(2)
      expect(JSON.parse(unknown.stderr)).toMatchObject({ error: { code: 'ESK_CONFIGURATION', message: expect.stringContaining("no aggregate named 'nothing-like-it'") } })
      const unreachable = await exec('status', '--brokers', '127.0.0.1:1', '--json')
      expect(unreachable.code).toBe(3)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

function captured(): { out: string[]; err: string[] } {
  return { out: [], err: [] }
}

function io(sink: { out: string[]; err: string[] }): Parameters<typeof run>[1] {
  return {
    stdout: (t) => void sink.out.push(t),
    stderr: (t) => void sink.err.push(t),
    config,
    progress: false,
  }
}
