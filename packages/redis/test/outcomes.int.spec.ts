import { randomUUID } from 'node:crypto'
import { sleep, type CommandKey, type Outcome, type StreamSpec } from '@esk/core/driver'
import { redisStore, RedisStore, type RedisStoreOptions } from '@esk/redis'
import { replyChannel } from '@esk/redis/driver'
import { eventually } from '@esk/testing/stack'
import { Redis } from 'ioredis'
import { describe, expect, it, vi } from 'vitest'
import { REDIS_URL, isolatedStores } from './support.js'

const stream: StreamSpec = { aggregate: 'Account', partitions: 4 }
const FOREVER = 600_000

function accepted(commandId: string, aggregateId = 'a-1'): Outcome {
  return { status: 'accepted', commandId, aggregateId, version: 1, events: 1 }
}

/** The identity of a command of aggregate `a-1` (or `aggregateId`). */
function command(commandId: string, aggregateId = 'a-1'): CommandKey {
  return { aggregateId, commandId }
}

/**
 * Records an outcome as a processor does after its commit, owning the partition for that write: an
 * accepted command with events in its aggregate's snapshot window, anything else in the unlogged
 * outcomes.
 */
async function record(processor: RedisStore, outcome: Outcome, partition = 0): Promise<void> {
  const token = randomUUID()
  await processor.snapshots.acquire(stream, partition, token)
  const inWindow = outcome.status === 'accepted' && outcome.events > 0
  await processor.snapshots.save(stream, partition, token, {
    snapshots: inWindow
      ? [
          {
            aggregateId: outcome.aggregateId,
            version: outcome.version,
            schemaVersion: 1,
            offset: outcome.version - 1,
            state: '{}',
            recent: [{ commandId: outcome.commandId, version: outcome.version, events: outcome.events }],
          },
        ]
      : [],
    checkpoint: { offset: 0, commandPosition: -1, schemaVersion: 1 },
    unlogged: inWindow ? [] : [outcome],
  })
}

/** What a processor does after its commit: record the outcome, then notify the client. */
async function answer(processor: RedisStore, client: RedisStore, outcome: Outcome, partition = 0): Promise<void> {
  await record(processor, outcome, partition)
  await processor.outcomes.publish(stream, partition, [{ replyTo: client.outcomes.address, outcome }])
}

/** Resolves with the outcome, or 'pending' if it has not arrived within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([promise, sleep(ms).then(() => 'pending' as const)])
}

describe('RedisOutcomeChannel', () => {
  const { open, admin, prefix } = isolatedStores()

  /** A client whose subscription is live: its first wait was answered. */
  async function warmClient(options: RedisStoreOptions = {}): Promise<RedisStore> {
    const client = open({ outcomePollMs: FOREVER, outcomePollMaxMs: FOREVER, ...options })
    const processor = open()
    const commandId = `warm-${randomUUID()}`
    const waiting = client.outcomes.wait(stream, 0, command(commandId)).outcome
    await answer(processor, client, accepted(commandId))
    expect(await waiting).toEqual(accepted(commandId))
    return client
  }

  it('delivers a reply over pub/sub, without reading the store', async () => {
    const client = await warmClient()
    const processor = open()
    const readOutcome = vi.spyOn(client.snapshots, 'readOutcome')
    const commandId = randomUUID()
    const waiting = client.outcomes.wait(stream, 1, command(commandId)).outcome
    // Published only, never recorded: it can only arrive by pub/sub.
    await processor.outcomes.publish(stream, 1, [{ replyTo: client.outcomes.address, outcome: accepted(commandId) }])
    expect(await waiting).toEqual(accepted(commandId))
    expect(readOutcome).not.toHaveBeenCalled()
  })

  it('answers a fresh client whose reply was published before its subscription was acknowledged', async () => {
    const processor = open()
    await processor.snapshots.checkpoint(stream, 0) // connected and ready: faster than a new subscriber
    const client = open({ outcomePollMs: FOREVER, outcomePollMaxMs: FOREVER })
    const commandId = randomUUID()
    const waiting = client.outcomes.wait(stream, 0, command(commandId)).outcome
    await answer(processor, client, accepted(commandId))
    expect(await within(waiting, 3_000)).toEqual(accepted(commandId))
  })

  it('gives each client only its own replies', async () => {
    const first = await warmClient()
    const second = await warmClient()
    const processor = open()
    expect(first.outcomes.address).not.toBe(second.outcomes.address)
    const subscribers = (await admin().pubsub(
      'NUMSUB',
      replyChannel(prefix(), first.outcomes.address),
      replyChannel(prefix(), second.outcomes.address),
    )) as Array<string | number>
    expect(subscribers.map(String)).toEqual([
      replyChannel(prefix(), first.outcomes.address),
      '1',
      replyChannel(prefix(), second.outcomes.address),
      '1',
    ])

    // Both wait for the same command id; the reply goes to the first client only.
    const commandId = randomUUID()
    const mine = first.outcomes.wait(stream, 2, command(commandId)).outcome
    const theirs = second.outcomes.wait(stream, 2, command(commandId))
    const other = randomUUID()
    const secondOwn = second.outcomes.wait(stream, 2, command(other)).outcome
    await processor.outcomes.publish(stream, 2, [
      { replyTo: first.outcomes.address, outcome: accepted(commandId) },
      { replyTo: second.outcomes.address, outcome: accepted(other) },
    ])
    expect(await mine).toEqual(accepted(commandId))
    expect(await secondOwn).toEqual(accepted(other))
    expect(await within(theirs.outcome, 200)).toBe('pending')
    theirs.stop()
    expect(await theirs.outcome).toBeUndefined()
  })

  it('answers a client once per batch, one outcome per line, and a client of an earlier version once per outcome', async () => {
    const client = await warmClient()
    const processor = open()
    // A client of an earlier version: its address has no suffix, and it reads one outcome a message.
    const earlier = `earlier-${randomUUID()}`
    const subscriber = admin().duplicate()
    const heard: Record<string, string[]> = { mine: [], earlier: [] }
    subscriber.on('message', (channel: string, text: string) => heard[channel.endsWith(earlier) ? 'earlier' : 'mine']!.push(text))
    await subscriber.subscribe(replyChannel(prefix(), client.outcomes.address), replyChannel(prefix(), earlier))
    try {
      const ids = Array.from({ length: 5 }, () => randomUUID())
      const waiting = ids.map((id, i) => client.outcomes.wait(stream, 1, command(id, `a-${i}`)).outcome)
      const replies = ids.flatMap((id, i) => [
        { replyTo: client.outcomes.address, outcome: accepted(id, `a-${i}`) },
        { replyTo: earlier, outcome: accepted(id, `b-${i}`) },
      ])
      // Through the save script, as a processor answers, and through the publish fallback.
      const token = randomUUID()
      await processor.snapshots.acquire(stream, 1, token)
      await processor.snapshots.save(stream, 1, token, { snapshots: [], checkpoint: { offset: 0, commandPosition: -1, schemaVersion: 1 }, unlogged: [], replies })
      expect(await Promise.all(waiting)).toEqual(ids.map((id, i) => accepted(id, `a-${i}`)))
      await processor.outcomes.publish(stream, 1, replies)
      await eventually(() => heard.mine!.length === 2 && heard.earlier!.length === 10, 'every message')
      for (const message of heard.mine!) expect(message.split('\n').map((line) => JSON.parse(line))).toEqual(ids.map((id, i) => accepted(id, `a-${i}`)))
      expect(heard.earlier!.map((text) => JSON.parse(text))).toEqual([...ids, ...ids].map((id, i) => accepted(id, `b-${i % 5}`)))
    } finally {
      await subscriber.quit()
    }
  })

  it('finds outcomes that were recorded but never published, by polling after a delay', async () => {
    const client = await warmClient({ outcomePollMs: 300, outcomePollMaxMs: 400 })
    const processor = open()
    const readOutcomes = vi.spyOn(client.snapshots, 'readOutcomes')
    // One command id on two aggregates: one accepted (kept in its snapshot's window), one refused
    // (kept in the unlogged outcomes). Each waiter gets its own.
    const commandId = randomUUID()
    const refusal: Outcome = {
      status: 'rejected',
      commandId,
      aggregateId: 'a-2',
      error: { code: 'ESK_COMMAND_REJECTED', message: 'no' },
    }
    const started = Date.now()
    const waiting = client.outcomes.wait(stream, 3, command(commandId)).outcome
    const refused = client.outcomes.wait(stream, 3, command(commandId, 'a-2')).outcome
    await sleep(100)
    expect(readOutcomes).not.toHaveBeenCalled()
    await record(processor, accepted(commandId), 3)
    await record(processor, refusal, 3)
    expect(await waiting).toEqual(accepted(commandId))
    expect(await refused).toEqual(refusal)
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    // Both waiters of the partition were due together: one read.
    expect(readOutcomes).toHaveBeenCalledTimes(1)
    expect(readOutcomes.mock.calls[0]![2]).toHaveLength(2)
  })

  it('reads the outcomes of many waiting calls in one round trip per partition', async () => {
    // Fails before the fix: each waiting call read the store on its own. Under overload, with
    // thousands of calls waiting, those reads flooded Redis and the client's event loop, and the
    // benchmark's open loop at 1.5 times capacity collapsed to a fifth of it (issue 9).
    const client = await warmClient({ outcomePollMs: 300, outcomePollMaxMs: 400 })
    const readOutcomes = vi.spyOn(client.snapshots, 'readOutcomes')
    const readOutcome = vi.spyOn(client.snapshots, 'readOutcome')
    const waiting = Array.from({ length: 200 }, (_, i) => client.outcomes.wait(stream, i % 2, command(randomUUID(), `a-${i}`)))
    await sleep(450)
    for (const wait of waiting) wait.stop()
    await Promise.all(waiting.map((wait) => wait.outcome))
    expect(readOutcome).not.toHaveBeenCalled()
    expect(readOutcomes).toHaveBeenCalledTimes(2)
    expect(readOutcomes.mock.calls.map((call) => [call[1], call[2].length]).sort()).toEqual([
      [0, 100],
      [1, 100],
    ])
  })

  // Issue 6, scenario 3: before 61b73dd, waiters were keyed by command id alone, so a reply for one
  // aggregate also answered a caller that used the same command id for another. This test fails
  // on that code.
  it('answers a waiter only with the outcome of its own aggregate', async () => {
    const client = await warmClient()
    const processor = open()
    const commandId = randomUUID()
    const mine = client.outcomes.wait(stream, 1, command(commandId)).outcome
    const other = client.outcomes.wait(stream, 1, command(commandId, 'a-2')).outcome
    await processor.outcomes.publish(stream, 1, [{ replyTo: client.outcomes.address, outcome: accepted(commandId, 'a-2') }])
    expect(await other).toEqual(accepted(commandId, 'a-2'))
    expect(await within(mine, 200)).toBe('pending')
    await processor.outcomes.publish(stream, 1, [{ replyTo: client.outcomes.address, outcome: accepted(commandId) }])
    expect(await mine).toEqual(accepted(commandId))

    // Ids that run together the same way ('a-1' + 'xc' and 'a-1x' + 'c') are still two commands.
    const split = client.outcomes.wait(stream, 1, command('xc', 'a-1')).outcome
    const joined = client.outcomes.wait(stream, 1, command('c', 'a-1x')).outcome
    await processor.outcomes.publish(stream, 1, [{ replyTo: client.outcomes.address, outcome: accepted('c', 'a-1x') }])
    expect(await joined).toEqual(accepted('c', 'a-1x'))
    expect(await within(split, 200)).toBe('pending')
  })

  it('polls with the default delays when nothing is published', async () => {
    const client = await warmClient({ outcomePollMs: undefined, outcomePollMaxMs: undefined })
    const processor = open()
    const readOutcomes = vi.spyOn(client.snapshots, 'readOutcomes')
    const commandId = randomUUID()
    const waiting = client.outcomes.wait(stream, 0, command(commandId)).outcome
    await sleep(3_200)
    expect(readOutcomes).toHaveBeenCalledTimes(1)
    await record(processor, accepted(commandId))
    // Next read 6 s after the first (3 s, then doubling up to 10 s).
    expect(await within(waiting, 5_000)).toBe('pending')
    expect(await within(waiting, 2_000)).toEqual(accepted(commandId))
    expect(readOutcomes).toHaveBeenCalledTimes(2)
  })

  it('resolves undefined once stopped, and keeps the outcome it had when stopped after it', async () => {
    const client = await warmClient()
    const processor = open()
    const waiting = client.outcomes.wait(stream, 0, command(randomUUID()))
    expect(await within(waiting.outcome, 100)).toBe('pending')
    waiting.stop()
    waiting.stop()
    expect(await waiting.outcome).toBeUndefined()

    const commandId = randomUUID()
    const answered = client.outcomes.wait(stream, 0, command(commandId))
    await answer(processor, client, accepted(commandId))
    expect(await answered.outcome).toEqual(accepted(commandId))
    answered.stop()
    expect(await answered.outcome).toEqual(accepted(commandId))
  })

  it('keeps a stopped wait from polling the store', async () => {
    const client = await warmClient({ outcomePollMs: 100, outcomePollMaxMs: 100 })
    const readOutcomes = vi.spyOn(client.snapshots, 'readOutcomes')
    const stopped = client.outcomes.wait(stream, 0, command(randomUUID()))
    stopped.stop()
    await sleep(300)
    expect(readOutcomes).not.toHaveBeenCalled()
  })

  it('catches up on replies published while its connection was down', async () => {
    const connectionName = `esk-test-${randomUUID()}`
    const client = await warmClient({ redisOptions: { connectionName } })
    const processor = open()
    const commandId = randomUUID()
    const waiting = client.outcomes.wait(stream, 0, command(commandId)).outcome
    const list = (await admin().client('LIST')) as string
    const subscriber = list
      .split('\n')
      .find((line) => line.includes(`name=${connectionName}`) && / cmd=subscribe /.test(line))
    expect(subscriber, list).toBeDefined()
    const id = /\bid=(\d+)/.exec(subscriber!)![1]!
    await admin().client('KILL', 'ID', id)
    await answer(processor, client, accepted(commandId))
    expect(await within(waiting, 5_000)).toEqual(accepted(commandId))
    // Subscribed again: later replies arrive by pub/sub.
    await eventually(async () => {
      const [, count] = (await admin().pubsub('NUMSUB', replyChannel(prefix(), client.outcomes.address))) as [string, number]
      return Number(count) === 1
    }, 'the re-subscription', 5_000)
    const next = randomUUID()
    const again = client.outcomes.wait(stream, 0, command(next)).outcome
    await processor.outcomes.publish(stream, 0, [{ replyTo: client.outcomes.address, outcome: accepted(next) }])
    expect(await again).toEqual(accepted(next))
  })

  it('rejects a publish the server refuses, whether its replies go to one client or to several', async () => {
    // A connection whose user may do anything but PUBLISH: a real refusal from redis-server.
    const user = `esk-test-nopub-${randomUUID()}`
    await admin().acl('SETUSER', user, 'on', '>secret', '~*', '&*', '+@all', '-publish')
    const refused = new Redis(REDIS_URL, { username: user, password: 'secret', maxRetriesPerRequest: 1 })
    const processor = redisStore({ client: refused, keyPrefix: prefix() })
    try {
      // Clients that read outcomes by line get one message per batch: one PUBLISH here, two below.
      const one = [{ replyTo: 'client-a.lines', outcome: accepted('c-1') }, { replyTo: 'client-a.lines', outcome: accepted('c-2', 'a-2') }]
      await expect(processor.outcomes.publish(stream, 1, one)).rejects.toThrow(/publishing 2 replies of Account\/1 failed: NOPERM/)
      const two = [{ replyTo: 'client-a.lines', outcome: accepted('c-1') }, { replyTo: 'client-b.lines', outcome: accepted('c-3') }]
      await expect(processor.outcomes.publish(stream, 1, two)).rejects.toThrow(/publishing 2 replies of Account\/1 failed: NOPERM/)
    } finally {
      await processor.close()
      refused.disconnect()
      await admin().acl('DELUSER', user)
    }
  })

  it('publishes nothing for an empty list and rejects pending waits on close', async () => {
    const client = await warmClient()
    await client.outcomes.publish(stream, 0, [])
    const waiting = client.outcomes.wait(stream, 0, command(randomUUID())).outcome
    await client.close()
    // Nobody awaited it while it was rejected: that must not be an unhandled rejection.
    await sleep(10)
    await expect(waiting).rejects.toMatchObject({ code: 'ESK_CLOSED' })
  })
})
