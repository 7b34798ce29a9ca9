import { createRequire } from 'node:module'
import { Type } from 'class-transformer'

// The storage class-transformer's decorators write to (its package has no typed entry for it).
const { defaultMetadataStorage } = createRequire(import.meta.url)('class-transformer/cjs/storage.js') as { defaultMetadataStorage: unknown }

/*
 * A short cut past class-transformer for the common case, with the same results.
 *
 * Most aggregates, commands and events declare no class-transformer decorators and hold only JSON
 * values: strings, numbers, booleans, null, arrays and plain objects. For those,
 * class-transformer's instanceToPlain + JSON.stringify is JSON.stringify, and its plainToInstance
 * is "new the class, then copy the fields", minus a few keys it always skips. Doing that directly
 * costs a fraction of class-transformer's walk, which looks up metadata for every field of every
 * value. Encoding and decoding are most of the processor's own CPU per command, and most of a
 * replay's CPU per event besides reading the log.
 *
 * The short cut is taken only when it gives exactly class-transformer's result:
 * - the class and its ancestors have no class-transformer metadata (@Type, @Expose, @Exclude,
 *   @Transform), and nothing on their prototypes defines toJSON;
 * - when encoding, every value reached is a JSON value as above (no Date, Map, Set, class
 *   instance, function, sparse array, and no field named __proto__ or constructor), at most
 *   MAX_DEPTH deep. Anything else goes to class-transformer.
 * Decoding reads JSON text, so it only meets JSON values. A unit test compares both ways on a
 * corpus and on random JSON. One difference is deliberate: a nested object with a field named
 * `constructor` makes class-transformer throw; the short cut drops that field, as
 * class-transformer drops it everywhere else. The short cut turns itself off if class-transformer's metadata cannot be read the
 * way it expects (another release, or a second copy of the library).
 */

const MAX_DEPTH = 64

/** Keys class-transformer never copies from plain data. */
const SKIPPED = new Set(['__proto__', 'constructor'])

/**
 * Keys class-transformer skips in a plain object it builds: Object.prototype's methods (a
 * property of the new object that is already a function, or defined on its prototype without a
 * setter, is left alone).
 */
const SKIPPED_IN_PLAIN = new Set(
  Object.getOwnPropertyNames(Object.prototype).filter((key) => {
    const descriptor = Object.getOwnPropertyDescriptor(Object.prototype, key)
    return SKIPPED.has(key) || (descriptor !== undefined && !descriptor.set)
  }),
)

type AnyClass = new () => object

interface Storage {
  _typeMetadatas?: unknown
  _transformMetadatas?: unknown
  _exposeMetadatas?: unknown
  _excludeMetadatas?: unknown
  getAncestors?: (target: unknown) => unknown[]
}

const metadataMaps = ((): Array<Map<unknown, unknown>> | undefined => {
  const storage = defaultMetadataStorage as unknown as Storage
  const maps = [storage._typeMetadatas, storage._transformMetadatas, storage._exposeMetadatas, storage._excludeMetadatas]
  if (!maps.every((m) => m instanceof Map) || typeof storage.getAncestors !== 'function') return undefined
  return maps as Array<Map<unknown, unknown>>
})()

/** Whether a class may take the short cut, by class. */
const plainClasses = new WeakMap<object, boolean>()

function lineage(cls: AnyClass): object[] {
  const chain: object[] = []
  for (let c: unknown = cls; typeof c === 'function' && c !== Function.prototype; c = Object.getPrototypeOf(c)) {
    chain.push(c as object)
  }
  return chain
}

function computePlain(cls: AnyClass): boolean {
  if (!metadataMaps) return false
  for (const target of lineage(cls)) {
    if (metadataMaps.some((map) => map.has(target))) return false
    const prototype = (target as { prototype?: object }).prototype
    if (prototype && Object.prototype.hasOwnProperty.call(prototype, 'toJSON')) return false
  }
  return true
}

/** True when `cls` takes the short cut (no class-transformer metadata, no toJSON). */
export function isPlainClass(cls: AnyClass): boolean {
  let plain = plainClasses.get(cls)
  if (plain === undefined) {
    plain = SHORT_CUT_WORKS && computePlain(cls)
    plainClasses.set(cls, plain)
  }
  return plain
}

/** True when encoding `value` as JSON gives what class-transformer's instanceToPlain would. */
function jsonOnly(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'undefined':
      return true
    case 'object':
      break
    default:
      return false
  }
  if (value === null) return true
  if (depth >= MAX_DEPTH) return false
  const prototype = Object.getPrototypeOf(value) as unknown
  if (prototype === Array.prototype) {
    const array = value as unknown[]
    for (let i = 0; i < array.length; i++) {
      if (!(i in array) || !jsonOnly(array[i], depth + 1)) return false
    }
    return true
  }
  if (prototype !== Object.prototype) return false
  return fieldsJsonOnly(value as Record<string, unknown>, depth)
}

function fieldsJsonOnly(object: Record<string, unknown>, depth: number): boolean {
  for (const key in object) {
    if (!Object.prototype.hasOwnProperty.call(object, key)) continue
    if (SKIPPED.has(key) || !jsonOnly(object[key], depth + 1)) return false
  }
  return true
}

/**
 * The JSON text of an instance of a plain class, or undefined when the short cut does not apply
 * to this value (the caller then uses class-transformer).
 */
export function encodePlain(instance: object): string | undefined {
  const cls = (instance as { constructor?: unknown }).constructor
  if (typeof cls !== 'function' || !isPlainClass(cls as AnyClass)) return undefined
  // Own enumerable fields only: the instance's class is not a JSON value, its fields must be.
  if (!fieldsJsonOnly(instance as Record<string, unknown>, 0)) return undefined
  return JSON.stringify(instance)
}

/**
 * The instance itself when `JSON.stringify` of it gives what `instanceToPlain` and then
 * `JSON.stringify` would (a plain class with JSON values), so it can be embedded in a larger JSON
 * value as is; undefined otherwise.
 */
export function asPlainJson(instance: object): object | undefined {
  const cls = (instance as { constructor?: unknown }).constructor
  if (typeof cls !== 'function' || !isPlainClass(cls as AnyClass)) return undefined
  return fieldsJsonOnly(instance as Record<string, unknown>, 0) ? instance : undefined
}

/** A copy of parsed JSON, as class-transformer builds one for a field without a declared type. */
function copyJson(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value
  if (Array.isArray(value)) return value.map(copyJson)
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(value)) {
    if (SKIPPED_IN_PLAIN.has(key)) continue
    copy[key] = copyJson((value as Record<string, unknown>)[key])
  }
  return copy
}

/** A new instance of a plain class from parsed JSON, exactly as plainToInstance makes it. */
export function decodePlain<T>(cls: new () => T, plain: Record<string, unknown>): T {
  const instance = new cls() as Record<string, unknown>
  const prototype = (cls as unknown as { prototype: object }).prototype
  for (const key of Object.keys(plain)) {
    if (SKIPPED.has(key)) continue
    // Methods and read-only accessors of the class are not overwritten by data.
    const descriptor = Object.getOwnPropertyDescriptor(prototype, key)
    if ((descriptor && !descriptor.set) || instance[key] instanceof Function) continue
    instance[key] = copyJson(plain[key])
  }
  return instance as T
}

/**
 * The short cut reads class-transformer's metadata storage directly. It is on only if a type
 * declared through class-transformer's own decorator shows up there.
 */
const SHORT_CUT_WORKS = ((): boolean => {
  if (!metadataMaps) return false
  class Probe {
    at = new Date(0)
  }
  Type(() => Date)(Probe.prototype, 'at')
  return !computePlain(Probe)
})()
