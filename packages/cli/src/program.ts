import { ErrorCode, hasCode } from '@esk/core'
import { messageOf } from '@esk/core/driver'
import cliProgress from 'cli-progress'
import { Command, CommanderError, InvalidArgumentError as CommanderArgumentError, Option } from 'commander'
import { inspect } from './commands/inspect.js'
import { listDeadLetters, replayDeadLetter, showDeadLetter } from './commands/dlq.js'
import { outcome } from './commands/outcome.js'
import { projectionRebuild, projectionReset } from './commands/projection.js'
import { rebuild } from './commands/rebuild.js'
import { status } from './commands/status.js'
import { topicsCheck } from './commands/topics.js'
import { loadConfig, resolveConfig, type ConfigFlags, type EskCliConfig } from './config.js'
import { CliContext } from './context.js'
import {
  formatDeadLetter,
  formatDeadLetters,
  formatInspect,
  formatOutcome,
  formatProjection,
  formatRebuild,
  formatReplay,
  formatStatus,
  formatTopics,
} from './format.js'

/** Exit codes of the `esk` command. */
export const ExitCode = {
  /** Done; what was checked is fine. */
  Ok: 0,
  /** Done, and what was checked is wrong: `topics check` found an error, `inspect` a disagreement, `outcome` no trace. */
  CheckFailed: 1,
  /** The command line or the configuration is wrong (unknown aggregate, read model, entry; bad flag). */
  Usage: 2,
  /** The work failed: Kafka or Redis unreachable, a timeout, a refusal. */
  Failed: 3,
} as const

/** Where the command writes, and what it reads its configuration from. */
export interface CliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  cwd: string
  env: NodeJS.ProcessEnv
  /** Show progress bars (on stderr). Default: when stderr is a terminal. */
  progress?: boolean
  /** A configuration object to use instead of a file (flags still apply). */
  config?: EskCliConfig
}

/** What a command's action hands back: the data (printed as JSON with --json), its text, and the exit code. */
interface Result {
  data: unknown
  text: string
  code: number
}

type Global = ConfigFlags & { json?: boolean }

/**
 * Runs the `esk` command line (`argv` without `node` and the script) and returns its exit code.
 * Every command prints text, or JSON with `--json`; errors go to stderr (as JSON with `--json`).
 */
export async function run(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const out: CliIo = {
    stdout: io.stdout ?? ((t) => void process.stdout.write(t)),
    stderr: io.stderr ?? ((t) => void process.stderr.write(t)),
    cwd: io.cwd ?? process.cwd(),
    env: io.env ?? process.env,
    progress: io.progress ?? Boolean(process.stderr.isTTY),
  }
  let result: Result | undefined
  let context: CliContext | undefined
  const program = new Command('esk')
  const open = async (command: Command): Promise<{ context: CliContext; json: boolean }> => {
    const flags = command.optsWithGlobals<Global>()
    context = new CliContext(io.config ? resolveConfig(io.config, flags, out.env) : await loadConfig(flags, out.cwd, out.env))
    return { context, json: Boolean(flags.json) }
  }
  const action =
    <A extends unknown[]>(work: (ctx: CliContext, json: boolean, ...args: A) => Promise<Result>) =>
    async (...args: unknown[]): Promise<void> => {
      const command = args[args.length - 1] as Command
      const { context: ctx, json } = await open(command)
      result = await work(ctx, json, ...(args.slice(0, -1) as A))
    }

  program
    .description('Operate an esk application: status, inspection, rebuilds, dead letters, topic checks.')
    .option('-c, --config <file>', 'configuration file (default: esk.config.mjs, .js or .json in the working directory)')
    .option('--brokers <list>', 'Kafka bootstrap brokers, comma-separated (default: config, ESK_KAFKA_BROKERS, 127.0.0.1:9092)')
    .option('--redis <url>', 'Redis URL (default: config, ESK_REDIS_URL, redis://127.0.0.1:6379)')
    .option('--topic-prefix <prefix>', 'prefix of topics and groups (default: config, esk.)')
    .option('--key-prefix <prefix>', 'prefix of Redis keys (default: config, esk:)')
    .option('--json', 'print JSON instead of text')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: out.stdout, writeErr: out.stderr })

  program
    .command('status')
    .description('partitions of each aggregate type (owner in Redis, ready, checkpoint, lag) and read models')
    .argument('[aggregate]', 'only this aggregate type')
    .action(
      action(async (ctx, _json, aggregate?: string) => {
        const report = await status(ctx, aggregate !== undefined ? { aggregate } : {})
        return { data: report, text: formatStatus(report), code: ExitCode.Ok }
      }),
    )

  program
    .command('inspect')
    .description("an aggregate's events from the log, its snapshot in Redis, and whether they agree")
    .argument('<aggregate>', 'aggregate type')
    .argument('<id>', 'aggregate id')
    .action(
      action(async (ctx, _json, aggregate: string, id: string) => {
        const report = await inspect(ctx, aggregate, id)
        return { data: report, text: formatInspect(report), code: report.verdict === 'disagree' ? ExitCode.CheckFailed : ExitCode.Ok }
      }),
    )

  program
    .command('rebuild')
    .description("rebuild the snapshots of one partition, or of every partition, of an aggregate type from its event log")
    .argument('<aggregate>', 'aggregate type')
    .addOption(new Option('-p, --partition <n>', 'only this partition').argParser(integer))
    .addOption(new Option('--timeout <seconds>', 'longest to follow a processor that took the partition back').argParser(integer).default(600))
    .action(
      action(async (ctx, _json, aggregate: string, options: { partition?: number; timeout: number }) => {
        const bar = progressBar(out, 'offsets')
        try {
          const report = await rebuild(ctx, aggregate, {
            ...(options.partition !== undefined && { partition: options.partition }),
            timeoutMs: options.timeout * 1000,
            onProgress: (p) => bar?.update(`${aggregate} partition ${p.partition}`, p.overall.done, p.overall.total),
          })
          bar?.stop()
          return { data: report, text: formatRebuild(report), code: ExitCode.Ok }
        } finally {
          bar?.stop()
        }
      }),
    )

  const projection = program.command('projection').description('reset or rebuild a read model')
  projection
    .command('reset')
    .description('drop a read model and start it again from the first event (readers see a partial view meanwhile)')
    .argument('<name>', 'read model name')
    .action(
      action(async (ctx, _json, name: string) => {
        const report = await projectionReset(ctx, name)
        return { data: report, text: formatProjection(report), code: ExitCode.Ok }
      }),
    )
  projection
    .command('rebuild')
    .description('build a new generation of a read model beside the live one and swap it in once caught up')
    .argument('<name>', 'read model name')
    .addOption(new Option('--timeout <seconds>', 'longest the rebuild may take').argParser(integer).default(3600))
    .action(
      action(async (ctx, _json, name: string, options: { timeout: number }) => {
        const bar = progressBar(out, 'events')
        try {
          const report = await projectionRebuild(ctx, name, {
            timeoutMs: options.timeout * 1000,
            onProgress: (p) => bar?.update(name, p.events, p.events + p.lag),
          })
          bar?.stop()
          return { data: report, text: formatProjection(report), code: ExitCode.Ok }
        } finally {
          bar?.stop()
        }
      }),
    )

  const dlq = program.command('dlq').description('dead letters: commands refused as poison')
  dlq
    .command('list')
    .description('list dead letters')
    .argument('[aggregate]', 'only this aggregate type')
    .action(
      action(async (ctx, _json, aggregate?: string) => {
        const entries = await listDeadLetters(ctx, aggregate)
        return { data: entries, text: formatDeadLetters(entries), code: ExitCode.Ok }
      }),
    )
  dlq
    .command('show')
    .description('show one dead letter in full')
    .argument('<aggregate>', 'aggregate type')
    .argument('<entry>', '<partition>:<offset>, as dlq list shows it')
    .action(
      action(async (ctx, _json, aggregate: string, entry: string) => {
        const detail = await showDeadLetter(ctx, aggregate, entry)
        return { data: detail, text: formatDeadLetter(detail), code: ExitCode.Ok }
      }),
    )
  dlq
    .command('replay')
    .description('send a dead-lettered command again, with a new command id')
    .argument('<aggregate>', 'aggregate type')
    .argument('<entry>', '<partition>:<offset>, as dlq list shows it')
    .option('--wait', 'wait for its outcome')
    .addOption(new Option('--timeout <seconds>', 'longest to wait for the outcome').argParser(integer).default(30))
    .action(
      action(async (ctx, _json, aggregate: string, entry: string, options: { wait?: boolean; timeout: number }) => {
        const report = await replayDeadLetter(ctx, aggregate, entry, { wait: Boolean(options.wait), timeoutMs: options.timeout * 1000 })
        return { data: report, text: formatReplay(report), code: ExitCode.Ok }
      }),
    )

  program
    .command('outcome')
    .description('what happened to a command: accepted, refused, dead-lettered, or no trace')
    .argument('<aggregate>', 'aggregate type')
    .argument('<id>', 'aggregate id')
    .argument('<commandId>', 'command id')
    .action(
      action(async (ctx, _json, aggregate: string, id: string, commandId: string) => {
        const report = await outcome(ctx, aggregate, id, commandId)
        return { data: report, text: formatOutcome(report), code: report.found ? ExitCode.Ok : ExitCode.CheckFailed }
      }),
    )

  program
    .command('topics')
    .description('topic checks')
    .command('check')
    .description('partition counts, retention and compaction of the command, event and dead-letter topics')
    .argument('[aggregate]', 'only this aggregate type')
    .action(
      action(async (ctx, _json, aggregate?: string) => {
        const report = await topicsCheck(ctx, aggregate)
        return { data: report, text: formatTopics(report), code: report.ok ? ExitCode.Ok : ExitCode.CheckFailed }
      }),
    )

  const json = argv.includes('--json')
  try {
    await program.parseAsync(argv, { from: 'user' })
    if (!result) return ExitCode.Ok
    out.stdout(json ? `${JSON.stringify(result.data, null, 2)}\n` : `${result.text}\n`)
    return result.code
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version print and exit 0; anything else commander refused is a usage error.
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage
    }
    const code = hasCode(error, ErrorCode.Configuration) || hasCode(error, ErrorCode.InvalidArgument) ? ExitCode.Usage : ExitCode.Failed
    const errorCode = (error as { code?: unknown }).code
    if (json) out.stderr(`${JSON.stringify({ error: { code: typeof errorCode === 'string' ? errorCode : null, message: messageOf(error) } })}\n`)
    else out.stderr(`esk: ${messageOf(error)}\n`)
    return code
  } finally {
    await (context as CliContext | undefined)?.close()
  }
}

function integer(value: string): number {
  const number = Number(value)
  if (!Number.isSafeInteger(number) || number < 0) throw new CommanderArgumentError('expected a non-negative integer')
  return number
}

/** A progress bar on stderr, or none when progress is off. */
function progressBar(io: CliIo, unit: string): { update(label: string, value: number, total: number): void; stop(): void } | undefined {
  if (!io.progress) return undefined
  const bar = new cliProgress.SingleBar(
    { format: `{label} [{bar}] {percentage}% {value}/{total} ${unit}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  )
  let started = false
  let stopped = false
  return {
    update(label, value, total) {
      if (stopped) return
      // An empty log is done at once: show it full, not at 0 of 1.
      if (total === 0) value = total = 1
      if (!started) {
        bar.start(total, value, { label })
        started = true
      } else {
        bar.setTotal(total)
        bar.update(value, { label })
      }
    },
    stop() {
      if (started && !stopped) bar.stop()
      stopped = true
    },
  }
}
