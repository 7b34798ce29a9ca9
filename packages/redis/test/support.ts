import { spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deleteKeysWithPrefix, redisStore, type RedisStore, type RedisStoreOptions } from '@esk/redis'
import { eventually, localStack } from '@esk/testing/stack'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest'

/** The test Redis: the local stack's, or `ESK_REDIS_URL`. */
export const REDIS_URL = localStack().redisUrl

/** A key prefix no other test uses. */
export function testPrefix(): string {
  return `esk-test-${randomUUID()}:`
}

/** A plain client for assertions, checked to answer, with a message that says how to start Redis. */
export async function adminClient(): Promise<Redis> {
  const client = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: true })
  client.on('error', () => undefined)
  try {
    await client.connect()
    await client.ping()
  } catch (error) {
    client.disconnect()
    throw new Error(
      `no redis-server at ${REDIS_URL} (${(error as Error).message}); run 'scripts/stack.sh start' or set ESK_REDIS_URL`,
    )
  }
  return client
}

/**
 * The cluster hash slot of each key, as Redis computes it. A server without cluster support
 * refuses CLUSTER KEYSLOT, so then a throwaway cluster-enabled redis-server is started on a unix
 * socket (no port to collide with) just to ask it.
 */
export async function keySlots(client: Redis, keys: string[]): Promise<number[]> {
  try {
    return await Promise.all(keys.map((key) => client.cluster('KEYSLOT', key)))
  } catch (error) {
    if (!/cluster support disabled/i.test((error as Error).message)) throw error
  }
  const dir = await mkdtemp(join(tmpdir(), 'esk-keyslot-'))
  const socket = join(dir, 'redis.sock')
  const server = spawn(
    process.env.ESK_REDIS_SERVER ?? 'redis-server',
    ['--port', '0', '--unixsocket', socket, '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
      '--dir', dir, '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  )
  const exited = new Promise<void>((resolve) => {
    server.once('exit', () => resolve())
    server.once('error', () => resolve())
  })
  let failure: Error | undefined
  server.once('error', (error) => (failure = new Error(`cannot start redis-server for CLUSTER KEYSLOT: ${error.message}`)))
  const cluster = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  cluster.on('error', () => undefined)
  try {
    await eventually(
      () => {
        if (failure) throw failure
        return cluster.connect().then(() => true, () => false)
      },
      'the throwaway redis-server to accept connections',
      10_000,
    )
    return await Promise.all(keys.map((key) => cluster.cluster('KEYSLOT', key)))
  } finally {
    cluster.disconnect()
    if (!failure) server.kill('SIGTERM')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
}

/** Stores opened by a test, each test with a key prefix of its own, deleted afterwards. */
export interface IsolatedStores {
  /** A store on this test's prefix; closed after the test. */
  open(options?: RedisStoreOptions): RedisStore
  /** A plain client for assertions. */
  admin(): Redis
  /** This test's key prefix. */
  prefix(): string
}

/** Registers the hooks that give every test of the calling suite its own prefix and clean it up. */
export function isolatedStores(): IsolatedStores {
  let admin: Redis
  let prefix = ''
  const stores: RedisStore[] = []
  beforeAll(async () => {
    admin = await adminClient()
  })
  beforeEach(() => {
    prefix = testPrefix()
  })
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close()
    await deleteKeysWithPrefix(admin, prefix)
  })
  afterAll(async () => {
    await admin.quit()
  })
  return {
    open(options = {}) {
      const store = redisStore({ url: REDIS_URL, keyPrefix: prefix, ...options })
      stores.push(store)
      return store
    },
    admin: () => admin,
    prefix: () => prefix,
  }
}
