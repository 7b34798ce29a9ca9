import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'

/** Sleeps `ms`. */
export const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A child process this harness started, with its stdout lines and its exit. Only pids of these
 * (and of the stack's broker, started by this user's stack script) ever receive a signal.
 */
export class Child {
  readonly lines: string[] = []
  readonly exited: Promise<number | null>
  private exitCode: number | null | undefined
  private readonly waiters: Array<{ pattern: RegExp; resolve: (ok: boolean) => void }> = []
  stopped = false

  constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? null : -1)
        for (const w of this.waiters.splice(0)) w.resolve(false)
        resolve(code)
      })
    })
    if (proc.stdout) {
      createInterface({ input: proc.stdout }).on('line', (line) => {
        this.lines.push(line)
        for (const w of [...this.waiters]) {
          if (w.pattern.test(line)) {
            this.waiters.splice(this.waiters.indexOf(w), 1)
            w.resolve(true)
          }
        }
      })
    }
  }

  get pid(): number {
    return this.proc.pid ?? -1
  }

  get alive(): boolean {
    return this.exitCode === undefined
  }

  /** The exit code once it has exited with one; null when a signal ended it, undefined while running. */
  get code(): number | null | undefined {
    return this.exitCode
  }

  /** Waits for a stdout line matching `pattern` (also one already printed); false on exit or timeout. */
  waitLine(pattern: RegExp, timeoutMs: number): Promise<boolean> {
    if (this.lines.some((l) => pattern.test(l))) return Promise.resolve(true)
    if (!this.alive) return Promise.resolve(false)
    return new Promise((resolve) => {
      const waiter = { pattern, resolve: (ok: boolean) => (clearTimeout(timer), resolve(ok)) }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        resolve(false)
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** Sends a signal if the process is still running. */
  signal(signal: NodeJS.Signals): void {
    if (!this.alive) return
    try {
      process.kill(this.pid, signal)
    } catch {
      // exited meanwhile
    }
    if (signal === 'SIGSTOP') this.stopped = true
    if (signal === 'SIGCONT') this.stopped = false
  }

  /** SIGTERM (after SIGCONT), then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.alive) return
    this.signal('SIGCONT')
    this.signal('SIGTERM')
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(timer)
  }
}

/** Starts `node script ...args` with stdout piped and stderr appended to `logPath`. */
export function spawnNode(name: string, script: string, args: string[], logPath: string, env: NodeJS.ProcessEnv = {}): Child {
  const log = openSync(logPath, 'a')
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', log], env: { ...process.env, ...env } })
  closeSync(log)
  return new Child(name, proc)
}

/**
 * A redis-server of the run's own, on a unix socket in the run's directory, without persistence:
 * killed with -9 and started again, it comes back empty, as a cache server without persistence does.
 */
export class OwnRedis {
  private child: Child | undefined
  readonly socket: string

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true })
    this.socket = `${dir}/redis.sock`
  }

  get pid(): number | undefined {
    return this.child?.alive ? this.child.pid : undefined
  }

  /** Starts the server and waits (bounded) until it answers PING. */
  async start(): Promise<void> {
    if (this.child?.alive) return
    const log = openSync(`${this.dir}/redis.out`, 'a')
    const proc = spawn(
      process.env.ESK_REDIS_SERVER ?? 'redis-server',
      ['--port', '0', '--unixsocket', this.socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      { stdio: ['ignore', log, log] },
    )
    closeSync(log)
    this.child = new Child('redis-server', proc)
    const deadline = Date.now() + 15_000
    while (Date.now() < deadline) {
      if (!this.child.alive) throw new Error(`redis-server exited at start; see ${this.dir}/redis.out`)
      if (existsSync(this.socket) && (await this.ping())) return
      await pause(50)
    }
    throw new Error(`redis-server did not answer on ${this.socket} within 15 s`)
  }

  /** kill -9; the data is gone. */
  async kill(): Promise<void> {
    if (!this.child?.alive) return
    this.child.signal('SIGKILL')
    await this.child.exited
  }

  /** Stops it (SIGTERM). */
  async stop(): Promise<void> {
    await this.child?.stop(5_000)
  }

  private async ping(): Promise<boolean> {
    const client = new Redis({ path: this.socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    client.on('error', () => undefined)
    try {
      await client.connect()
      return (await client.ping()) === 'PONG'
    } catch {
      return false
    } finally {
      client.disconnect()
    }
  }
}

const run = promisify(execFile)

/**
 * The stack's broker (`scripts/stack.sh`, with this user's `ESK_STACK_DIR`): killed by the pid the
 * script recorded, after checking that pid is still that broker, and started again by the script.
 */
export class StackBroker {
  constructor(
    private readonly repoRoot: string,
    private readonly stackDir: string,
  ) {}

  /** The broker's pid if the script's pid file names a running Kafka broker. */
  pid(): number | undefined {
    const file = `${this.stackDir}/run/kafka.pid`
    if (!existsSync(file)) return undefined
    const pid = Number(readFileSync(file, 'utf8').trim())
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return cmdline.includes('kafka.Kafka') ? pid : undefined
    } catch {
      return undefined
    }
  }

  /** Sends `signal` to the broker and waits (bounded) for it to exit. */
  async kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const pid = this.pid()
    if (pid === undefined) return
    process.kill(pid, signal)
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0)
      } catch {
        return
      }
      await pause(100)
    }
    process.kill(pid, 'SIGKILL')
  }

  /** Starts it with the stack script (returns once it answers). */
  async start(): Promise<void> {
    await run('bash', [`${this.repoRoot}/scripts/stack.sh`, 'start'], { env: process.env, timeout: 180_000 })
  }
}

/**
 * The three-node cluster of `scripts/stack.sh start --cluster` (with this user's `ESK_STACK_DIR`
 * and cluster ports): nodes are killed and started by index through the script, which checks that
 * the pid it recorded is still that node.
 */
export class StackCluster {
  /** Node indices, which are also the brokers' node ids. */
  static readonly NODES = [1, 2, 3] as const

  constructor(
    private readonly repoRoot: string,
    private readonly stackDir: string,
  ) {}

  /** Node `n`'s pid if the script's pid file names that running node. */
  pid(n: number): number | undefined {
    const file = `${this.stackDir}/run/kafka-node-${n}.pid`
    if (!existsSync(file)) return undefined
    const pid = Number(readFileSync(file, 'utf8').trim())
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      return cmdline.includes('kafka.Kafka') && cmdline.includes(`node-${n}.properties`) ? pid : undefined
    } catch {
      return undefined
    }
  }

  /** Indices of the nodes running now. */
  running(): number[] {
    return StackCluster.NODES.filter((n) => this.pid(n) !== undefined)
  }

  /** kill -9 of node `n` (no controlled shutdown); returns once it is gone. */
  async kill(n: number): Promise<void> {
    await run('bash', [`${this.repoRoot}/scripts/stack.sh`, 'kill-node', String(n)], { env: process.env, timeout: 60_000 })
  }

  /** Starts node `n`; returns once it is back in the cluster's metadata. */
  async start(n: number): Promise<void> {
    await run('bash', [`${this.repoRoot}/scripts/stack.sh`, 'start-node', String(n)], { env: process.env, timeout: 180_000 })
  }
}
