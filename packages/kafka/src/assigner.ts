import type { PartitionAssigner } from 'kafkajs'
import { AssignerProtocol } from './kafkajs.js'

/** Name of the sticky assignment protocol in the group's JoinGroup requests. */
export const STICKY_PROTOCOL = 'EskSticky'

/** One group member as the assignment sees it: its id and the partitions it held until now. */
export interface StickyMember {
  id: string
  /** Partitions this member owned before the rebalance (from its JoinGroup user data). */
  previous: readonly number[]
  /** Group generation in which it was given them; the newer claim wins a partition claimed twice. */
  generation?: number
}

/**
 * Assigns `partitions` to `members` so that every member gets the same number, give or take one,
 * and as few partitions as possible change owner: a member keeps what it held up to its share,
 * and only the rest is handed out, lowest partition to the lowest member id first. A partition
 * claimed by two members (one was out of the group for a while and has not heard that it lost
 * it) goes to the claim of the newer generation, then to the lower member id. The result depends
 * only on the arguments.
 */
export function stickyAssignment(partitions: readonly number[], members: readonly StickyMember[]): Map<string, number[]> {
  const result = new Map<string, number[]>()
  if (members.length === 0) return result
  const sorted = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const exists = new Set(partitions)
  const claimed = new Set<number>()
  const claims = new Map<string, number[]>()
  const byGeneration = [...sorted].sort((a, b) => (b.generation ?? -1) - (a.generation ?? -1))
  for (const member of byGeneration) {
    const own = [...new Set(member.previous)].filter((p) => exists.has(p) && !claimed.has(p)).sort((a, b) => a - b)
    own.forEach((p) => claimed.add(p))
    claims.set(member.id, own)
    result.set(member.id, [])
  }

  // Shares: everyone gets `base`; the `extra` members that already hold the most get one more, so
  // that fewer of their partitions have to move.
  const base = Math.floor(partitions.length / sorted.length)
  const extra = partitions.length % sorted.length
  const byClaims = [...sorted].sort((a, b) => claims.get(b.id)!.length - claims.get(a.id)!.length)
  const share = new Map(byClaims.map((m, i) => [m.id, base + (i < extra ? 1 : 0)]))

  const kept = new Set<number>()
  for (const member of sorted) {
    const keep = claims.get(member.id)!.slice(0, share.get(member.id))
    keep.forEach((p) => kept.add(p))
    result.get(member.id)!.push(...keep)
  }
  const free = [...exists].filter((p) => !kept.has(p)).sort((a, b) => a - b)
  for (const member of sorted) {
    const mine = result.get(member.id)!
    while (mine.length < share.get(member.id)! && free.length > 0) mine.push(free.shift()!)
    mine.sort((a, b) => a - b)
  }
  return result
}

/** What a member says about itself when it joins: the partitions it owns, per topic, and since when. */
export interface StickyUserData {
  owned: Record<string, number[]>
  /** The group generation of the assignment that gave it those partitions (-1 if unknown). */
  generation: number
}

function decodeUserData(data: Buffer | undefined): StickyUserData {
  try {
    const parsed = JSON.parse(data?.toString('utf8') || '{}') as Partial<StickyUserData>
    const owned: Record<string, number[]> = {}
    for (const [topic, list] of Object.entries(parsed.owned ?? {})) {
      if (Array.isArray(list)) owned[topic] = list.filter((p): p is number => Number.isInteger(p))
    }
    return { owned, generation: Number.isInteger(parsed.generation) ? parsed.generation! : -1 }
  } catch {
    // A member of another version may say something else: it then claims nothing.
    return { owned: {}, generation: -1 }
  }
}

/**
 * A kafkajs partition assigner that keeps partitions where they are when members come and go
 * (see {@link stickyAssignment}). Each member sends what it owns, from `owned()`, in its
 * JoinGroup user data; the leader reads every member's and assigns each topic on its own.
 */
export function stickyAssigner(owned: () => StickyUserData): PartitionAssigner {
  return ({ cluster }) => ({
    name: STICKY_PROTOCOL,
    version: 1,
    async assign({ members, topics }) {
      const decoded = members.map((m) => {
        const metadata = AssignerProtocol.MemberMetadata.decode(m.memberMetadata)
        return { id: m.memberId, topics: new Set(metadata?.topics ?? []), ...decodeUserData(metadata?.userData) }
      })
      const assignment = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]))
      for (const topic of topics) {
        const partitions = cluster.findTopicPartitionMetadata(topic).map((p) => p.partitionId)
        const subscribed = decoded.filter((m) => m.topics.has(topic))
        for (const [id, list] of stickyAssignment(partitions, subscribed.map((m) => ({ id: m.id, previous: m.owned[topic] ?? [], generation: m.generation })))) {
          assignment.get(id)![topic] = list
        }
      }
      return [...assignment].map(([memberId, topicPartitions]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: topicPartitions, userData: Buffer.alloc(0) }),
      }))
    },
    protocol({ topics }) {
      const userData: StickyUserData = owned()
      return {
        name: STICKY_PROTOCOL,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.from(JSON.stringify(userData)) }),
      }
    },
  })
}
