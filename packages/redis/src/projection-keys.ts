/**
 * The keys of one projection. They all carry the hash tag `{<projection>}`, so Redis Cluster puts
 * a projection in one slot and one script may touch its metadata, positions and view at once
 * (a projection's data must fit on one node; split a large view into several projections):
 *
 * - `<prefix>projection{<name>}:meta` HASH: `live` (the id of the generation readers are served
 *   from), `next` (the last id given), `g:<id>` (JSON of each generation: id, version, purpose,
 *   createdAt), `u:<version>` (the generation being built for that version beside an older one);
 * - per generation `<id>`, under `<prefix>projection{<name>}:<id>:`
 *   - `pos` HASH lane (`<aggregate>:<partition>`) -> the next offset to apply;
 *   - `own` HASH lane -> the owner token of the consumer that may write it;
 *   - `dead` LIST of JSON parked events, oldest first;
 *   - `v:<key>` STRING (JSON), `h:<key>` HASH (field -> JSON), `z:<key>` ZSET: the view.
 */
export class ProjectionKeys {
  /** Generations and which one is live. */
  readonly meta: string
  private readonly base: string

  constructor(prefix: string, projection: string) {
    this.base = `${prefix}projection{${projection}}:`
    this.meta = `${this.base}meta`
  }

  /** Every key of a generation starts with this. */
  generation(id: number): string {
    return `${this.base}${id}:`
  }

  positions(id: number): string {
    return `${this.generation(id)}pos`
  }

  owners(id: number): string {
    return `${this.generation(id)}own`
  }

  deadLetters(id: number): string {
    return `${this.generation(id)}dead`
  }

  /** A JSON value of the view. */
  value(id: number, key: string): string {
    return `${this.generation(id)}v:${key}`
  }

  /** A hash of the view. */
  hash(id: number, key: string): string {
    return `${this.generation(id)}h:${key}`
  }

  /** A sorted set of the view. */
  sortedSet(id: number, key: string): string {
    return `${this.generation(id)}z:${key}`
  }

  /** A key of the view by kind: `v` a JSON value, `h` a hash, `z` a sorted set. */
  data(kind: 'v' | 'h' | 'z', id: number, key: string): string {
    return `${this.generation(id)}${kind}:${key}`
  }
}
