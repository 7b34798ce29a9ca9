/**
 * Redis bytes per aggregate and per retained command, from MEMORY USAGE of the keys a run left.
 * esk keeps one state hash per partition (per aggregate a snapshot field, an offset field and its
 * de-duplication window in two fields) and an `unlogged` hash of refusals; the baselines
 * keep one state hash per partition.
 */
import { decodeSnapshot } from '@esk/redis'
import { snapshotFields } from '@esk/redis/driver'
import { Redis } from 'ioredis'
import type { SystemConfig } from './systems.js'

/** What the keys of one fixture cost in Redis. */
export interface MemoryResult {
  system: string
  aggregates: number
  /** MEMORY USAGE (every element sampled) of the state hashes, divided by the aggregates in them. */
  bytesPerAggregate: number
  /** Mean entries of the de-duplication window per snapshot (esk). */
  retainedPerAggregate?: number
  /** JSON bytes of the window's stored texts divided by their entries: what one retained command adds to a snapshot (esk). */
  bytesPerRetainedCommand?: number
  /** MEMORY USAGE of the refusal hashes divided by their entries (esk, when there are any). */
  bytesPerUnloggedOutcome?: number
}

async function usage(redis: Redis, key: string): Promise<number> {
  return Number((await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')) ?? 0)
}

/** Measures the keys of `config`'s fixture. */
export async function measureMemory(config: SystemConfig): Promise<MemoryResult> {
  const redis = new Redis(config.redisUrl)
  try {
    let bytes = 0
    let aggregates = 0
    let retained = 0
    let retainedBytes = 0
    let storedEntries = 0
    let sampled = 0
    let unloggedBytes = 0
    let unloggedEntries = 0
    for (let p = 0; p < config.partitions; p++) {
      if (config.system !== 'esk') {
        const key = `${config.prefix}{${p}}:state`
        bytes += await usage(redis, key)
        aggregates += await redis.hlen(key)
        continue
      }
      const base = `${config.prefix}{bench-account:${p}}:`
      bytes += await usage(redis, `${base}state`)
      const fields = (await redis.hkeys(`${base}state`)).filter((f) => f.startsWith('s:'))
      aggregates += fields.length
      // The dedup windows beside each snapshot: the window is the newest entries of the `w:` and
      // `t:` fields, which may hold a few older ones as well (counted in the bytes they take).
      const sample = fields.slice(0, 100).map((field) => field.slice(2))
      const texts = sample.length > 0 ? await redis.hmget(`${base}state`, ...sample.flatMap(snapshotFields)) : []
      sample.forEach((id, i) => {
        const [text, window, tail] = texts.slice(3 * i, 3 * i + 3)
        if (text == null) return
        retained += decodeSnapshot(text, `${base}state`, `s:${id}`, window, tail).recent.length
        for (const part of [window, tail]) {
          if (!part) continue
          storedEntries += part.split('\n').length
          retainedBytes += Buffer.byteLength(part)
        }
        sampled += 1
      })
      unloggedBytes += await usage(redis, `${base}unlogged`)
      unloggedEntries += await redis.hlen(`${base}unlogged`)
    }
    return {
      system: config.system,
      aggregates,
      bytesPerAggregate: aggregates > 0 ? Math.round(bytes / aggregates) : NaN,
      ...(config.system === 'esk' && {
        retainedPerAggregate: sampled > 0 ? Math.round((retained / sampled) * 10) / 10 : NaN,
        bytesPerRetainedCommand: storedEntries > 0 ? Math.round(retainedBytes / storedEntries) : NaN,
        ...(unloggedEntries > 0 && { bytesPerUnloggedOutcome: Math.round(unloggedBytes / unloggedEntries) }),
      }),
    }
  } finally {
    redis.disconnect()
  }
}

/** Deletes every key of a fixture (SCAN + UNLINK), so runs do not fill the shared redis-server. */
export async function dropKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl)
  try {
    let cursor = '0'
    for (let rounds = 0; rounds < 100_000; rounds++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.unlink(...keys)
      cursor = next
      if (cursor === '0') break
    }
  } finally {
    redis.disconnect()
  }
}
