import { describe, expect, it } from 'vitest'
import { STAGES, UsageError, parseCommandLine } from '../src/cli.js'
import { full, quick } from '../src/profile.js'

describe('the bench command line', () => {
  it('runs the quick profile and every stage when given nothing', () => {
    const options = parseCommandLine([])
    expect(options.profile).toEqual(quick)
    expect([...options.stages]).toEqual(STAGES)
    expect(options).toMatchObject({ out: 'reports', docs: true, cpuProf: false, nodeFlags: [], help: false })
    expect(options.eskHeld).toBeUndefined()
    expect(options.from).toBeUndefined()
  })

  it('narrows a profile to the sweeps, systems and stages asked for', () => {
    const options = parseCommandLine(
      ['--profile', 'full', '--only', 'warmup,recovery', '--systems', 'esk,tx', '--partitions', '4', '--in-flight', '1024',
        '--repetitions', '2', '--recovery-events', '1000000', '--aggregates', '500', '--esk-held', '0', '--docs', 'no', '--cpu-prof',
        '--node-flags=--max-semi-space-size=64  --trace-gc'],
    )
    expect([...options.stages]).toEqual(['warmup', 'recovery'])
    expect(options.profile).toMatchObject({
      name: 'full',
      systems: ['esk', 'tx'],
      partitions: [4],
      openLoopPartitions: [4],
      workloadPartitions: 4,
      inFlight: [1024],
      processors: full.processors,
      repetitions: 2,
      workloadRepetitions: 2,
      recoveryEvents: 1_000_000,
      aggregates: 500,
    })
    expect(options.profile.workloads.every((w) => w.aggregates === 500)).toBe(true)
    expect(options).toMatchObject({ docs: false, cpuProf: true, eskHeld: 0, nodeFlags: ['--max-semi-space-size=64', '--trace-gc'] })
    // The profiles themselves are left as they are.
    expect(full.partitions).toEqual([1, 4, 8])
  })

  it('refuses what it cannot run, saying which option and what it takes', () => {
    // A bug this parser fixed: before it, `--partitions 1,x` ran with NaN partitions, and an
    // unknown option or `--help` ended in node's ERR_PARSE_ARGS_UNKNOWN_OPTION stack trace.
    const refused = (argv: string[]): string => {
      try {
        parseCommandLine(argv)
      } catch (error) {
        expect(error).toBeInstanceOf(UsageError)
        return (error as Error).message
      }
      throw new Error(`${argv.join(' ')} was accepted`)
    }
    expect(refused(['--help-me'])).toMatch(/--help-me/)
    expect(refused(['--profile', 'huge'])).toBe(`--profile is quick or full, got 'huge'`)
    expect(refused(['--only', 'throughput,speed'])).toMatch(/^--only takes warmup,.*; got 'speed'$/)
    expect(refused(['--systems', 'esk,kafka'])).toBe(`--systems takes esk,tx,plain; got 'kafka'`)
    expect(refused(['--partitions', '1,x'])).toBe(`--partitions takes a whole number of at least 1, got 'x'`)
    expect(refused(['--partitions', '1,,4'])).toMatch(/got ''$/)
    expect(refused(['--repetitions', '0'])).toMatch(/at least 1, got '0'/)
    expect(refused(['--esk-held=-1'])).toMatch(/at least 0, got '-1'/)
    expect(refused(['--docs', 'maybe'])).toBe(`--docs is yes or no, got 'maybe'`)
    expect(refused(['--node-flags', 'max-semi-space-size=64'])).toBe(`--node-flags takes flags of node such as --max-semi-space-size=64, got 'max-semi-space-size=64'`)
    expect(refused(['--measure-s', '2.5'])).toMatch(/whole number/)
  })

  it('asks for the usage with --help or -h', () => {
    expect(parseCommandLine(['--help']).help).toBe(true)
    expect(parseCommandLine(['-h']).help).toBe(true)
  })
})
