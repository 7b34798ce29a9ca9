import { run } from './app.js'
import { driverFromArgs, isUsageError, USAGE, type ExampleDriver } from './driver.js'

// The example a newcomer runs first (`npm run example`, `npm run example -- --kafka`). It exits 1
// when anything in the story does not happen as printed, so it doubles as a smoke test of a build,
// and 2 when the command line or the environment asks for something it cannot do.
const log = (line: string): void => console.log(line)

async function main(args: readonly string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    log(USAGE)
    return 0
  }
  let driver: ExampleDriver
  try {
    driver = driverFromArgs(args, process.env)
  } catch (error) {
    if (!isUsageError(error)) throw error
    console.error(`bank-account example: ${error.message}\n\n${USAGE}`)
    return 2
  }
  try {
    log('esk bank-account example')
    log(driver.description)
    log('')
    await run(log, { driver })
    return 0
  } catch (error) {
    console.error(`\nbank-account example FAILED: ${error instanceof Error ? error.message : String(error)}`)
    if (error instanceof Error && error.cause !== undefined) console.error('cause:', error.cause)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
