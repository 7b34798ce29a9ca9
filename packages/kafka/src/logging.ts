import type { Logger } from '@esk/core'
import type { logCreator } from 'kafkajs'
import { logLevel } from './kafkajs.js'

// Protocol errors kafkajs logs at ERROR level although it retries them, and esk expects them:
// a transaction started while the previous one completes, a group rebalancing, a coordinator
// loading after start. Left at ERROR they would drown real failures.
const EXPECTED = [
  /concurrent operation on the same transaction/i,
  // Warned for any idempotent producer with bounded retries. esk's transactional writers bound
  // them on purpose: a send that gives up aborts its whole transaction, so nothing half-written
  // becomes visible, and the batch is delivered again.
  /Limiting retries for the idempotent producer/i,
  /group is rebalancing/i,
  /coordinator is loading/i,
  /coordinator is not available/i,
  /not the correct coordinator/i,
]

/** Routes kafkajs's log entries to an esk {@link Logger}, with expected retried errors at debug level. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }) => {
      const { message, ...fields } = log
      const text = namespace ? `kafkajs ${namespace}: ${message}` : `kafkajs: ${message}`
      const detail = { ...fields, error: fields.error } as Record<string, unknown>
      const expected = EXPECTED.some((p) => p.test(String(fields.error ?? message)))
      if (expected) logger.debug(text, detail)
      else if (level === logLevel.ERROR || level === logLevel.NOTHING) logger.error(text, detail)
      else if (level === logLevel.WARN) logger.warn(text, detail)
      else if (level === logLevel.INFO) logger.info(text, detail)
      else logger.debug(text, detail)
    }
}
