import { FencedError, InvalidArgumentError, SerializationError, UnavailableError, type ProjectionDeadLetter } from '@esk/core'
import {
  generationUnavailable,
  type ApplyResult,
  type CreateMode,
  type GenerationInfo,
  type ProjectionMeta,
  type ProjectionStore,
  type ProjectionWrite,
  type ViewChange,
  type ViewRead,
  type ViewReadResult,
} from '@esk/core/driver'
import type { Redis } from 'ioredis'
import { checkKeyPrefix, REDIS_STORE_DEFAULTS } from './options.js'
import { deleteKeysWithPrefix } from './prefix.js'
import { ProjectionKeys } from './projection-keys.js'
import { ACQUIRE_SCRIPT, APPLY_SCRIPT, CREATE_SCRIPT, DROP_SCRIPT, SWAP_SCRIPT } from './projection-scripts.js'
import { defineScript, type ScriptCall } from './scripts.js'

/** Options of a {@link RedisProjectionStore} used on its own. */
export interface RedisProjectionStoreOptions {
  /** Prefix of every key; the same as the snapshot store's. Default `esk:`. */
  keyPrefix?: string
}

/**
 * Projections in Redis (see {@link ProjectionKeys} for the layout). Each lane's write is one Lua
 * script that checks the generation, the owner token, the stored position and the values the
 * handlers read, then applies the changes and the new position together. It uses the client it is
 * given and never closes it.
 */
export class RedisProjectionStore implements ProjectionStore {
  private readonly keyPrefix: string
  private readonly createScript: ScriptCall
  private readonly swapScript: ScriptCall
  private readonly dropScript: ScriptCall
  private readonly acquireScript: ScriptCall
  private readonly applyScript: ScriptCall
  /** The live generation of each projection as last seen, so that a read needs one round trip. */
  private readonly live = new Map<string, number>()

  constructor(
    private readonly client: Redis,
    options: RedisProjectionStoreOptions = {},
  ) {
    this.keyPrefix = checkKeyPrefix(options.keyPrefix ?? REDIS_STORE_DEFAULTS.keyPrefix, 'RedisProjectionStore')
    this.createScript = defineScript(client, 'projection_create', CREATE_SCRIPT)
    this.swapScript = defineScript(client, 'projection_swap', SWAP_SCRIPT)
    this.dropScript = defineScript(client, 'projection_drop', DROP_SCRIPT)
    this.acquireScript = defineScript(client, 'projection_acquire', ACQUIRE_SCRIPT)
    this.applyScript = defineScript(client, 'projection_apply', APPLY_SCRIPT)
  }

  async describe(projection: string): Promise<ProjectionMeta> {
    const fields = await this.client.hgetall(this.keys(projection).meta)
    const live = fields.live === undefined ? undefined : Number(fields.live)
    const generations = Object.entries(fields)
      .filter(([field]) => field.startsWith('g:'))
      .map(([field, text]) => generationOf(text, live, `${this.keys(projection).meta} ${field}`))
      .sort((a, b) => a.id - b.id)
    return { live: generations.find((g) => g.id === live), generations }
  }

  async create(projection: string, version: number, mode: CreateMode, replacing?: number): Promise<GenerationInfo> {
    if (!Number.isSafeInteger(version) || version < 1) throw new InvalidArgumentError(`version must be a positive integer, got ${String(version)}`)
    const keys = this.keys(projection)
    const [id, info, dropped] = (await this.createScript(1, keys.meta, String(version), mode, replacing === undefined ? '' : String(replacing), String(Date.now()))) as [
      string,
      string,
      string,
    ]
    if (dropped !== '') await this.deleteGeneration(projection, Number(dropped))
    // The generation returned for `initial` and `reset` is always the live one; the others never are.
    const live = mode === 'initial' || mode === 'reset'
    const result = generationOf(info, live ? Number(id) : undefined, keys.meta)
    if (live) this.live.set(projection, result.id)
    return result
  }

  async swap(projection: string, from: number | undefined, to: number): Promise<boolean> {
    const swapped = (await this.swapScript(1, this.keys(projection).meta, from === undefined ? '' : String(from), String(to))) === 1
    if (!swapped) return false
    this.live.set(projection, to)
    if (from !== undefined) await this.deleteGeneration(projection, from)
    return true
  }

  async drop(projection: string, generation: number): Promise<void> {
    const result = (await this.dropScript(1, this.keys(projection).meta, String(generation))) as number
    if (result === 0) {
      throw new InvalidArgumentError(`generation ${generation} of projection '${projection}' is live; reset or rebuild it instead`)
    }
    if (result === 1) await this.deleteGeneration(projection, generation)
  }

  async acquire(projection: string, generation: number, lane: string, token: string): Promise<number | undefined> {
    const keys = this.keys(projection)
    try {
      const stored = (await this.acquireScript(3, keys.meta, keys.owners(generation), keys.positions(generation), String(generation), lane, token)) as
        | string
        | null
      return stored == null ? undefined : position(stored, keys.positions(generation))
    } catch (error) {
      throw fenceOf(error, projection, generation, lane)
    }
  }

  async positions(projection: string, generation: number): Promise<Map<string, number>> {
    const key = this.keys(projection).positions(generation)
    const fields = await this.client.hgetall(key)
    return new Map(Object.entries(fields).map(([lane, text]) => [lane, position(text, key)]))
  }

  async apply(projection: string, generation: number, lane: string, token: string, write: ProjectionWrite): Promise<ApplyResult> {
    const keys = this.keys(projection)
    const dataKeys: string[] = []
    const index = new Map<string, number>()
    // KEYS[1..4] are fixed; data keys follow, each once.
    const keyOf = (full: string): string => {
      let i = index.get(full)
      if (i === undefined) {
        dataKeys.push(full)
        i = dataKeys.length + 4
        index.set(full, i)
      }
      return String(i)
    }
    const args: string[] = [
      String(generation),
      lane,
      token,
      write.from === undefined ? '' : String(write.from),
      String(write.to),
      String(write.guards.length),
      String(write.changes.length),
      String(write.deadLetters.length),
    ]
    for (const guard of write.guards) {
      const kind = guard.read === 'get' ? 'v' : guard.read === 'hget' ? 'h' : 'z'
      const sub = guard.read === 'hget' ? guard.field : guard.read === 'zscore' ? guard.member : ''
      args.push(guard.read, keyOf(keys.data(kind, generation, guard.key)), sub, guard.value === null ? '0' : '1', guard.value ?? '')
    }
    for (const change of write.changes) {
      const [kind, a, b] = operands(change)
      args.push(change.op, keyOf(keys.data(kind, generation, change.key)), a, b)
    }
    for (const letter of write.deadLetters) args.push(JSON.stringify(letter))
    let reply: unknown
    try {
      reply = await this.applyScript(
        4 + dataKeys.length,
        keys.meta,
        keys.positions(generation),
        keys.owners(generation),
        keys.deadLetters(generation),
        ...dataKeys,
        ...args,
      )
    } catch (error) {
      throw fenceOf(error, projection, generation, lane)
    }
    const [status, at, what] = reply as [string, number?, string?]
    if (status === 'conflict') return { status: 'conflict', guard: Number(at) }
    if (status === 'invalid') return { status: 'invalid', change: Number(at), reason: `${String(what)} holds a value that is not a number` }
    return { status: 'applied' }
  }

  async read(projection: string, generation: number | 'live', reads: ViewRead[]): Promise<ViewReadResult[]> {
    const keys = this.keys(projection)
    for (let attempt = 0; attempt < 3; attempt++) {
      let id = generation === 'live' ? this.live.get(projection) : generation
      if (id === undefined) {
        const live = await this.client.hget(keys.meta, 'live')
        if (live === null) throw generationUnavailable(projection, generation)
        id = Number(live)
        this.live.set(projection, id)
      }
      // One transaction: the generation still exists, so its keys are whole, and every read sees one state.
      const transaction = this.client.multi()
      transaction.hexists(keys.meta, `g:${id}`)
      for (const read of reads) queueRead(transaction, keys, id, read)
      const results = await transaction.exec()
      if (!results) throw new Error(`reading projection '${projection}' failed: the transaction was aborted`)
      const values = results.map(([error, value]) => {
        if (error) throw new Error(`reading projection '${projection}' failed: ${error.message}`, { cause: error })
        return value
      })
      if (values[0] === 1) return reads.map((read, i) => decodeRead(read, values[i + 1]))
      if (generation !== 'live') throw generationUnavailable(projection, generation)
      this.live.delete(projection)
    }
    throw new UnavailableError(`projection '${projection}' changed generation during three reads in a row; retry`, { projection })
  }

  async deadLetters(projection: string, generation: number): Promise<ProjectionDeadLetter[]> {
    const key = this.keys(projection).deadLetters(generation)
    const texts = await this.client.lrange(key, 0, -1)
    return texts.map((text) => {
      try {
        return JSON.parse(text) as ProjectionDeadLetter
      } catch {
        throw new SerializationError(`a parked event in ${key} is not JSON; it was edited by hand or by another program`, { key })
      }
    })
  }

  /** Does nothing: the client belongs to whoever passed it in. */
  async close(): Promise<void> {}

  private keys(projection: string): ProjectionKeys {
    return new ProjectionKeys(this.keyPrefix, projection)
  }

  /** Deletes a dropped generation's keys, step by step; it already refuses reads and writes. */
  private async deleteGeneration(projection: string, generation: number): Promise<void> {
    await deleteKeysWithPrefix(this.client, this.keys(projection).generation(generation))
  }
}

type Transaction = ReturnType<Redis['multi']>

/** Which kind of key a change writes, and its two operands as the apply script takes them. */
function operands(c: ViewChange): ['v' | 'h' | 'z', string, string] {
  switch (c.op) {
    case 'set':
      return ['v', c.value, '']
    case 'del':
      return ['v', '', '']
    case 'incr':
      return ['v', number(c.by), '']
    case 'hset':
      return ['h', c.field, c.value]
    case 'hdel':
      return ['h', c.field, '']
    case 'hincr':
      return ['h', c.field, number(c.by)]
    case 'hclear':
      return ['h', '', '']
    case 'zadd':
      return ['z', c.member, number(c.score)]
    case 'zrem':
      return ['z', c.member, '']
    case 'zincr':
      return ['z', c.member, number(c.by)]
    case 'zclear':
      return ['z', '', '']
  }
}

function queueRead(t: Transaction, keys: ProjectionKeys, id: number, read: ViewRead): void {
  switch (read.read) {
    case 'get':
      t.get(keys.value(id, read.key))
      return
    case 'hget':
      t.hget(keys.hash(id, read.key), read.field)
      return
    case 'hgetall':
      t.hgetall(keys.hash(id, read.key))
      return
    case 'hlen':
      t.hlen(keys.hash(id, read.key))
      return
    case 'zscore':
      t.zscore(keys.sortedSet(id, read.key), read.member)
      return
    case 'zcard':
      t.zcard(keys.sortedSet(id, read.key))
      return
    case 'zrange':
      if (read.reverse) t.call('ZRANGE', keys.sortedSet(id, read.key), read.start, read.stop, 'REV', 'WITHSCORES')
      else t.call('ZRANGE', keys.sortedSet(id, read.key), read.start, read.stop, 'WITHSCORES')
      return
    case 'zrangebyscore': {
      const min = bound(read.min)
      const max = bound(read.max)
      const limit = read.offset > 0 || read.count >= 0 ? ['LIMIT', String(read.offset), String(read.count)] : []
      const range = read.reverse ? [max, min, 'BYSCORE', 'REV'] : [min, max, 'BYSCORE']
      t.call('ZRANGE', keys.sortedSet(id, read.key), ...range, ...limit, 'WITHSCORES')
    }
  }
}

function decodeRead(read: ViewRead, value: unknown): ViewReadResult {
  switch (read.read) {
    case 'hgetall':
      return Object.entries(value as Record<string, string>)
    case 'zrange':
    case 'zrangebyscore': {
      const flat = value as string[]
      const rows: Array<[string, number]> = []
      for (let i = 0; i < flat.length; i += 2) rows.push([flat[i]!, Number(flat[i + 1])])
      return rows
    }
    case 'hlen':
    case 'zcard':
      return Number(value)
    default:
      return (value as string | null) ?? null
  }
}

function bound(value: number): string {
  return value === Infinity ? '+inf' : value === -Infinity ? '-inf' : number(value)
}

/** A number as Redis takes it: every digit JavaScript would print. */
function number(value: number): string {
  return String(value)
}

function position(text: string, key: string): number {
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SerializationError(`position '${text}' in ${key} is not an offset; it was edited by hand or by another program`, { key })
  }
  return value
}

function generationOf(text: string, live: number | undefined, where: string): GenerationInfo {
  let raw: Partial<GenerationInfo>
  try {
    raw = JSON.parse(text) as Partial<GenerationInfo>
  } catch {
    throw new SerializationError(`the generation in ${where} is not JSON; it was edited by hand or by another program`, { where })
  }
  const { id, version, purpose, createdAt } = raw
  if (typeof id !== 'number' || typeof version !== 'number' || typeof purpose !== 'string' || typeof createdAt !== 'number') {
    throw new SerializationError(`the generation in ${where} lacks id, version, purpose or createdAt`, { where })
  }
  return { id, version, live: id === live, purpose, createdAt }
}

function fenceOf(error: unknown, projection: string, generation: number, lane: string): Error {
  const message = (error as Error).message ?? String(error)
  if (message.startsWith('ESK_FENCED')) {
    return new FencedError(`a write to lane ${lane} of projection '${projection}' (generation ${generation}) was refused: ${message.slice(11)}`, {
      projection,
      generation,
      lane,
    })
  }
  return error as Error
}
