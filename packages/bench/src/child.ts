/** The parent's side of a worker process: fork, typed messages, bounded waits. */
import { fork, type ChildProcess } from 'node:child_process'
import type { WorkerArgs, WorkerCommand } from './worker.js'

const WORKER = new URL('./worker.js', import.meta.url)

/** A forked worker. */
export class Child {
  private readonly inbox: Array<{ type: string; [key: string]: unknown }> = []
  private readonly waiters: Array<{ type: string; resolve: (m: { type: string; [key: string]: unknown }) => void }> = []
  private readonly proc: ChildProcess
  private exited = false
  readonly exit: Promise<number | null>

  constructor(
    readonly name: string,
    args: WorkerArgs,
    nodeFlags: readonly string[] = [],
  ) {
    // No flags of this process (a `--cpu-prof` given to the suite, say) are passed on to workers:
    // only those the run names for all of them.
    this.proc = fork(WORKER, [JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: [...nodeFlags] })
    this.exit = new Promise((resolve) => this.proc.once('exit', (code) => ((this.exited = true), resolve(code))))
    this.proc.on('message', (raw) => {
      const message = raw as { type: string; [key: string]: unknown }
      if (message.type === 'error') process.stderr.write(`${this.name}: ${String(message.message)}\n`)
      const waiter = this.waiters.find((w) => w.type === message.type)
      if (waiter) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        waiter.resolve(message)
      } else {
        this.inbox.push(message)
      }
    })
  }

  get pid(): number {
    return this.proc.pid ?? -1
  }

  send(message: WorkerCommand): void {
    if (!this.exited) this.proc.send(message)
  }

  /** The next message of `type` (also one already received); rejects after `timeoutMs` or on exit. */
  next<T>(type: string, timeoutMs: number): Promise<T> {
    const queued = this.inbox.findIndex((m) => m.type === type)
    if (queued >= 0) return Promise.resolve(this.inbox.splice(queued, 1)[0] as T)
    return new Promise<T>((resolve, reject) => {
      const waiter = { type, resolve: (m: unknown) => (clearTimeout(timer), resolve(m as T)) }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        reject(new Error(`${this.name} sent no "${type}" within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.push(waiter)
      void this.exit.then((code) => {
        if (!this.waiters.includes(waiter)) return
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        clearTimeout(timer)
        reject(new Error(`${this.name} exited (code ${code}) before sending "${type}"`))
      })
    })
  }

  /** Asks it to stop (`stop` or `exit`), and kills it (this pid only) if it has not exited in 20 s. */
  async stop(message: 'stop' | 'exit'): Promise<void> {
    if (this.exited) return
    this.send({ type: message })
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 20_000)
    await this.exit
    clearTimeout(timer)
  }
}
