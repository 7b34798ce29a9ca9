/** Where the local Kafka and Redis of `scripts/stack.sh` (or an existing deployment) answer. */
export interface StackAddress {
  /** Kafka bootstrap brokers. From `ESK_KAFKA_BROKERS` (comma-separated), default `127.0.0.1:9092`. */
  brokers: string[]
  /** Redis URL. From `ESK_REDIS_URL`, default `redis://127.0.0.1:6379`. */
  redisUrl: string
}

/**
 * The addresses integration tests use. `npm test` starts the local stack first; point the
 * variables elsewhere to run the same tests against an existing Kafka and Redis.
 */
export function localStack(env: NodeJS.ProcessEnv = process.env): StackAddress {
  const brokers = (env.ESK_KAFKA_BROKERS ?? `127.0.0.1:${env.ESK_KAFKA_PORT ?? '9092'}`)
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean)
  return { brokers, redisUrl: env.ESK_REDIS_URL ?? `redis://127.0.0.1:${env.ESK_REDIS_PORT ?? '6379'}` }
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
