/**
 * Runs fault scenarios against the local stack and writes a JSON report:
 *
 *   node packages/faults/dist/main.js --profile short --seed 1 --scenarios kill,redis-flush
 *
 * The stack is `scripts/stack.sh` with the same environment (ESK_KAFKA_PORT or ESK_KAFKA_BROKERS,
 * ESK_STACK_DIR); each scenario starts its own redis-server. Exits 1 when any check found a
 * violation or a scenario could not run.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, InvalidArgumentError, Option } from 'commander'
import { CHECKS } from './checker.js'
import { PROFILES, runScenario, SCENARIOS, type ScenarioReport } from './harness.js'
import { summaryTable } from './summary.js'

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
  .option('--out <dir>', 'where the JSON report goes', resolve(REPO_ROOT, 'reports'))
  .option('--work <dir>', 'where run files (histories, logs) go', resolve(REPO_ROOT, 'reports/faults-runs'))
  .option('--keep-topics', 'keep each run\'s topics on the broker (deleted by default)', false)
  .parse()

const options = program.opts<{ profile: string; seed: number; scenarios?: string[]; faults?: number; out: string; work: string; keepTopics: boolean }>()
const profile = { ...PROFILES[options.profile]!, ...(options.faults !== undefined && { faults: options.faults }) }
const scenarios = options.scenarios ?? Object.keys(SCENARIOS)
const brokers = (process.env.ESK_KAFKA_BROKERS ?? `127.0.0.1:${process.env.ESK_KAFKA_PORT ?? '9092'}`).split(',').map((b) => b.trim()).filter(Boolean)
const stackDir = process.env.ESK_STACK_DIR ?? resolve(REPO_ROOT, '.stack')
mkdirSync(options.out, { recursive: true })
mkdirSync(options.work, { recursive: true })

const started = new Date()
const reports: ScenarioReport[] = []
for (const [i, name] of scenarios.entries()) {
  const line = (text: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`)
  line(`scenario ${name} (${i + 1}/${scenarios.length}), profile ${profile.name}, seed ${options.seed}`)
  reports.push(await runScenario(name, profile, options.seed + i, { brokers, stackDir, workDir: options.work, log: line }, { deleteTopics: !options.keepTopics }))
}

const file = resolve(options.out, `faults-${profile.name}-seed${options.seed}-${started.toISOString().replace(/[:.]/g, '-')}.json`)
writeFileSync(file, `${JSON.stringify({ profile, seed: options.seed, started: started.toISOString(), finished: new Date().toISOString(), brokers, checks: CHECKS, scenarios: reports }, null, 2)}\n`)
process.stdout.write(`${summaryTable(reports)}\nreport: ${file}\n`)
const bad = reports.some((r) => r.failure !== undefined || Object.values(r.violations).some((n) => n > 0))
process.exit(bad ? 1 : 0)
