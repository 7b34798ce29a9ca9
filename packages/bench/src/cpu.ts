/**
 * CPU accounting from /proc (Linux): the machine's busy time, and the time of named processes
 * (the broker, redis-server, this suite's own processes), so every run reports how much CPU the
 * rest of the machine took while it ran.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Linux's USER_HZ, the unit of /proc's CPU times; 100 on every mainstream architecture. */
export const CLOCK_TICKS_PER_SECOND = 100

/** Busy and total ticks summed over every CPU, from the first line of /proc/stat. */
export function parseProcStat(text: string): { busy: number; total: number } {
  const line = text.split('\n').find((l) => l.startsWith('cpu '))
  if (!line) throw new Error('/proc/stat has no "cpu " line')
  const fields = line.trim().split(/\s+/).slice(1).map(Number)
  // user nice system idle iowait irq softirq steal (guest times are already in user and nice).
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = fields
  const busy = user + nice + system + irq + softirq + steal
  return { busy, total: busy + idle + iowait }
}

/** User + system ticks of one process, from its /proc/<pid>/stat (the name may hold spaces). */
export function parsePidStat(text: string): number {
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // After the name: state(0) ... utime is field 14 of the line, so index 11 here; stime 12.
  return Number(rest[11]) + Number(rest[12])
}

function readPid(pid: number): number | undefined {
  try {
    return parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return undefined
  }
}

/** The pids in `<stackDir>/run/*.pid` (the broker and redis-server of scripts/stack.sh), by file name. */
export function stackPids(stackDir: string | undefined): Record<string, number> {
  if (!stackDir) return {}
  const pids: Record<string, number> = {}
  try {
    for (const file of readdirSync(join(stackDir, 'run'))) {
      if (!file.endsWith('.pid')) continue
      const pid = Number(readFileSync(join(stackDir, 'run', file), 'utf8').trim())
      if (Number.isInteger(pid) && pid > 0) pids[file.slice(0, -4)] = pid
    }
  } catch {
    // no stack dir: the brokers are elsewhere, and their CPU is not reported
  }
  return pids
}

/** CPU used during a window, in cores (1.0 = one core busy for the whole window). */
export interface CpuUse {
  seconds: number
  /** Every process on the machine. */
  machine: number
  /** Each named process. */
  processes: Record<string, number>
  /** The machine minus the named processes: what other work took meanwhile. */
  others: number
}

/** Measures a window: `start` before, `stop` after; processes that exit meanwhile count as 0. */
export class CpuWindow {
  private readonly startedAt = performance.now()
  private readonly machine = parseProcStat(readFileSync('/proc/stat', 'utf8'))
  private readonly before = new Map<string, number>()

  constructor(private readonly pids: Record<string, number>) {
    for (const [name, pid] of Object.entries(pids)) {
      const ticks = readPid(pid)
      if (ticks !== undefined) this.before.set(name, ticks)
    }
  }

  /** The use since construction. */
  stop(): CpuUse {
    const seconds = (performance.now() - this.startedAt) / 1000
    const machine = parseProcStat(readFileSync('/proc/stat', 'utf8'))
    const cores = (ticks: number): number => ticks / CLOCK_TICKS_PER_SECOND / seconds
    const processes: Record<string, number> = {}
    let named = 0
    for (const [name, pid] of Object.entries(this.pids)) {
      const before = this.before.get(name)
      const after = readPid(pid)
      const used = before === undefined || after === undefined ? 0 : cores(after - before)
      processes[name] = used
      named += used
    }
    const machineCores = cores(machine.busy - this.machine.busy)
    return { seconds, machine: machineCores, processes, others: Math.max(0, machineCores - named) }
  }
}
