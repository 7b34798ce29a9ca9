import { run } from './app.js'
import { driverFromArgs } from './driver.js'

// The example a newcomer runs first (`npm run example`). It exits non-zero when anything in the
// story does not happen as printed, so it doubles as a smoke test of a build.
const log = (line: string): void => console.log(line)
try {
  log('esk bank-account example')
  const driver = driverFromArgs(process.argv.slice(2), log)
  log('')
  await run(log, { driver })
} catch (error) {
  console.error(`\nbank-account example FAILED: ${error instanceof Error ? error.message : String(error)}`)
  if (error instanceof Error && error.cause !== undefined) console.error('cause:', error.cause)
  process.exitCode = 1
}
