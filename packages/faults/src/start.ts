import { ErrorCode, hasCode } from '@esk/core'

/** Calls `start` until it does not fail with ESK_UNAVAILABLE, or `ms` have passed. */
export async function startWithin<T>(ms: number, start: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await start()
    } catch (error) {
      if (!hasCode(error, ErrorCode.Unavailable) || Date.now() > deadline) throw error
      process.stderr.write(`createEsk failed, trying again: ${(error as Error).message}\n`)
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  }
}
