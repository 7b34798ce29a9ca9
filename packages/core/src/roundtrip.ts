import { instanceToPlain, plainToInstance } from 'class-transformer'
import type { Class } from './metadata.js'
import { decodePlain, encodePlain, isPlainClass } from './plain.js'

/**
 * How deep the comparison follows nested values. Deeper nesting is reported as a difference
 * rather than compared, so a comparison always ends and never overflows the stack.
 */
const MAX_DEPTH = 100

/** Where a value and its decoded copy first differ, and how. */
export interface RoundTripDifference {
  /**
   * The field, from the top value: `address.city`, `lines[2].amount`, `limits.get("eur")`,
   * `tags.values()[0]`. Empty when the top value itself differs.
   */
  path: string
  /** What became what, in plain words, with the declaration that fixes it when there is one. */
  problem: string
}

/** The outcome of {@link roundTrip}: the encoding and the decoded copy, or the first difference. */
export type RoundTripResult<T> =
  | { ok: true; encoded: string; decoded: T }
  | { ok: false; difference: RoundTripDifference }

/** Encodes an event, command or aggregate state as esk stores it: class-transformer, then JSON. */
export function encodeInstance(value: object): string {
  return encodePlain(value) ?? JSON.stringify(instanceToPlain(value))
}

/** Decodes parsed JSON into an instance of the declared class, as replay and hydration do. */
export function decodeInstance<T>(cls: Class<T>, plain: unknown): T {
  if (typeof plain === 'object' && plain !== null && !Array.isArray(plain) && isPlainClass(cls as Class<object>)) {
    return decodePlain(cls as new () => T, plain as Record<string, unknown>)
  }
  return plainToInstance(cls, plain) as T
}

/**
 * Encodes `value` as esk stores it, decodes it back as replay does (with the declared class
 * `cls`), and compares the two deeply. A value that does not come back equal would make a
 * replayed state differ from the live one, so callers refuse it.
 */
export function roundTrip<T extends object>(value: T, cls: Class<T>): RoundTripResult<T> {
  let encoded: string
  try {
    encoded = encodeInstance(value)
  } catch (error) {
    return { ok: false, difference: unencodable(value) ?? { path: '', problem: `cannot be encoded: ${textOf(error)}` } }
  }
  let decoded: T
  try {
    decoded = decodeInstance(cls, JSON.parse(encoded) as unknown)
  } catch (error) {
    return { ok: false, difference: { path: '', problem: `cannot be decoded as a ${cls.name}: ${textOf(error)}` } }
  }
  const difference = firstDifference(value, decoded)
  return difference ? { ok: false, difference } : { ok: true, encoded, decoded }
}

/**
 * The first place where `decoded` differs from `original`, or undefined when they are equal.
 * Equal means: the same prototypes, the same own enumerable fields with equal values (a field
 * holding `undefined` equals a missing one), arrays of the same length, Dates at the same time,
 * Maps with the same keys, Sets with the same items in the same order. Numbers compare with
 * `===` (so `-0` equals `0`), except that NaN equals NaN. Functions are behaviour, not data:
 * two functions are equal.
 */
export function firstDifference(original: unknown, decoded: unknown): RoundTripDifference | undefined {
  return compare(original, decoded, '', 0)
}

/** `path: problem`, or the problem alone for the top value. */
export function describeDifference(difference: RoundTripDifference): string {
  return difference.path === '' ? difference.problem : `${difference.path}: ${difference.problem}`
}

function compare(a: unknown, b: unknown, path: string, depth: number): RoundTripDifference | undefined {
  if (a === b) return undefined
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return compareScalars(a, b, path)
  if (depth >= MAX_DEPTH) {
    return { path, problem: `is nested more than ${MAX_DEPTH} levels deep (a cycle?); keep state and events shallower` }
  }
  const prototype = Object.getPrototypeOf(a) as object | null
  if (prototype !== Object.getPrototypeOf(b)) return { path, problem: `${kind(a)} became ${kind(b)}${hint(a, b)}` }
  if (prototype === Object.prototype || prototype === null) return compareFields(a, b, path, depth)
  if (Array.isArray(a)) return compareArrays(a, b as unknown[], path, depth)
  if (a instanceof Date) return compareDates(a, b as Date, path)
  if (a instanceof Map) return compareMaps(a, b as Map<unknown, unknown>, path, depth)
  if (a instanceof Set) return compareArrays([...a], [...(b as Set<unknown>)], path, depth, '.values()')
  return compareFields(a, b, path, depth)
}

function compareScalars(a: unknown, b: unknown, path: string): RoundTripDifference | undefined {
  if (typeof a === 'function' && typeof b === 'function') return undefined
  if (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b)) return undefined
  const objects = (typeof a === 'object' && a !== null) || (typeof b === 'object' && b !== null)
  const before = objects ? kind(a) : show(a)
  const after = objects ? kind(b) : show(b)
  return { path, problem: `${before} became ${after}${hint(a, b)}` }
}

function compareFields(a: object, b: object, path: string, depth: number): RoundTripDifference | undefined {
  const left = a as Record<string, unknown>
  const right = b as Record<string, unknown>
  let shared = 0
  for (const key of Object.keys(left)) {
    const value = left[key]
    if (!Object.prototype.hasOwnProperty.call(right, key)) {
      if (value === undefined) continue
      return { path: join(path, key), problem: `${show(value)} became missing${missingHint(value)}` }
    }
    shared += 1
    const other = right[key]
    if (value === other) continue
    const difference = compare(value, other, join(path, key), depth + 1)
    if (difference) return difference
  }
  const keys = Object.keys(right)
  if (keys.length === shared) return undefined
  for (const key of keys) {
    if (Object.prototype.hasOwnProperty.call(left, key) || right[key] === undefined) continue
    return {
      path: join(path, key),
      problem: `a missing field became ${show(right[key])} (the class sets it when the JSON lacks it)`,
    }
  }
  return undefined
}

function compareArrays(
  a: readonly unknown[],
  b: readonly unknown[],
  path: string,
  depth: number,
  accessor = '',
): RoundTripDifference | undefined {
  const length = Math.min(a.length, b.length)
  for (let i = 0; i < length; i++) {
    if (a[i] === b[i]) continue
    const difference = compare(a[i], b[i], `${path}${accessor}[${i}]`, depth + 1)
    if (difference) return difference
  }
  if (a.length === b.length) return undefined
  const what = accessor ? 'a Set' : 'an array'
  return {
    path,
    problem:
      `${what} of ${a.length} items became one of ${b.length}` +
      (b.length < a.length ? ' (an empty slot in an array is dropped)' : ''),
  }
}

function compareDates(a: Date, b: Date, path: string): RoundTripDifference | undefined {
  const before = a.getTime()
  const after = b.getTime()
  if (before === after || (Number.isNaN(before) && Number.isNaN(after))) return undefined
  return { path, problem: `the Date ${dateText(a)} became ${dateText(b)}` }
}

function compareMaps(
  a: Map<unknown, unknown>,
  b: Map<unknown, unknown>,
  path: string,
  depth: number,
): RoundTripDifference | undefined {
  for (const [key, value] of a) {
    if (!b.has(key)) {
      const problem =
        typeof key !== 'string' && b.has(String(key))
          ? `the key ${show(key)} became the string ${JSON.stringify(String(key))} (JSON keys are strings: use string keys)`
          : `the key ${show(key)} became missing`
      return { path, problem }
    }
    const other = b.get(key)
    if (value === other) continue
    const difference = compare(value, other, `${path}.get(${show(key)})`, depth + 1)
    if (difference) return difference
  }
  if (a.size === b.size) return undefined
  for (const key of b.keys()) {
    if (!a.has(key)) return { path, problem: `the key ${show(key)} appeared` }
  }
  return undefined
}

/** The declaration or change that would let `a` survive, in parentheses, or nothing. */
function hint(a: unknown, b: unknown): string {
  if (typeof a === 'number' && b === null) return ' (JSON has no NaN or Infinity: store null, or a string)'
  if (a === undefined && b === null) return ' (JSON writes undefined in an array as null)'
  if (a === undefined) return ' (JSON drops undefined, so the class default applies)'
  if (typeof a !== 'object' || a === null) return declared(b)
  if (a instanceof Date) {
    if (b === null) return ' (an invalid Date: JSON writes it as null)'
    return ' (declare @Type(() => Date))'
  }
  if (a instanceof Map) return ' (declare @Type(() => Map); its keys must be strings)'
  if (a instanceof Set) {
    return ' (JSON has no Set: keep an array, or declare @Transform(({ value }) => new Set(value), { toClassOnly: true }))'
  }
  if (Buffer.isBuffer(a)) return ' (declare @Type(() => Buffer))'
  if (isPlain(a) || Array.isArray(a)) return declared(b)
  const name = nameOf(a)
  if (isNative(a)) return ` (JSON cannot carry a ${name}: store a plain value)`
  if (typeof b === 'object' && b !== null && !isPlain(b)) {
    return ` (the field declares @Type(() => ${nameOf(b)}); a subclass needs a discriminator)`
  }
  return ` (declare @Type(() => ${name}))`
}

/** When the decoded copy is an instance of a declared class the original was not. */
function declared(b: unknown): string {
  if (typeof b !== 'object' || b === null || isPlain(b) || Array.isArray(b)) return ''
  return ` (the field declares @Type(() => ${nameOf(b)}): store an instance of it)`
}

function missingHint(value: unknown): string {
  if (typeof value === 'function') return ' (JSON drops functions)'
  if (typeof value === 'symbol') return ' (JSON drops symbols)'
  const discriminator =
    typeof value === 'string' ? '; a discriminator property needs @Type(..., { keepDiscriminatorProperty: true })' : ''
  return ` (JSON does not carry it back, and the class does not set it${discriminator})`
}

/**
 * Explains why encoding threw: the first bigint or cycle in `value`, or undefined if neither is
 * there. Only runs after a failure, so it may be slow.
 */
function unencodable(value: unknown): RoundTripDifference | undefined {
  const ancestors: object[] = []
  const paths: string[] = []
  const visit = (v: unknown, path: string): RoundTripDifference | undefined => {
    if (typeof v === 'bigint') {
      return { path, problem: 'a bigint, which JSON cannot carry: store it as a string (or a number if it fits)' }
    }
    if (typeof v !== 'object' || v === null) return undefined
    const at = ancestors.indexOf(v)
    if (at >= 0) {
      const target = paths[at] === '' ? 'the value itself' : paths[at]
      return { path, problem: `refers back to ${target}: a cycle, which JSON cannot carry` }
    }
    if (ancestors.length >= MAX_DEPTH) return undefined
    ancestors.push(v)
    paths.push(path)
    let found: RoundTripDifference | undefined
    if (v instanceof Map) {
      for (const [key, item] of v) if ((found = visit(item, `${path}.get(${show(key)})`))) break
    } else if (v instanceof Set || Array.isArray(v)) {
      const accessor = v instanceof Set ? '.values()' : ''
      let i = 0
      for (const item of v) if ((found = visit(item, `${path}${accessor}[${i++}]`))) break
    } else {
      const record = v as Record<string, unknown>
      for (const key of Object.keys(record)) if ((found = visit(record[key], join(path, key)))) break
    }
    ancestors.pop()
    paths.pop()
    return found
  }
  return visit(value, '')
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/

function join(path: string, key: string): string {
  if (IDENTIFIER.test(key)) return path === '' ? key : `${path}.${key}`
  return `${path}[${JSON.stringify(key)}]`
}

/** A value for a message: primitives as written, objects by kind. */
function show(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value)
    case 'bigint':
      return `${value}n`
    case 'boolean':
    case 'undefined':
      return String(value)
    default:
      return kind(value)
  }
}

/** What a value is, for a message: `a Date`, `an instance of Address`, `NaN`, `a string`. */
function kind(value: unknown): string {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'undefined':
      return 'undefined'
    case 'number':
      return Number.isFinite(value) ? 'a number' : String(value)
    case 'string':
      return 'a string'
    case 'boolean':
      return 'a boolean'
    case 'bigint':
      return 'a bigint'
    case 'symbol':
      return 'a symbol'
    case 'function':
      return 'a function'
  }
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Date) return 'a Date'
  if (value instanceof Map) return 'a Map'
  if (value instanceof Set) return 'a Set'
  if (isPlain(value as object)) return 'a plain object'
  return `an instance of ${nameOf(value as object)}`
}

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value) as object | null
  return prototype === Object.prototype || prototype === null
}

function nameOf(value: object): string {
  const name = (value.constructor as { name?: unknown } | undefined)?.name
  return typeof name === 'string' && name !== '' ? name : 'an anonymous class'
}

/** True for instances of built-in classes (RegExp, Uint8Array, Error...), whose fields JSON does not see. */
function isNative(value: object): boolean {
  const ctor = value.constructor as unknown
  return typeof ctor === 'function' && /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(ctor))
}

function dateText(date: Date): string {
  return Number.isNaN(date.getTime()) ? 'an invalid Date' : date.toISOString()
}

function textOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
