/**
 * What the hand-written baselines put on the wire: commands on `<prefix>commands`, events on
 * `<prefix>events` (both partitioned like esk, by `partitionFor`), state in one Redis hash per
 * partition, replies over Redis pub/sub to the waiting client's own channel.
 */

/** A command as a client sends it. */
export interface BaselineCommand {
  /** Command id, unique per client call. */
  c: string
  kind: 'create' | 'deposit'
  amount: number
  note: string
  /** The client's reply address. */
  r: string
}

/** A reply as a processor publishes it. */
export interface BaselineReply {
  c: string
  ok: boolean
  version: number
}

/** An aggregate's state as a processor keeps it. */
export interface BaselineState {
  version: number
  balance: number
  deposits: number
}

/** Topic and key names of a baseline run. */
export function baselineNames(prefix: string) {
  return {
    commands: `${prefix}commands`,
    events: `${prefix}events`,
    group: `${prefix}processor`,
    state: (partition: number) => `${prefix}{${partition}}:state`,
    replies: (address: string) => `${prefix}replies:${address}`,
  }
}
