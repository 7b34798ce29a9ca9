import { InvalidArgumentError, SerializationError, UnavailableError } from '../errors.js'
import { messageOf } from '../runtime.js'
import type { ViewChange, ViewGuard, ViewRead, ViewReadResult } from './ports.js'

/** A member of a sorted set with its score. */
export interface ScoredMember {
  member: string
  score: number
}

/** Options of {@link SortedSetReader.range}. */
export interface RangeOptions {
  /** Highest score first. Default false. */
  reverse?: boolean
}

/** Options of {@link SortedSetReader.rangeByScore}. */
export interface ScoreRangeOptions extends RangeOptions {
  /** Members to skip first. Default 0. */
  offset?: number
  /** Most members returned; -1 for all. Default -1. */
  count?: number
}

/** Reads a hash of a view: JSON values by field. */
export interface HashReader<T = unknown> {
  get(field: string): Promise<T | undefined>
  /** Every field and value (an object without prototype). */
  all(): Promise<Record<string, T>>
  size(): Promise<number>
}

/** Reads a sorted set of a view: members ordered by score, then by member. */
export interface SortedSetReader {
  score(member: string): Promise<number | undefined>
  /** Members by rank, `start` to `stop` inclusive; negative ranks count from the end. Default: all. */
  range(start?: number, stop?: number, options?: RangeOptions): Promise<ScoredMember[]>
  /** Members whose score is from `min` to `max` inclusive (`-Infinity`/`Infinity` for open ends). */
  rangeByScore(min: number, max: number, options?: ScoreRangeOptions): Promise<ScoredMember[]>
  size(): Promise<number>
}

/**
 * Reads a view: plain JSON values by key, hashes and sorted sets. Keys of the three kinds are
 * separate: `get('a')`, `hash('a')` and `sortedSet('a')` never meet.
 */
export interface ViewReader {
  get<T = unknown>(key: string): Promise<T | undefined>
  hash<T = unknown>(key: string): HashReader<T>
  sortedSet(key: string): SortedSetReader
}

/** Writes a hash of a view; every write is applied with the batch's position, atomically. */
export interface HashWriter<T = unknown> extends HashReader<T> {
  set(field: string, value: T): void
  del(field: string): void
  /** Adds `by` to a numeric field (a missing one counts as 0). */
  incr(field: string, by?: number): void
  /** Removes every field. */
  clear(): void
}

/** Writes a sorted set of a view. */
export interface SortedSetWriter extends SortedSetReader {
  add(member: string, score: number): void
  remove(member: string): void
  /** Adds `by` to a member's score (a missing member counts as 0). */
  incr(member: string, by?: number): void
  /** Removes every member. */
  clear(): void
}

/**
 * What a projection handler writes its view through. Reads see the store plus everything staged
 * earlier in the batch; writes are staged and applied together with the batch's position, in one
 * atomic step, so each event changes the view exactly once.
 *
 * A value read with `get`, `hash().get` or `sortedSet().score` is checked again when the batch is
 * applied: if another partition changed it in between, the batch is handled again on the new value.
 * Whole-hash and range reads are not checked; keep their keys to one partition's events, or write
 * them with `incr`, which adds atomically in the store.
 */
export interface ViewStore extends ViewReader {
  set<T = unknown>(key: string, value: T): void
  del(key: string): void
  /** Adds `by` (default 1) to a numeric value, atomically in the store; a missing one counts as 0. */
  incr(key: string, by?: number): void
  hash<T = unknown>(key: string): HashWriter<T>
  sortedSet(key: string): SortedSetWriter
}

/** A read of the store failed: the store is unreachable. Not the handler's fault; the batch is retried. */
export class ViewReadFailed extends UnavailableError {}

/** Longest key, hash field or sorted-set member accepted, in characters. */
export const MAX_KEY_LENGTH = 1024

type Slot = { kind: 'value'; text: string } | { kind: 'gone' } | { kind: 'delta'; by: number }
type ScoreSlot = { kind: 'score'; score: number } | { kind: 'gone' } | { kind: 'delta'; by: number }
interface Staged<S> {
  cleared: boolean
  entries: Map<string, S>
}

/** Where a view's reads go: one call, one consistent answer. */
export type ReadSource = (reads: ViewRead[]) => Promise<ViewReadResult[]>

/** A point in a {@link StagedView}'s history, to roll a failed handler back to. */
export interface Mark {
  changes: number
  undo: number
}

/**
 * The {@link ViewStore} of one batch: changes are staged in order, reads see the store overlaid
 * with them, and every point read of the store is remembered (cached and guarded).
 */
export class StagedView implements ViewStore {
  readonly changes: ViewChange[] = []
  readonly guards: ViewGuard[] = []
  /** The event (index in the batch) that staged each change. */
  readonly owners: number[] = []
  /** The event whose handler is running; its index goes to {@link owners}. */
  current = -1
  private readonly strings = new Map<string, Slot>()
  private readonly hashes = new Map<string, Staged<Slot>>()
  private readonly sets = new Map<string, Staged<ScoreSlot>>()
  private readonly cache = new Map<string, string | null>()
  private readonly undo: Array<() => void> = []

  constructor(
    private readonly source: ReadSource,
    private readonly tracked = true,
  ) {}

  mark(): Mark {
    return { changes: this.changes.length, undo: this.undo.length }
  }

  /** Forgets everything staged since `mark` (a handler that threw half-way). */
  rollback(mark: Mark): void {
    while (this.undo.length > mark.undo) this.undo.pop()!()
    this.changes.length = mark.changes
    this.owners.length = mark.changes
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    checkName(key, 'key')
    const raw = isSettled(this.strings.get(key)) ? null : await this.point({ read: 'get', key })
    return valueOf(this.strings.get(key), raw, `value '${key}'`) as T | undefined
  }

  set<T = unknown>(key: string, value: T): void {
    checkName(key, 'key')
    const text = encodeValue(value, `value '${key}'`)
    this.stage(this.strings, key, { kind: 'value', text }, { op: 'set', key, value: text })
  }

  del(key: string): void {
    checkName(key, 'key')
    this.stage(this.strings, key, { kind: 'gone' }, { op: 'del', key })
  }

  incr(key: string, by = 1): void {
    checkName(key, 'key')
    checkNumber(by, 'incr')
    this.stage(this.strings, key, added(this.strings.get(key), by, false, `value '${key}'`), { op: 'incr', key, by })
  }

  hash<T = unknown>(key: string): HashWriter<T> {
    checkName(key, 'key')
    const staged = (): Staged<Slot> | undefined => this.hashes.get(key)
    const what = (field: string): string => `field '${field}' of hash '${key}'`
    return {
      get: async (field) => {
        checkName(field, 'field')
        const s = staged()
        const settled = s?.cleared || isSettled(s?.entries.get(field))
        const raw = settled ? null : await this.point({ read: 'hget', key, field })
        return valueOf(staged()?.entries.get(field), raw, what(field)) as T | undefined
      },
      all: async () => {
        const stored = staged()?.cleared ? [] : ((await this.fetch({ read: 'hgetall', key })) as Array<[string, string]>)
        const result = Object.create(null) as Record<string, T>
        const entries = staged()?.entries
        for (const [field, text] of stored) {
          if (!entries?.has(field)) result[field] = decodeValue(text, what(field)) as T
        }
        for (const [field, slot] of entries ?? []) {
          const base = stored.find(([f]) => f === field)?.[1] ?? null
          const value = valueOf(slot, base, what(field))
          if (value !== undefined) result[field] = value as T
        }
        return result
      },
      size: async () => {
        const s = staged()
        if (!s) return (await this.fetch({ read: 'hlen', key })) as number
        return Object.keys(await this.hash(key).all()).length
      },
      set: (field, value) => {
        checkName(field, 'field')
        const text = encodeValue(value, what(field))
        this.stageEntry(this.hashes, key, field, { kind: 'value', text }, { op: 'hset', key, field, value: text })
      },
      del: (field) => {
        checkName(field, 'field')
        this.stageEntry(this.hashes, key, field, { kind: 'gone' }, { op: 'hdel', key, field })
      },
      incr: (field, by = 1) => {
        checkName(field, 'field')
        checkNumber(by, 'incr')
        const s = staged()
        const slot = added(s?.entries.get(field), by, s?.cleared ?? false, what(field))
        this.stageEntry(this.hashes, key, field, slot, { op: 'hincr', key, field, by })
      },
      clear: () => this.stageClear(this.hashes, key, { op: 'hclear', key }),
    }
  }

  sortedSet(key: string): SortedSetWriter {
    checkName(key, 'key')
    const staged = (): Staged<ScoreSlot> | undefined => this.sets.get(key)
    const what = (member: string): string => `member '${member}' of sorted set '${key}'`
    /** Every member with the staged changes applied, in order; reads the whole stored set. */
    const merged = async (): Promise<ScoredMember[]> => {
      const stored = staged()?.cleared
        ? []
        : ((await this.fetch({ read: 'zrange', key, start: 0, stop: -1, reverse: false })) as Array<[string, number]>)
      const scores = new Map(stored)
      for (const [member, slot] of staged()?.entries ?? []) {
        const score = scoreOf(slot, scores.get(member))
        if (score === undefined) scores.delete(member)
        else scores.set(member, score)
      }
      return [...scores].map(([member, score]) => ({ member, score })).sort(compareScored)
    }
    return {
      score: async (member) => {
        checkName(member, 'member')
        const s = staged()
        const slot = s?.entries.get(member)
        if (slot?.kind === 'score') return slot.score
        if (slot?.kind === 'gone' || (s?.cleared && slot === undefined)) return undefined
        const raw = s?.cleared ? null : await this.point({ read: 'zscore', key, member })
        const base = raw === null ? undefined : Number(raw)
        return scoreOf(staged()?.entries.get(member), base)
      },
      range: async (start = 0, stop = -1, options = {}) => {
        checkInteger(start, 'start')
        checkInteger(stop, 'stop')
        if (!staged()) {
          const rows = (await this.fetch({ read: 'zrange', key, start, stop, reverse: options.reverse ?? false })) as Array<[string, number]>
          return rows.map(([member, score]) => ({ member, score }))
        }
        return rankSlice(await merged(), start, stop, options.reverse ?? false)
      },
      rangeByScore: async (min, max, options = {}) => {
        if (typeof min !== 'number' || Number.isNaN(min) || typeof max !== 'number' || Number.isNaN(max)) {
          throw new InvalidArgumentError(`rangeByScore needs numeric bounds, got ${String(min)} and ${String(max)}`)
        }
        const offset = options.offset ?? 0
        const count = options.count ?? -1
        checkInteger(offset, 'offset')
        checkInteger(count, 'count')
        const reverse = options.reverse ?? false
        if (!staged()) {
          const read: ViewRead = { read: 'zrangebyscore', key, min, max, reverse, offset, count }
          const rows = (await this.fetch(read)) as Array<[string, number]>
          return rows.map(([member, score]) => ({ member, score }))
        }
        return scoreSlice(await merged(), min, max, reverse, offset, count)
      },
      size: async () => (staged() ? (await merged()).length : ((await this.fetch({ read: 'zcard', key })) as number)),
      add: (member, score) => {
        checkName(member, 'member')
        checkNumber(score, 'score')
        this.stageEntry(this.sets, key, member, { kind: 'score', score }, { op: 'zadd', key, member, score })
      },
      remove: (member) => {
        checkName(member, 'member')
        this.stageEntry(this.sets, key, member, { kind: 'gone' }, { op: 'zrem', key, member })
      },
      incr: (member, by = 1) => {
        checkName(member, 'member')
        checkNumber(by, 'incr')
        const s = staged()
        const slot = s?.entries.get(member)
        let next: ScoreSlot
        if (slot?.kind === 'score') next = { kind: 'score', score: slot.score + by }
        else if (slot?.kind === 'delta') next = { kind: 'delta', by: slot.by + by }
        else if (slot?.kind === 'gone' || s?.cleared) next = { kind: 'score', score: by }
        else next = { kind: 'delta', by }
        this.stageEntry(this.sets, key, member, next, { op: 'zincr', key, member, by })
      },
      clear: () => this.stageClear(this.sets, key, { op: 'zclear', key }),
    }
  }

  private async fetch(read: ViewRead): Promise<ViewReadResult> {
    try {
      const [result] = await this.source([read])
      return result as ViewReadResult
    } catch (error) {
      if (error instanceof ViewReadFailed || (error as { code?: unknown }).code === 'ESK_FENCED') throw error
      throw new ViewReadFailed(`reading the view failed: ${messageOf(error)}; the batch is tried again`, {}, error)
    }
  }

  /** A read of one value, the same for the whole batch, and checked again when the batch is applied. */
  private async point(read: Extract<ViewRead, { read: 'get' | 'hget' | 'zscore' }>): Promise<string | null> {
    if (!this.tracked) return (await this.fetch(read)) as string | null
    const id = JSON.stringify([read.read, read.key, 'field' in read ? read.field : 'member' in read ? read.member : ''])
    if (this.cache.has(id)) return this.cache.get(id)!
    const value = (await this.fetch(read)) as string | null
    if (!this.cache.has(id)) {
      this.cache.set(id, value)
      this.guards.push({ ...read, value } as ViewGuard)
    }
    return this.cache.get(id)!
  }

  private record(change: ViewChange): void {
    this.changes.push(change)
    this.owners.push(this.current)
  }

  private stage(map: Map<string, Slot>, key: string, slot: Slot, change: ViewChange): void {
    this.remember(map, key)
    map.set(key, slot)
    this.record(change)
  }

  private stageEntry<S>(map: Map<string, Staged<S>>, key: string, entry: string, slot: S, change: ViewChange): void {
    let staged = map.get(key)
    if (!staged) {
      staged = { cleared: false, entries: new Map() }
      map.set(key, staged)
      this.undo.push(() => map.delete(key))
    }
    this.remember(staged.entries, entry)
    staged.entries.set(entry, slot)
    this.record(change)
  }

  private stageClear<S>(map: Map<string, Staged<S>>, key: string, change: ViewChange): void {
    this.remember(map, key)
    map.set(key, { cleared: true, entries: new Map() })
    this.record(change)
  }

  /** Records how to put `map[key]` back as it is now. */
  private remember<V>(map: Map<string, V>, key: string): void {
    if (map.has(key)) {
      const previous = map.get(key)!
      this.undo.push(() => map.set(key, previous))
    } else {
      this.undo.push(() => map.delete(key))
    }
  }
}

/** A read-only view of a store (what `app.projection(p)` reads through). */
export function viewReader(source: ReadSource): ViewReader {
  const view = new StagedView(source, false)
  return {
    get: (key) => view.get(key),
    hash: <T>(key: string) => {
      const h = view.hash<T>(key)
      return { get: h.get, all: h.all, size: h.size }
    },
    sortedSet: (key) => {
      const z = view.sortedSet(key)
      return { score: z.score, range: z.range, rangeByScore: z.rangeByScore, size: z.size }
    },
  }
}

function isSettled(slot: Slot | undefined): boolean {
  return slot?.kind === 'value' || slot?.kind === 'gone'
}

/** The value a slot gives over a stored text (null: none stored). */
function valueOf(slot: Slot | undefined, stored: string | null, what: string): unknown {
  if (slot?.kind === 'value') return decodeValue(slot.text, what)
  if (slot?.kind === 'gone') return undefined
  if (slot?.kind === 'delta') return numberIn(stored, what) + slot.by
  return stored === null ? undefined : decodeValue(stored, what)
}

/** The slot after adding `by` to `slot`; `cleared` when nothing stored counts (the hash was cleared). */
function added(slot: Slot | undefined, by: number, cleared: boolean, what: string): Slot {
  if (slot?.kind === 'value') return { kind: 'value', text: JSON.stringify(numberIn(slot.text, what) + by) }
  if (slot?.kind === 'delta') return { kind: 'delta', by: slot.by + by }
  if (slot?.kind === 'gone' || cleared) return { kind: 'value', text: JSON.stringify(by) }
  return { kind: 'delta', by }
}

function scoreOf(slot: ScoreSlot | undefined, stored: number | undefined): number | undefined {
  if (slot?.kind === 'score') return slot.score
  if (slot?.kind === 'gone') return undefined
  if (slot?.kind === 'delta') return (stored ?? 0) + slot.by
  return stored
}

/** The number a stored text holds (0 when absent); anything else cannot be incremented. */
function numberIn(text: string | null, what: string): number {
  if (text === null) return 0
  const value = decodeValue(text, what)
  if (typeof value !== 'number') {
    throw new InvalidArgumentError(`cannot increment ${what}: it holds ${text}, not a number`)
  }
  return value
}

/** JSON text of a value a view stores. */
export function encodeValue(value: unknown, what: string): string {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch (error) {
    throw new InvalidArgumentError(`${what} cannot be stored as JSON: ${messageOf(error)}`)
  }
  if (text === undefined) throw new InvalidArgumentError(`${what} cannot be stored: ${typeof value} is not a JSON value`)
  return text
}

/** Decodes a stored JSON text. */
export function decodeValue(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    throw new SerializationError(`${what} in the view is not JSON: ${messageOf(error)}`)
  }
}

function checkName(value: unknown, what: string): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_KEY_LENGTH) {
    throw new InvalidArgumentError(`a view ${what} must be a string of 1 to ${MAX_KEY_LENGTH} characters, got ${describe(value)}`)
  }
}

function checkNumber(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`${what} needs a finite number, got ${describe(value)}`)
  }
}

function checkInteger(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`${what} must be an integer, got ${describe(value)}`)
  }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? `'${value.slice(0, 40)}'${value.length > 40 ? '...' : ''} (${value.length} characters)` : String(value)
}

/** Orders members as Redis does: by score, then by member (compared by code point, as UTF-8 bytes are). */
export function compareScored(a: ScoredMember, b: ScoredMember): number {
  if (a.score !== b.score) return a.score < b.score ? -1 : 1
  return compareCodePoints(a.member, b.member)
}

function compareCodePoints(a: string, b: string): number {
  const x = [...a]
  const y = [...b]
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!
    if (d !== 0) return d
  }
  return x.length - y.length
}

/** Members `start` to `stop` (inclusive, negative from the end) of an ordered list, as ZRANGE counts them. */
export function rankSlice<T>(ordered: T[], start: number, stop: number, reverse: boolean): T[] {
  const list = reverse ? [...ordered].reverse() : ordered
  const n = list.length
  const from = Math.max(0, start < 0 ? n + start : start)
  const to = Math.min(n - 1, stop < 0 ? n + stop : stop)
  return from > to ? [] : list.slice(from, to + 1)
}

/** Members with `min <= score <= max` of an ordered list, then `offset` and `count`, as ZRANGEBYSCORE counts them. */
export function scoreSlice(ordered: ScoredMember[], min: number, max: number, reverse: boolean, offset: number, count: number): ScoredMember[] {
  const inRange = ordered.filter((m) => m.score >= min && m.score <= max)
  const list = reverse ? inRange.reverse() : inRange
  if (offset < 0) return []
  return count < 0 ? list.slice(offset) : list.slice(offset, offset + count)
}
