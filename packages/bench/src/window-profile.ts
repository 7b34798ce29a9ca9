/**
 * CPU profiles of a worker's measuring windows only, taken through the inspector: the aggregates'
 * creation and the gaps between windows are left out, so a profile describes the load it is
 * reported beside. Each window writes `<base>-w<n>.cpuprofile` (the format `--cpu-prof` writes).
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'

/** The sampling interval, µs: the one `--cpu-prof` uses by default. */
const SAMPLING_INTERVAL_US = 1000

export class WindowProfiler {
  private session: Session | undefined
  private windows = 0
  private running = false

  constructor(private readonly base: string) {}

  /** Starts profiling a window (a window already being profiled goes on). */
  async start(): Promise<void> {
    if (this.running) return
    if (!this.session) {
      const session = new Session()
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: SAMPLING_INTERVAL_US })
      this.session = session
    }
    await this.session.post('Profiler.start')
    this.running = true
  }

  /** Ends the window and writes its profile; does nothing when no window is being profiled. */
  async stop(): Promise<void> {
    if (!this.session || !this.running) return
    this.running = false
    const { profile } = await this.session.post('Profiler.stop')
    await writeFile(`${this.base}-w${++this.windows}.cpuprofile`, JSON.stringify(profile))
  }
}

/** The window profiles written for `base`, in window order. */
export function windowProfileFiles(files: readonly string[], base: string): string[] {
  const name = base.split('/').pop()!
  const dir = base.slice(0, base.length - name.length)
  const pattern = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-w(\\d+)\\.cpuprofile$`)
  return files
    .map((file) => ({ file, match: pattern.exec(file) }))
    .filter((f) => f.match !== null)
    .sort((a, b) => Number(a.match![1]) - Number(b.match![1]))
    .map((f) => dir + f.file)
}
