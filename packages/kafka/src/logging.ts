import type { Logger } from '@esk/core'
import type { logCreator } from 'kafkajs'
import { logLevel } from './kafkajs.js'

// Protocol errors kafkajs logs at ERROR level although it retries them, and esk expects them:
// a transaction started while the previous one completes, a group rebalancing, a coordinator
// loading after start. Left at ERROR they would drown real failures.
const EXPECTED = [
  /concurrent operation on the same transaction/i,
  /group is rebalancing/i,
  /coordinator is loading/i,
  /not the correct coordinator/i,
]

/** Routes kafkajs's log entries to an esk {@link Logger}, with expected retried errors at debug level. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }) => {
      const { message, ...fields } = log
      const text = `kafkajs ${namespace}: ${message}`
      const detail = { ...fields, error: fields.error } as Record<string, unknown>
      if (level === logLevel.ERROR || level === logLevel.NOTHING) {
        if (EXPECTED.some((p) => p.test(String(fields.error ?? message)))) logger.debug(text, detail)
        else logger.error(text, detail)
      } else if (level === logLevel.WARN) logger.warn(text, detail)
      else if (level === logLevel.INFO) logger.info(text, detail)
      else logger.debug(text, detail)
    }
}
