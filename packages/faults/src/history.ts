import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/** How one attempt ended, as its client saw it. */
export type AttemptResult =
  | { kind: 'accepted'; version: number }
  | { kind: 'refused'; code: string; reason?: string }
  /** No answer in time: the command may or may not have been applied, but at most once. */
  | { kind: 'timeout' }
  /** Failed without a definite answer (closed, connection lost): as indeterminate as a timeout. */
  | { kind: 'error'; code: string; message?: string }

/**
 * One attempt of one command, written by the client process that made it, as one JSON line.
 * Retries of a command reuse its `commandId` and are attempts of their own.
 */
export interface Attempt {
  /** Name of the client process (or `liveness` for the harness's probes). */
  client: string
  op: 'save' | 'update'
  aggregateId: string
  commandId: string
  expectedVersion?: number
  /** The command: its persisted type name and its fields. */
  payload: { type: string } & Record<string, unknown>
  /** Milliseconds since the epoch when the call started and ended. */
  start: number
  end: number
  result: AttemptResult
}

/** True when the answer says what happened (accepted or refused). */
export function isDefinite(result: AttemptResult): result is Extract<AttemptResult, { kind: 'accepted' | 'refused' }> {
  return result.kind === 'accepted' || result.kind === 'refused'
}

/** Appends attempts to a JSON-lines file, one synchronous write per line, so a crash loses at most the line being written. */
export class HistoryWriter {
  private fd: number | undefined

  constructor(readonly path: string) {
    this.fd = openSync(path, 'a')
  }

  /** Writes one attempt. */
  write(attempt: Attempt): void {
    if (this.fd === undefined) throw new Error(`history ${this.path} is closed`)
    writeSync(this.fd, `${JSON.stringify(attempt)}\n`)
  }

  /** Closes the file; later writes throw. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }
}

/**
 * Reads every `*.jsonl` history file of a directory. A last line cut short by a killed writer is
 * skipped; any other line that is not an attempt is an error (the history would be incomplete).
 */
export function readHistory(dir: string): Attempt[] {
  if (!existsSync(dir)) return []
  const attempts: Attempt[] = []
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort()) {
    const lines = readFileSync(join(dir, name), 'utf8').split('\n')
    lines.forEach((line, i) => {
      if (line.trim() === '') return
      try {
        attempts.push(parseAttempt(JSON.parse(line)))
      } catch (error) {
        if (i === lines.length - 1) return
        throw new Error(`history ${join(dir, name)} line ${i + 1} is not an attempt: ${(error as Error).message}`)
      }
    })
  }
  return attempts
}

/** Checks the shape of a parsed history line. */
export function parseAttempt(raw: unknown): Attempt {
  const a = raw as Partial<Attempt>
  const fail = (what: string): never => {
    throw new Error(`${what} in ${JSON.stringify(raw).slice(0, 200)}`)
  }
  if (typeof a !== 'object' || a === null) fail('not an object')
  if (typeof a.client !== 'string') fail('no client')
  if (a.op !== 'save' && a.op !== 'update') fail('op is not save or update')
  if (typeof a.aggregateId !== 'string' || typeof a.commandId !== 'string') fail('no aggregateId or commandId')
  if (typeof a.payload !== 'object' || a.payload === null || typeof a.payload.type !== 'string') fail('no payload type')
  if (typeof a.start !== 'number' || typeof a.end !== 'number') fail('no start or end')
  const r = a.result as AttemptResult | undefined
  const ok =
    r !== undefined &&
    ((r.kind === 'accepted' && typeof r.version === 'number') ||
      (r.kind === 'refused' && typeof r.code === 'string') ||
      r.kind === 'timeout' ||
      (r.kind === 'error' && typeof r.code === 'string'))
  if (!ok) fail('no valid result')
  return a as Attempt
}

/** Codes of definite refusals: the command was decided (or validated) and will never apply. */
const REFUSALS = new Set([
  'ESK_COMMAND_REJECTED',
  'ESK_INVALID_COMMAND',
  'ESK_INVALID_ARGUMENT',
  'ESK_AGGREGATE_EXISTS',
  'ESK_AGGREGATE_NOT_FOUND',
  'ESK_VERSION_CONFLICT',
  'ESK_UNKNOWN_COMMAND',
  'ESK_HANDLER_FAILED',
])

/** Sorts an error a call threw into the history's result kinds. */
export function classify(error: unknown): AttemptResult {
  const e = error as { code?: unknown; name?: unknown; message?: unknown; details?: { reason?: unknown } }
  const code = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'UNKNOWN'
  if (code === 'ESK_COMMAND_TIMEOUT') return { kind: 'timeout' }
  if (REFUSALS.has(code)) return { kind: 'refused', code, ...(typeof e.details?.reason === 'string' && { reason: e.details.reason }) }
  return { kind: 'error', code, message: String(e?.message ?? error).slice(0, 300) }
}
