import { FencedError, InvalidArgumentError, UnavailableError } from '../errors.js'
import type {
  ApplyResult,
  CreateMode,
  GenerationInfo,
  ProjectionDeadLetter,
  ProjectionMeta,
  ProjectionStore,
  ProjectionWrite,
  ViewChange,
  ViewGuard,
  ViewRead,
  ViewReadResult,
} from './ports.js'
import { compareScored, rankSlice, scoreSlice, type ScoredMember } from './view.js'

/** One generation's view and positions, in memory. */
export interface MemoryGeneration {
  info: GenerationInfo
  positions: Map<string, number>
  owners: Map<string, string>
  deadLetters: ProjectionDeadLetter[]
  strings: Map<string, string>
  hashes: Map<string, Map<string, string>>
  sets: Map<string, Map<string, number>>
}

/** A projection's generations, in memory. */
export interface MemoryProjection {
  live: number | undefined
  next: number
  /** The generation being built for each version beside an older live one. */
  upgrades: Map<number, number>
  generations: Map<number, MemoryGeneration>
}

/** Everything a view holds, as plain data: what a test compares. */
export interface ViewDump {
  values: Record<string, unknown>
  hashes: Record<string, Record<string, unknown>>
  sortedSets: Record<string, Array<[string, number]>>
}

/**
 * Projections in this process's memory, with the same atomicity and fencing as the Redis store:
 * each write is checked and applied synchronously, so no other write comes between. Used by the
 * embedded driver (shared through its backend, so a restarted application finds it) and by every
 * global projection (one per application, rebuilt on start).
 */
export class InMemoryProjectionStore implements ProjectionStore {
  /** Projections by name. */
  readonly projections = new Map<string, MemoryProjection>()

  async describe(projection: string): Promise<ProjectionMeta> {
    const p = this.projections.get(projection)
    if (!p) return { live: undefined, generations: [] }
    const generations = [...p.generations.values()].map((g) => ({ ...g.info }))
    return { live: generations.find((g) => g.id === p.live), generations }
  }

  async create(projection: string, version: number, mode: CreateMode, replacing?: number): Promise<GenerationInfo> {
    const p = this.projection(projection)
    const live = p.live === undefined ? undefined : p.generations.get(p.live)
    if (mode === 'initial' && live) return { ...live.info }
    if (mode === 'upgrade') {
      const existing = p.generations.get(p.upgrades.get(version) ?? -1)
      if (existing) return { ...existing.info }
    }
    if (mode === 'reset' && replacing !== undefined && p.live !== replacing && live) return { ...live.info }
    const id = p.next++
    const makeLive = mode === 'initial' || mode === 'reset'
    const purpose = mode
    p.generations.set(id, {
      info: { id, version, live: makeLive, purpose, createdAt: Date.now() },
      positions: new Map(),
      owners: new Map(),
      deadLetters: [],
      strings: new Map(),
      hashes: new Map(),
      sets: new Map(),
    })
    if (mode === 'upgrade') p.upgrades.set(version, id)
    if (makeLive) {
      if (live) this.forget(p, live.info.id)
      p.live = id
    }
    return { ...p.generations.get(id)!.info }
  }

  async swap(projection: string, from: number | undefined, to: number): Promise<boolean> {
    const p = this.projection(projection)
    const target = p.generations.get(to)
    if (p.live !== from || !target) return false
    if (from !== undefined) this.forget(p, from)
    target.info.live = true
    p.live = to
    for (const [version, id] of p.upgrades) if (id === to) p.upgrades.delete(version)
    return true
  }

  async drop(projection: string, generation: number): Promise<void> {
    const p = this.projections.get(projection)
    if (!p || !p.generations.has(generation)) return
    if (p.live === generation) {
      throw new InvalidArgumentError(`generation ${generation} of projection '${projection}' is live; reset or rebuild it instead`)
    }
    this.forget(p, generation)
  }

  async acquire(projection: string, generation: number, lane: string, token: string): Promise<number | undefined> {
    const g = this.generation(projection, generation)
    g.owners.set(lane, token)
    return g.positions.get(lane)
  }

  async positions(projection: string, generation: number): Promise<Map<string, number>> {
    return new Map(this.generation(projection, generation).positions)
  }

  async apply(projection: string, generation: number, lane: string, token: string, write: ProjectionWrite): Promise<ApplyResult> {
    const g = this.generation(projection, generation)
    if (g.owners.get(lane) !== token) {
      throw new FencedError(
        `lane ${lane} of projection '${projection}' (generation ${generation}) is owned by another consumer; this write is refused`,
        { projection, generation, lane },
      )
    }
    const stored = g.positions.get(lane)
    if (stored !== write.from) {
      throw new FencedError(
        `lane ${lane} of projection '${projection}' is at position ${String(stored)}, not ${String(write.from)}; this write is refused`,
        { projection, generation, lane, stored, from: write.from },
      )
    }
    const guard = write.guards.findIndex((g2) => !holds(g, g2))
    if (guard >= 0) return { status: 'conflict', guard }
    const invalid = invalidChange(g, write.changes)
    if (invalid) return { status: 'invalid', ...invalid }
    for (const change of write.changes) applyChange(g, change)
    g.positions.set(lane, write.to)
    g.deadLetters.push(...write.deadLetters.map((d) => ({ ...d })))
    return { status: 'applied' }
  }

  async read(projection: string, generation: number | 'live', reads: ViewRead[]): Promise<ViewReadResult[]> {
    const p = this.projections.get(projection)
    const id = generation === 'live' ? p?.live : generation
    const g = id === undefined ? undefined : p?.generations.get(id)
    if (!g) throw generationUnavailable(projection, generation)
    return reads.map((read) => readOne(g, read))
  }

  async deadLetters(projection: string, generation: number): Promise<ProjectionDeadLetter[]> {
    return this.generation(projection, generation).deadLetters.map((d) => ({ ...d }))
  }

  /** Everything a generation (or the live one) holds, decoded. */
  dump(projection: string, generation: number | 'live' = 'live'): ViewDump {
    const p = this.projections.get(projection)
    const id = generation === 'live' ? p?.live : generation
    const g = id === undefined ? undefined : p?.generations.get(id)
    if (!g) throw generationUnavailable(projection, generation)
    const values: ViewDump['values'] = {}
    for (const [key, text] of [...g.strings].sort(byKey)) values[key] = JSON.parse(text) as unknown
    const hashes: ViewDump['hashes'] = {}
    for (const [key, fields] of [...g.hashes].sort(byKey)) {
      hashes[key] = Object.fromEntries([...fields].sort(byKey).map(([f, text]) => [f, JSON.parse(text) as unknown]))
    }
    const sortedSets: ViewDump['sortedSets'] = {}
    for (const [key, members] of [...g.sets].sort(byKey)) sortedSets[key] = ordered(members).map((m) => [m.member, m.score])
    return { values, hashes, sortedSets }
  }

  async close(): Promise<void> {}

  private projection(name: string): MemoryProjection {
    let p = this.projections.get(name)
    if (!p) {
      p = { live: undefined, next: 1, upgrades: new Map(), generations: new Map() }
      this.projections.set(name, p)
    }
    return p
  }

  private generation(projection: string, generation: number): MemoryGeneration {
    const g = this.projections.get(projection)?.generations.get(generation)
    if (!g) {
      throw new FencedError(
        `generation ${generation} of projection '${projection}' no longer exists (it was replaced by a reset or a rebuild); ` +
          `reopen on the live generation`,
        { projection, generation },
      )
    }
    return g
  }

  private forget(p: MemoryProjection, generation: number): void {
    p.generations.delete(generation)
    for (const [version, id] of p.upgrades) if (id === generation) p.upgrades.delete(version)
    if (p.live === generation) p.live = undefined
  }
}

/** The error of a read of a generation that does not exist (any projection store's). */
export function generationUnavailable(projection: string, generation: number | 'live'): UnavailableError {
  return new UnavailableError(
    generation === 'live'
      ? `projection '${projection}' has no live generation yet: no instance has started building it`
      : `generation ${generation} of projection '${projection}' no longer exists`,
    { projection, generation },
  )
}

function byKey(a: [string, unknown], b: [string, unknown]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
}

function ordered(members: Map<string, number>): ScoredMember[] {
  return [...members].map(([member, score]) => ({ member, score })).sort(compareScored)
}

/** The raw text of a score, for guards. */
function scoreText(score: number | undefined): string | null {
  return score === undefined ? null : String(score)
}

function holds(g: MemoryGeneration, guard: ViewGuard): boolean {
  switch (guard.read) {
    case 'get':
      return (g.strings.get(guard.key) ?? null) === guard.value
    case 'hget':
      return (g.hashes.get(guard.key)?.get(guard.field) ?? null) === guard.value
    case 'zscore':
      return scoreText(g.sets.get(guard.key)?.get(guard.member)) === guard.value
  }
}

function readOne(g: MemoryGeneration, read: ViewRead): ViewReadResult {
  switch (read.read) {
    case 'get':
      return g.strings.get(read.key) ?? null
    case 'hget':
      return g.hashes.get(read.key)?.get(read.field) ?? null
    case 'hgetall':
      return [...(g.hashes.get(read.key) ?? [])]
    case 'hlen':
      return g.hashes.get(read.key)?.size ?? 0
    case 'zscore':
      return scoreText(g.sets.get(read.key)?.get(read.member))
    case 'zcard':
      return g.sets.get(read.key)?.size ?? 0
    case 'zrange':
      return rankSlice(ordered(g.sets.get(read.key) ?? new Map()), read.start, read.stop, read.reverse).map((m) => [m.member, m.score])
    case 'zrangebyscore':
      return scoreSlice(ordered(g.sets.get(read.key) ?? new Map()), read.min, read.max, read.reverse, read.offset, read.count).map(
        (m) => [m.member, m.score],
      )
  }
}

function isNumberText(text: string): boolean {
  try {
    return typeof JSON.parse(text) === 'number'
  } catch {
    return false
  }
}

/**
 * The first increment that would add to a stored value that is not a number, if any. Values an
 * earlier change of the same write set were checked when staged, so only stored ones are looked at.
 */
function invalidChange(g: MemoryGeneration, changes: ViewChange[]): { change: number; reason: string } | undefined {
  const touched = new Set<string>()
  for (let i = 0; i < changes.length; i++) {
    const c = changes[i]!
    if (c.op === 'incr' && !touched.has(`s\0${c.key}`)) {
      const stored = g.strings.get(c.key)
      if (stored !== undefined && !isNumberText(stored)) return { change: i, reason: `value '${c.key}' holds ${stored}, not a number` }
    }
    if (c.op === 'hincr' && !touched.has(`h\0${c.key}`) && !touched.has(`h\0${c.key}\0${c.field}`)) {
      const stored = g.hashes.get(c.key)?.get(c.field)
      if (stored !== undefined && !isNumberText(stored)) {
        return { change: i, reason: `field '${c.field}' of hash '${c.key}' holds ${stored}, not a number` }
      }
    }
    if (c.op === 'set' || c.op === 'del' || c.op === 'incr') touched.add(`s\0${c.key}`)
    if (c.op === 'hset' || c.op === 'hdel' || c.op === 'hincr') touched.add(`h\0${c.key}\0${c.field}`)
    if (c.op === 'hclear') touched.add(`h\0${c.key}`)
  }
  return undefined
}

function applyChange(g: MemoryGeneration, c: ViewChange): void {
  switch (c.op) {
    case 'set':
      g.strings.set(c.key, c.value)
      return
    case 'del':
      g.strings.delete(c.key)
      return
    case 'incr': {
      const current = g.strings.get(c.key)
      g.strings.set(c.key, JSON.stringify((current === undefined ? 0 : (JSON.parse(current) as number)) + c.by))
      return
    }
    case 'hset':
      entries(g.hashes, c.key).set(c.field, c.value)
      return
    case 'hdel':
      removeEntry(g.hashes, c.key, c.field)
      return
    case 'hincr': {
      const hash = entries(g.hashes, c.key)
      const current = hash.get(c.field)
      hash.set(c.field, JSON.stringify((current === undefined ? 0 : (JSON.parse(current) as number)) + c.by))
      return
    }
    case 'hclear':
      g.hashes.delete(c.key)
      return
    case 'zadd':
      entries(g.sets, c.key).set(c.member, c.score)
      return
    case 'zrem':
      removeEntry(g.sets, c.key, c.member)
      return
    case 'zincr': {
      const set = entries(g.sets, c.key)
      set.set(c.member, (set.get(c.member) ?? 0) + c.by)
      return
    }
    case 'zclear':
      g.sets.delete(c.key)
  }
}

function entries<V>(map: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let inner = map.get(key)
  if (!inner) map.set(key, (inner = new Map()))
  return inner
}

/** Removes an entry; an empty hash or set disappears, as in Redis. */
function removeEntry<V>(map: Map<string, Map<string, V>>, key: string, entry: string): void {
  const inner = map.get(key)
  if (!inner) return
  inner.delete(entry)
  if (inner.size === 0) map.delete(key)
}
