import { FencedError } from '@esk/core'
import { sleep, type DeadLetter, type EventToAppend, type PartitionWriter } from '@esk/core/driver'
import type { Kafka, Producer } from 'kafkajs'
import { producerWithCoordinatorCache } from './coordinators.js'
import { Partitioners } from './kafkajs.js'
import { MAX_REQUEST_BYTES, chunksByBytes } from './requests.js'
import { isConcurrentTransactions, isFenced } from './errors.js'
import type { ResolvedKafkaOptions, StreamNames } from './options.js'

/**
 * The header every event record carries: its metadata as the UTF-8 JSON array
 * `[type, version, commandId, commandOffset]`. The record's key is the aggregate id. One header,
 * not one per field: kafkajs allocates a buffer for every header of every record.
 */
export const EVENT_HEADER = 'esk-event'

/**
 * Header names of event records written by earlier versions, one per field (values UTF-8 strings).
 * Still read, never written.
 */
export const EventHeaders = {
  type: 'esk-type',
  aggregateId: 'esk-aggregate-id',
  version: 'esk-version',
  commandId: 'esk-command-id',
  commandOffset: 'esk-command-offset',
} as const

/** The fields of an event record's {@link EVENT_HEADER}. */
export interface EventHeaderFields {
  type: string
  version: number
  commandId: string
  commandOffset: number
}

/** The value of the {@link EVENT_HEADER} of an event. */
export function encodeEventHeader(event: Pick<EventToAppend, 'type' | 'version' | 'commandId' | 'commandPosition'>): string {
  return JSON.stringify([event.type, event.version, event.commandId, event.commandPosition])
}

/** Reads an {@link EVENT_HEADER} value; undefined when it is not one. */
export function decodeEventHeader(text: string): EventHeaderFields | undefined {
  let fields: unknown
  try {
    fields = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!Array.isArray(fields) || fields.length !== 4) return undefined
  const [type, version, commandId, commandOffset] = fields as unknown[]
  if (typeof type !== 'string' || typeof commandId !== 'string') return undefined
  if (!Number.isSafeInteger(version) || !Number.isSafeInteger(commandOffset)) return undefined
  return { type, version: version as number, commandId, commandOffset: commandOffset as number }
}

/** Header names of every dead-letter record (its value is the command record as it was read). */
export const DeadLetterHeaders = {
  code: 'esk-reason-code',
  reason: 'esk-reason',
  commandOffset: 'esk-command-offset',
  aggregateId: 'esk-aggregate-id',
  commandId: 'esk-command-id',
} as const

/** How many times a transaction is restarted after CONCURRENT_TRANSACTIONS before giving up. */
const CONCURRENT_RETRIES = 30

/**
 * The writer of one command partition: a transactional producer whose id is fixed per
 * (group, command topic, partition). kafkajs has no KIP-447, so fencing relies on this: when a
 * new owner initialises the same transactional id, the broker bumps the epoch and every later
 * write of the old owner fails.
 */
export class TransactionalWriter implements PartitionWriter {
  private constructor(
    private readonly producer: Producer,
    private readonly names: StreamNames,
    private readonly partition: number,
    private readonly transactionRetryMs: number,
  ) {}

  /** The transactional id of a partition's writer. */
  static transactionalId(names: StreamNames, partition: number): string {
    return `${names.group}.${names.commands}.${partition}`
  }

  /**
   * Connects and fences: initialising the transactional id aborts whatever transaction a previous
   * owner left open, and makes that owner's later writes fail. Only then may recovery read the log.
   */
  static async open(kafka: Kafka, options: ResolvedKafkaOptions, names: StreamNames, partition: number): Promise<TransactionalWriter> {
    // A transaction asks kafkajs for its coordinators four times; they are remembered instead.
    const producer = producerWithCoordinatorCache(kafka, {
      transactionalId: TransactionalWriter.transactionalId(names, partition),
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: options.transactionTimeoutMs,
      allowAutoTopicCreation: false,
      // Every record names its partition; this only silences kafkajs's warning about its default.
      createPartitioner: Partitioners.DefaultPartitioner,
      // kafkajs retries CONCURRENT_TRANSACTIONS inside send() with this policy; its 300 ms default
      // would be paid by nearly every back-to-back transaction.
      retry: { initialRetryTime: Math.max(1, options.transactionRetryMs), maxRetryTime: 2_000, retries: 12, multiplier: 2 },
    })
    await producer.connect()
    try {
      const fence = await producer.transaction()
      await fence.abort()
    } catch (error) {
      await producer.disconnect().catch(() => undefined)
      if (isFenced(error)) throw fencedError(names, partition, error)
      throw error
    }
    return new TransactionalWriter(producer, names, partition, options.transactionRetryMs)
  }

  async commit(events: EventToAppend[], commandPosition: number, deadLetters: DeadLetter[] = []): Promise<number[]> {
    for (let attempt = 0; ; attempt++) {
      const transaction = await this.producer.transaction()
      try {
        const offsets: number[] = []
        // Several produce requests, one transaction: a request stays under the broker's size limit
        // however large the batch, and the events still become visible together or not at all.
        for (const chunk of chunksByBytes(events, (e) => Buffer.byteLength(e.payload), MAX_REQUEST_BYTES)) {
          const [metadata] = await transaction.send({
            topic: this.names.events,
            acks: -1,
            messages: chunk.map((event) => ({
              partition: this.partition,
              key: event.aggregateId,
              value: event.payload,
              headers: { ...event.headers, [EVENT_HEADER]: encodeEventHeader(event) },
            })),
          })
          // One send to one partition is one record batch: its offsets are consecutive.
          const base = Number(metadata?.baseOffset)
          if (!Number.isSafeInteger(base)) throw new Error(`no base offset in produce response: ${JSON.stringify(metadata)}`)
          chunk.forEach((_, i) => offsets.push(base + i))
        }
        if (deadLetters.length > 0) {
          for (const chunk of chunksByBytes(deadLetters, (d) => Buffer.byteLength(d.value), MAX_REQUEST_BYTES)) {
            await transaction.send({
              topic: this.names.deadLetters,
              acks: -1,
              messages: chunk.map((d) => ({
                partition: this.partition,
                key: d.aggregateId ?? null,
                value: d.value,
                headers: {
                  [DeadLetterHeaders.code]: d.reason.code,
                  [DeadLetterHeaders.reason]: d.reason.message,
                  [DeadLetterHeaders.commandOffset]: String(d.position),
                  ...(d.aggregateId !== undefined && { [DeadLetterHeaders.aggregateId]: d.aggregateId }),
                  ...(d.commandId !== undefined && { [DeadLetterHeaders.commandId]: d.commandId }),
                },
              })),
            })
          }
        }
        await transaction.sendOffsets({
          consumerGroupId: this.names.group,
          topics: [
            {
              topic: this.names.commands,
              partitions: [{ partition: this.partition, offset: String(commandPosition + 1) }],
            },
          ],
        })
        await transaction.commit()
        return offsets
      } catch (error) {
        await transaction.abort().catch(() => undefined)
        if (isFenced(error)) throw fencedError(this.names, this.partition, error)
        // Raised before anything was added (sendOffsets first): the previous commit is still
        // completing on the coordinator, so starting over shortly is safe.
        if (isConcurrentTransactions(error) && attempt < CONCURRENT_RETRIES) {
          await sleep(Math.min(this.transactionRetryMs * 2 ** attempt, 100))
          continue
        }
        throw error
      }
    }
  }

  /** Disconnects the producer. A transaction still open on the broker is aborted by the next owner or by its timeout. */
  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => undefined)
  }
}

function fencedError(names: StreamNames, partition: number, cause: unknown): FencedError {
  return new FencedError(
    `the writer of ${names.commands}[${partition}] was fenced by a newer owner of that partition; ` +
      `this process stops writing it (nothing more reaches the log or the snapshots)`,
    { topic: names.commands, partition },
    cause,
  )
}
