/** The suite's command line: what `npm run bench -- ...` accepts, checked before anything starts. */
import { parseArgs } from 'node:util'
import { full, quick, workloads, type Profile } from './profile.js'
import type { SystemName } from './systems.js'

export const STAGES = ['warmup', 'throughput', 'openloop', 'workloads', 'memory', 'recovery', 'projections']
const SYSTEMS: readonly SystemName[] = ['esk', 'tx', 'plain']

export const USAGE = `usage: npm run bench -- [options]

  --profile quick|full     sizes and sweeps (default quick; full takes hours)
  --only STAGES            comma-separated: ${STAGES.join(',')}
  --systems LIST           comma-separated: ${SYSTEMS.join(',')}
  --repetitions N          windows per configuration
  --measure-s S            measured seconds per window
  --aggregates N           aggregates created before the update workloads
  --partitions LIST        partition counts, e.g. 1,4,8
  --processors LIST        processor processes, e.g. 1,2
  --in-flight LIST         calls in flight, e.g. 128,1024
  --recovery-events N      events in the recovery stage
  --esk-held N             esk's snapshotCacheSize (default: every aggregate of the workload)
  --cpu-prof               profile processors and clients during their measuring windows
  --node-flags FLAGS       Node flags for every processor and client, of every system alike
                           (space-separated), e.g. --node-flags=--max-semi-space-size=64
  --out DIR                where reports go (default reports)
  --docs no                leave docs/benchmarks.md alone
  --from REPORT            only regenerate docs/benchmarks.md from a report
  --help                   this text

See docs/benchmarks.md for what each stage measures.`

/** A command line the suite cannot run: the message says what was wrong. */
export class UsageError extends Error {}

/** What a run is asked to do. */
export interface BenchOptions {
  /** Set when the run only regenerates the docs from this report. */
  from?: string
  profile: Profile
  stages: Set<string>
  out: string
  docs: boolean
  cpuProf: boolean
  /** Node flags given to every worker process. */
  nodeFlags: string[]
  /** esk's `snapshotCacheSize` when given. */
  eskHeld?: number
  help: boolean
}

/** Reads the command line; throws {@link UsageError} for anything it cannot run. */
export function parseCommandLine(argv: string[]): BenchOptions {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        profile: { type: 'string', default: 'quick' },
        only: { type: 'string' },
        systems: { type: 'string' },
        repetitions: { type: 'string' },
        'measure-s': { type: 'string' },
        aggregates: { type: 'string' },
        'esk-held': { type: 'string' },
        partitions: { type: 'string' },
        processors: { type: 'string' },
        'in-flight': { type: 'string' },
        'recovery-events': { type: 'string' },
        out: { type: 'string', default: 'reports' },
        docs: { type: 'string', default: 'yes' },
        from: { type: 'string' },
        'cpu-prof': { type: 'boolean', default: false },
        'node-flags': { type: 'string', default: '' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }))
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const base = values.profile === 'full' ? full : values.profile === 'quick' ? quick : undefined
  if (!base) throw new UsageError(`--profile is quick or full, got '${values.profile}'`)
  if (values.docs !== 'yes' && values.docs !== 'no') throw new UsageError(`--docs is yes or no, got '${values.docs}'`)
  const profile: Profile = { ...base }
  if (values.systems !== undefined) profile.systems = names('--systems', values.systems, SYSTEMS)
  if (values.repetitions !== undefined) {
    profile.repetitions = profile.workloadRepetitions = profile.openLoopRepetitions = count('--repetitions', values.repetitions)
  }
  if (values['measure-s'] !== undefined) profile.measureS = count('--measure-s', values['measure-s'])
  if (values.partitions !== undefined) {
    profile.partitions = counts('--partitions', values.partitions)
    // The profile's open-loop partition counts among those asked for, else the first one asked for.
    const kept = profile.openLoopPartitions.filter((p) => profile.partitions.includes(p))
    profile.openLoopPartitions = kept.length > 0 ? kept : profile.partitions.slice(0, 1)
    if (!profile.partitions.includes(profile.workloadPartitions)) profile.workloadPartitions = profile.partitions[0]!
  }
  if (values.processors !== undefined) profile.processors = counts('--processors', values.processors)
  if (values['in-flight'] !== undefined) profile.inFlight = counts('--in-flight', values['in-flight'])
  if (values['recovery-events'] !== undefined) profile.recoveryEvents = count('--recovery-events', values['recovery-events'])
  if (values.aggregates !== undefined) {
    profile.aggregates = count('--aggregates', values.aggregates)
    // The workloads go over the aggregates the profile creates.
    profile.workloads = workloads(profile.aggregates)
  }
  const stages = new Set(values.only !== undefined ? names('--only', values.only, STAGES) : STAGES)
  if (profile.projectionEvents === 0) stages.delete('projections')
  if (profile.workloads.length === 0) stages.delete('workloads')
  return {
    ...(values.from !== undefined && { from: values.from }),
    profile,
    stages,
    out: values.out!,
    docs: values.docs === 'yes',
    cpuProf: values['cpu-prof']!,
    nodeFlags: nodeFlags(values['node-flags']!),
    ...(values['esk-held'] !== undefined && { eskHeld: count('--esk-held', values['esk-held'], 0) }),
    help: values.help!,
  }
}

/** Flags for `node` itself, each starting with `--`. */
function nodeFlags(text: string): string[] {
  const flags = text.split(/\s+/).filter((flag) => flag !== '')
  const bad = flags.find((flag) => !flag.startsWith('--'))
  if (bad !== undefined) throw new UsageError(`--node-flags takes flags of node such as --max-semi-space-size=64, got '${bad}'`)
  return flags
}

/** A whole number of at least `min`. */
function count(option: string, text: string, min = 1): number {
  const value = Number(text)
  if (text.trim() === '' || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`${option} takes a whole number of at least ${min}, got '${text}'`)
  }
  return value
}

function counts(option: string, text: string): number[] {
  return text.split(',').map((part) => count(option, part))
}

function names<T extends string>(option: string, text: string, allowed: readonly T[]): T[] {
  return text.split(',').map((name) => {
    if (!allowed.includes(name as T)) throw new UsageError(`${option} takes ${allowed.join(',')}; got '${name}'`)
    return name as T
  })
}
