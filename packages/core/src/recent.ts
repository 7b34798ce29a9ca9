/*
 * Bounded collections of recent keys that never delete a key only to add it again.
 *
 * V8 leaves a deleted entry of a Map or Set in place until the table is next rebuilt, which
 * happens once deletions fill its spare room: thousands of operations later in a table of
 * thousands of keys. Until then a lookup walks past every deleted entry in its key's bucket, and
 * iteration from the start walks past every deleted entry at the front. So the usual ways of
 * keeping "the last n keys" in a Map slow down with its size:
 * - moving a key to the end (delete, then set) leaves one dead copy of it per move: a key moved
 *   on every call makes each call walk all its dead copies (25 µs a call in a map of 10,000);
 * - dropping the oldest key with `keys().next()` walks past every key dropped before it (5 µs a
 *   call in a set of 10,000).
 */

/**
 * A map that remembers at least the last `capacity` keys set, and at most twice as many: entries
 * go in a current generation, which becomes the previous one (and the previous one is dropped)
 * when it holds `capacity` keys. Setting a key does not move it within a generation.
 */
export class RecentMap<K, V> {
  private current = new Map<K, V>()
  private previous = new Map<K, V>()

  constructor(private readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`capacity must be a positive integer, got ${capacity}`)
  }

  get(key: K): V | undefined {
    return this.current.has(key) ? this.current.get(key) : this.previous.get(key)
  }

  set(key: K, value: V): void {
    this.current.set(key, value)
    if (this.current.size >= this.capacity) {
      this.previous = this.current
      this.current = new Map()
    }
  }

  /** Keys held, the two generations together (a key in both counted once). */
  get size(): number {
    let size = this.current.size
    for (const key of this.previous.keys()) if (!this.current.has(key)) size++
    return size
  }
}

/**
 * A map kept in order of first addition, trimmed from its oldest end, as a Redis hash of values
 * beside a list of their keys is: adding a key it holds changes nothing (the first value wins).
 * The order is kept in an array beside the map, so dropping the oldest key is one lookup,
 * whatever was dropped before.
 */
export class FifoMap<K, V> {
  private readonly entries = new Map<K, V>()
  private order: K[] = []
  /** Index in `order` of the oldest key held. */
  private head = 0

  has(key: K): boolean {
    return this.entries.has(key)
  }

  get(key: K): V | undefined {
    return this.entries.get(key)
  }

  /** Adds `key` as the newest unless held; returns false when it was held. */
  add(key: K, value: V): boolean {
    if (this.entries.has(key)) return false
    this.entries.set(key, value)
    this.order.push(key)
    return true
  }

  /** Drops the oldest keys beyond `capacity`. */
  trim(capacity: number): void {
    while (this.entries.size > capacity) this.entries.delete(this.order[this.head++]!)
    // The dropped front of the array goes once it is as long as what is held.
    if (this.head > 1024 && this.head >= this.order.length - this.head) {
      this.order = this.order.slice(this.head)
      this.head = 0
    }
  }

  /** Keys, oldest first. */
  keys(): K[] {
    return this.order.slice(this.head)
  }

  clear(): void {
    this.entries.clear()
    this.order = []
    this.head = 0
  }

  get size(): number {
    return this.entries.size
  }
}

/** An entry of an {@link LruMap}, in its list from least to most recently used. */
interface Slot<K, V> {
  readonly key: K
  value: V | undefined
  older: Slot<K, V> | undefined
  newer: Slot<K, V> | undefined
}

/**
 * A map kept in order of use, least recently used first, for a cache trimmed from that end. Using
 * a key moves its entry in a list of its own, not in the map, so a key used on every call costs
 * the same as any other.
 */
export class LruMap<K, V> {
  private readonly slots = new Map<K, Slot<K, V>>()
  private oldest: Slot<K, V> | undefined
  private newest: Slot<K, V> | undefined

  /** Entries, those taken out included until they are set again or trimmed. */
  get size(): number {
    return this.slots.size
  }

  /** The value of `key`, without counting it as a use. */
  get(key: K): V | undefined {
    return this.slots.get(key)?.value
  }

  /**
   * Takes the value of `key` out: the entry stays where it is, empty, until it is set again (as
   * the most recently used) or trimmed.
   */
  take(key: K): V | undefined {
    const slot = this.slots.get(key)
    if (!slot) return undefined
    const { value } = slot
    slot.value = undefined
    return value
  }

  /** Sets `key` as the most recently used. */
  set(key: K, value: V): void {
    let slot = this.slots.get(key)
    if (slot) {
      slot.value = value
      if (slot === this.newest) return
      this.unlink(slot)
    } else {
      slot = { key, value, older: undefined, newer: undefined }
      this.slots.set(key, slot)
    }
    slot.older = this.newest
    if (this.newest) this.newest.newer = slot
    else this.oldest = slot
    this.newest = slot
  }

  /** Drops the least recently used entries beyond `capacity`. */
  trim(capacity: number): void {
    while (this.slots.size > capacity && this.oldest) {
      const slot = this.oldest
      this.unlink(slot)
      this.slots.delete(slot.key)
    }
  }

  clear(): void {
    this.slots.clear()
    this.oldest = this.newest = undefined
  }

  /** Keys, least recently used first. */
  *keys(): IterableIterator<K> {
    for (let slot = this.oldest; slot; slot = slot.newer) yield slot.key
  }

  private unlink(slot: Slot<K, V>): void {
    if (slot.older) slot.older.newer = slot.newer
    else this.oldest = slot.newer
    if (slot.newer) slot.newer.older = slot.older
    else this.newest = slot.older
    slot.older = slot.newer = undefined
  }
}
