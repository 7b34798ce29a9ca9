import { deleteKeysWithPrefix } from '@esk/redis'
import { RedisProjectionStore } from '@esk/redis/driver'
import { describeProjectionStoreContract } from '@esk/testing/contract'
import { afterAll, beforeAll } from 'vitest'
import type { Redis } from 'ioredis'
import { adminClient, testPrefix } from './support.js'

let client: Redis
const prefixes: string[] = []
beforeAll(async () => {
  client = await adminClient()
})
afterAll(async () => {
  for (const prefix of prefixes) await deleteKeysWithPrefix(client, prefix)
  await client.quit()
})

// The same suite the in-memory store passes, over the real redis-server and its Lua scripts.
describeProjectionStoreContract(
  'redis',
  () => {
    const prefix = testPrefix()
    prefixes.push(prefix)
    return new RedisProjectionStore(client, { keyPrefix: prefix })
  },
  { release: async () => undefined },
)
