/**
 * Runs fault scenarios against the local stack and writes a JSON report:
 *
 *   node packages/faults/dist/main.js --profile short --seed 1 --scenarios kill,redis-flush
 *   node packages/faults/dist/main.js --stack cluster --profile short --seed 1      # the leader scenario
 *
 * The stack is `scripts/stack.sh` with the same environment (ESK_KAFKA_PORT, or the cluster's
 * ESK_KAFKA_CLUSTER_PORT, or ESK_KAFKA_BROKERS; ESK_STACK_DIR); each scenario starts its own
 * redis-server. Exits 1 when any check found a violation or a scenario could not run, and 2 when
 * the scenarios cannot run on the stack at all.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, InvalidArgumentError, Option } from 'commander'
import { CHECKS } from './checker.js'
import { VARIANTS, type StackMode, type Variant } from './config.js'
import { defaultScenarios, PROFILES, runScenario, runsOn, SCENARIOS, stackBrokers, type ScenarioReport } from './harness.js'
import { markdownSummary, summaryTable } from './summary.js'

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

const program = new Command()
  .name('esk-faults')
  .description('Runs esk under injected faults and checks the recorded history against the log and the store.')
  .addOption(new Option('--profile <name>', 'sizes of the run').choices(Object.keys(PROFILES)).default('short'))
  .option('--seed <n>', 'seed of every random choice', (v) => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('the seed must be a non-negative integer')
    return n
  }, 1)
  .option('--scenarios <list>', `comma-separated scenarios (default: all): ${Object.keys(SCENARIOS).join(', ')}`, (v) => {
    const names = v.split(',').map((s) => s.trim()).filter(Boolean)
    const unknown = names.filter((n) => !SCENARIOS[n])
    if (unknown.length > 0) throw new InvalidArgumentError(`unknown scenario(s) ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`)
    return names
  })
  .option('--faults <n>', 'faults per scenario (overrides the profile)', (v) => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('faults must be a positive integer')
    return n
  })
  .addOption(
    new Option('--stack <mode>', 'the single node, or the three-node cluster of scripts/stack.sh start --cluster (needed by leader)')
      .choices(['single', 'cluster'])
      .default(process.env.ESK_STACK_MODE === 'cluster' ? 'cluster' : 'single'),
  )
  .addOption(
    new Option('--variant <name>', `run processors broken on purpose, to see the checker fail (never for a real run): ${Object.entries(VARIANTS).map(([k, v]) => `${k} (${v})`).join('; ')}`).choices(
      Object.keys(VARIANTS),
    ),
  )
  .option('--out <dir>', 'where the JSON report goes', resolve(REPO_ROOT, 'reports'))
  .option('--work <dir>', 'where run files (histories, logs) go', resolve(REPO_ROOT, 'reports/faults-runs'))
  .option('--keep-topics', 'keep each run\'s topics on the broker (deleted by default)', false)
  .parse()

const options = program.opts<{
  profile: string
  seed: number
  scenarios?: string[]
  faults?: number
  stack: StackMode
  variant?: Variant
  out: string
  work: string
  keepTopics: boolean
}>()
const profile = { ...PROFILES[options.profile]!, ...(options.faults !== undefined && { faults: options.faults }) }
const stack = options.stack
const scenarios = options.scenarios ?? defaultScenarios(stack)
const misplaced = scenarios.filter((name) => !runsOn(name, stack))
if (misplaced.length > 0) {
  const needCluster = misplaced.filter((name) => SCENARIOS[name]!.stack === 'cluster')
  program.error(
    needCluster.length > 0
      ? `${needCluster.join(', ')} need${needCluster.length === 1 ? 's' : ''} the three-node cluster: start it with 'scripts/stack.sh start --cluster' and add --stack cluster`
      : `${misplaced.join(', ')} restart${misplaced.length === 1 ? 's' : ''} the single node and cannot run on the cluster: use --stack single`,
    { exitCode: 2 },
  )
}
const brokers = stackBrokers(stack)
const stackDir = process.env.ESK_STACK_DIR ?? resolve(REPO_ROOT, '.stack')
mkdirSync(options.out, { recursive: true })
mkdirSync(options.work, { recursive: true })

const started = new Date()
const reports: ScenarioReport[] = []
let aborted: string | undefined
for (const [i, name] of scenarios.entries()) {
  const line = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`)
  line(`scenario ${name} (${i + 1}/${scenarios.length}), profile ${profile.name}, seed ${options.seed}, ${stack} stack${options.variant ? `, BROKEN VARIANT ${options.variant}` : ''}`)
  try {
    reports.push(
      await runScenario(name, profile, options.seed + i, { brokers, stackDir, stack, workDir: options.work, log: line }, {
        deleteTopics: !options.keepTopics,
        ...(options.variant !== undefined && { variant: options.variant }),
      }),
    )
  } catch (error) {
    // The scenario could not start at all (its stack is not running): nothing after it can either.
    aborted = (error as Error).message
    break
  }
}

if (reports.length === 0 && aborted !== undefined) {
  process.stderr.write(`esk-faults: nothing ran: ${aborted}\n`)
  process.exit(2)
}
const file = resolve(options.out, `faults-${profile.name}-seed${options.seed}-${started.toISOString().replace(/[:.]/g, '-')}.json`)
const meta = {
  profile,
  seed: options.seed,
  stack,
  ...(options.variant !== undefined && { variant: options.variant }),
  ...(aborted !== undefined && { aborted }),
  started: started.toISOString(),
  finished: new Date().toISOString(),
  brokers,
}
writeFileSync(file, `${JSON.stringify({ ...meta, checks: CHECKS, scenarios: reports }, null, 2)}\n`)
writeFileSync(file.replace(/\.json$/, '.md'), `${markdownSummary(reports)}\n`)
process.stdout.write(`${summaryTable(reports)}\nreport: ${file} (and .md)\n`)
if (options.variant) process.stdout.write(`the processors ran the broken variant ${options.variant}: violations are expected\n`)
if (aborted !== undefined) {
  process.stderr.write(`esk-faults: stopped before ${scenarios.slice(reports.length).join(', ')}: ${aborted}\n`)
  process.exit(2)
}
const bad = reports.some((r) => r.failure !== undefined || r.crashes.length > 0 || Object.values(r.violations).some((n) => n > 0))
process.exit(bad ? 1 : 0)
