import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'

// kafkajs 2.2.4 groups a request's messages by partition before it encodes them, and copied a
// partition's list for every message it added: n²/2 copies for a request of n messages to one
// partition, which is every request esk makes (a client's commands, a processor's events). The
// workspace installs it with packages/kafka/patches/kafkajs@2.2.4.patch; these tests fail without
// the patch (the second) and would fail with a patch that grouped differently (the first).
// docs/operations.md ("kafkajs's grouping of messages") says what it costs and how to apply it.

interface Message {
  partition: number
  value: string
}

type Group = (request: {
  topic: string
  partitionMetadata: Array<{ partitionId: number }>
  messages: Message[]
  partitioner: (args: { message: Message }) => number
}) => Record<string, Message[]>

const require = createRequire(import.meta.url)
const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as Group
const partitionMetadata = [0, 1, 2].map((partitionId) => ({ partitionId }))
const partitioner = ({ message }: { message: Message }): number => message.partition

function messages(count: number, partitions: number): Message[] {
  return Array.from({ length: count }, (_, i) => ({ partition: i % partitions, value: `m${i}` }))
}

describe("kafkajs's grouping of a request's messages", () => {
  it('puts each message in its partition\'s list, in the order given', () => {
    const given = messages(7, 3)
    const grouped = group({ topic: 't', partitionMetadata, messages: given, partitioner })
    expect(grouped).toEqual({
      0: [given[0], given[3], given[6]],
      1: [given[1], given[4]],
      2: [given[2], given[5]],
    })
    expect(group({ topic: 't', partitionMetadata: [], messages: given, partitioner })).toEqual({})
  })

  it("appends to a partition's list instead of copying it for every message", () => {
    const given = messages(2_000, 1)
    // Copying an array by spreading it iterates it: count the iterations while grouping.
    const iterate = Array.prototype[Symbol.iterator]
    let iterations = 0
    Array.prototype[Symbol.iterator] = function (this: unknown[]) {
      iterations += 1
      return iterate.call(this)
    } as typeof iterate
    let grouped: Record<string, Message[]>
    try {
      grouped = group({ topic: 't', partitionMetadata, messages: given, partitioner })
    } finally {
      Array.prototype[Symbol.iterator] = iterate
    }
    expect(grouped[0]).toHaveLength(2_000)
    // Once over the request's messages at most; the unpatched grouping iterated 2,000 times.
    expect(iterations).toBeLessThanOrEqual(1)
  })
})
