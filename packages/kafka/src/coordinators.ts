import type { Kafka, Producer, ProducerConfig } from 'kafkajs'

/*
 * kafkajs looks up the transaction coordinator before every step of a transaction (add
 * partitions, add offsets, end) and the group coordinator before every offset commit: four
 * FindCoordinator requests out of nine per transaction, none of them needed while the coordinators
 * stay where they are. A transactional producer made by `producerWithCoordinatorCache` remembers
 * each coordinator it found:
 * - for at most `ttlMs`, and only while the connection to it is up;
 * - until a request sent to it through the remembered broker fails in a way that says it may not
 *   be the coordinator any more: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
 *   COORDINATOR_LOAD_IN_PROGRESS, or any failure that is not a Kafka error code (a dead
 *   connection, a timeout). kafkajs answers those by asking for the coordinator again, which then
 *   finds it afresh. Other error codes (CONCURRENT_TRANSACTIONS after a commit, a fenced epoch)
 *   come from the right coordinator and keep it.
 *
 * kafkajs has no option for this, so the producer's cluster is reached through the Kafka
 * instance's private cluster factory. If a kafkajs release renames it, producers are made as
 * before (without the cache) and `coordinatorCacheActive` reports false; a test pins the
 * installed release.
 */

/** How long a coordinator found is trusted without asking again, at most. */
export const COORDINATOR_CACHE_TTL_MS = 10_000

/** The part of a kafkajs Broker the cache needs. */
interface CachedBroker {
  isConnected(): boolean
}

/** The part of a kafkajs Cluster the cache replaces. */
interface CoordinatorLookup {
  findGroupCoordinator(request: { groupId: string; coordinatorType?: number }): Promise<CachedBroker>
}

type ClusterFactory = (options: unknown) => CoordinatorLookup

const FACTORY_DESCRIPTION = 'private:Kafka:createCluster'

function factoryKey(kafka: Kafka): symbol | undefined {
  return Object.getOwnPropertySymbols(kafka).find((s) => s.description === FACTORY_DESCRIPTION)
}

/** True when this kafkajs release lets producers made here cache their coordinators. */
export function coordinatorCacheActive(kafka: Kafka): boolean {
  const key = factoryKey(kafka)
  return key !== undefined && typeof (kafka as unknown as Record<symbol, unknown>)[key] === 'function'
}

/** `kafka.producer(config)`, whose cluster remembers the coordinators it finds (see above). */
export function producerWithCoordinatorCache(kafka: Kafka, config: ProducerConfig, ttlMs = COORDINATOR_CACHE_TTL_MS): Producer {
  const key = factoryKey(kafka)
  const slots = kafka as unknown as Record<symbol, ClusterFactory>
  const original = key === undefined ? undefined : slots[key]
  if (key === undefined || typeof original !== 'function') return kafka.producer(config)
  // kafkajs creates the producer's cluster synchronously inside producer().
  slots[key] = (options) => cacheCoordinators(original(options), ttlMs)
  try {
    return kafka.producer(config)
  } finally {
    slots[key] = original
  }
}

/** Replaces `cluster.findGroupCoordinator` with a remembering one; exported for its unit test. */
export function cacheCoordinators<C extends CoordinatorLookup>(cluster: C, ttlMs: number, now: () => number = Date.now): C {
  const find = cluster.findGroupCoordinator.bind(cluster)
  const found = new Map<string, { broker: CachedBroker; at: number }>()
  cluster.findGroupCoordinator = async (request) => {
    const key = `${request.coordinatorType ?? 0}:${request.groupId}`
    const entry = found.get(key)
    if (entry && now() - entry.at < ttlMs && entry.broker.isConnected()) return entry.broker
    found.delete(key)
    const broker = await find(request)
    const watched = forgetOnFailure(broker, () => {
      if (found.get(key)?.broker === watched) found.delete(key)
    })
    found.set(key, { broker: watched, at: now() })
    return watched
  }
  return cluster
}

/** Kafka error codes that say the broker asked is not (or not yet) the coordinator. */
const MOVED = new Set(['NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS'])

/** True for a failure after which the coordinator must be looked up again. */
export function coordinatorMayHaveMoved(error: unknown): boolean {
  const type = (error as { type?: unknown } | null)?.type
  return typeof type !== 'string' || MOVED.has(type)
}

/** The broker, with a failed request that may mean the coordinator moved making the cache forget it. */
function forgetOnFailure<B extends object>(broker: B, forget: () => void): B {
  return new Proxy(broker, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown
      if (typeof value !== 'function' || property === 'isConnected') return value
      return (...args: unknown[]) => {
        let result: unknown
        try {
          result = (value as (...a: unknown[]) => unknown).apply(target, args)
        } catch (error) {
          if (coordinatorMayHaveMoved(error)) forget()
          throw error
        }
        if (result instanceof Promise) {
          return result.catch((error: unknown) => {
            if (coordinatorMayHaveMoved(error)) forget()
            throw error
          })
        }
        return result
      }
    },
  })
}
