import type { Driver } from '@esk/core'

/**
 * Builds a fresh driver for each application start. Every driver it returns must reach the same
 * data, so that a restarted application sees what an earlier one wrote.
 */
export type DriverFactory = () => Driver | Promise<Driver>

/**
 * Chooses where the example keeps its data, from the command-line arguments. `undefined` means
 * the embedded in-memory driver, which `run` sets up itself. This is the one place a `--kafka`
 * mode (Kafka transport and Redis store) plugs in: return a factory of those drivers here.
 */
export function driverFromArgs(args: readonly string[], log: (line: string) => void): DriverFactory | undefined {
  const unknown = args.filter((arg) => arg !== '--kafka')
  if (unknown.length > 0) {
    throw new Error(`unknown argument ${unknown.join(' ')}; usage: main.js [--kafka]`)
  }
  if (args.includes('--kafka')) {
    throw new Error('--kafka is not wired into this example yet; run it without arguments to use the embedded driver')
  }
  log('Driver: embedded (in memory; the data lives as long as this process)')
  return undefined
}
