/** Where the local Kafka and Redis of `scripts/stack.sh` (or an existing deployment) answer. */
export interface StackAddress {
  /**
   * Kafka bootstrap brokers. From `ESK_KAFKA_BROKERS` (comma-separated); by default the single
   * node (`127.0.0.1:9092`), or the three nodes of `scripts/stack.sh start --cluster` when
   * `ESK_STACK_MODE=cluster` (`127.0.0.1:9192` to `9194`).
   */
  brokers: string[]
  /** Redis URL. From `ESK_REDIS_URL`, default `redis://127.0.0.1:6379`. */
  redisUrl: string
}

/**
 * The addresses integration tests use. `npm test` starts the local stack first; point the
 * variables elsewhere to run the same tests against an existing Kafka and Redis.
 */
export function localStack(env: NodeJS.ProcessEnv = process.env): StackAddress {
  const brokers = (env.ESK_KAFKA_BROKERS ?? defaultBrokers(env))
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean)
  return { brokers, redisUrl: env.ESK_REDIS_URL ?? `redis://127.0.0.1:${env.ESK_REDIS_PORT ?? '6379'}` }
}

/** The brokers scripts/stack.sh starts with the same environment. */
function defaultBrokers(env: NodeJS.ProcessEnv): string {
  if (env.ESK_STACK_MODE !== 'cluster') return `127.0.0.1:${env.ESK_KAFKA_PORT ?? '9092'}`
  const first = Number(env.ESK_KAFKA_CLUSTER_PORT ?? '9192')
  return [0, 1, 2].map((n) => `127.0.0.1:${first + n}`).join(',')
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (let pause = 10; ; pause = Math.min(pause * 2, 250)) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, pause))
  }
}
