/**
 * Counts the log lines an application writes while its only broker is down, with the kafkajs log
 * limiter window given (0: off). Not a test (it asserts nothing): it kills the broker whose pid it
 * is given and exits after OUTAGE_MS (default 20000); start the stack again afterwards.
 *
 *   node node_modules/.pnpm/vite-node@*\/node_modules/vite-node/vite-node.mjs \
 *     --config vitest.config.ts packages/kafka/test/measure-log-flood.ts <kafka pid> <window ms>
 */
import { createEsk, type Logger } from '@esk/core'
import { kafkaTransport } from '@esk/kafka'
import { redisStore } from '@esk/redis'
import * as contractModel from '@esk/testing/model'
import { localStack } from '@esk/testing/stack'

const OUTAGE_MS = Number(process.env.OUTAGE_MS ?? 20_000)
const pid = Number(process.argv[2])
const windowMs = Number(process.argv[3] ?? 10_000)
const stack = localStack()
const counts: Record<string, number> = {}
/** Lines by level and the start of their message. */
const count = (level: string) => (message: string) => {
  const key = `${level} ${message.replace(/\d+/g, 'N').slice(0, 70)}`
  counts[key] = (counts[key] ?? 0) + 1
}
const logger: Logger = { debug: count('debug'), info: count('info'), warn: count('warn'), error: count('error') }

async function run(window: number): Promise<Record<string, number>> {
  const prefix = `esk-flood-${Date.now()}.`
  const app = await createEsk({
    aggregates: [contractModel.ContractAccount],
    driver: {
      transport: kafkaTransport({ brokers: stack.brokers, topicPrefix: prefix, logger, logRepeatIntervalMs: window }),
      store: redisStore({ url: stack.redisUrl, keyPrefix: prefix, logger }),
    },
    logger,
    partitions: 2,
    commandTimeoutMs: 2_000,
  })
  await app.repository(contractModel.ContractAccount).save(new contractModel.Open('a', 1))
  for (const k of Object.keys(counts)) delete counts[k]
  process.kill(pid, 'SIGKILL')
  const until = Date.now() + OUTAGE_MS
  // A client that keeps trying, as applications do.
  while (Date.now() < until) await app.repository(contractModel.ContractAccount).save(new contractModel.Open('b', 1)).catch(() => undefined)
  return { ...counts }
}

console.log(JSON.stringify({ windowMs, outageMs: OUTAGE_MS, lines: await run(windowMs) }, null, 1))
process.exit(0)
