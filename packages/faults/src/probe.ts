import { randomUUID } from 'node:crypto'
import type { Esk } from '@esk/core'
import { classify } from './history.js'
import { Account, OpenAccount } from './domain.js'
import type { AttemptResult, HistoryWriter } from './history.js'
import { partitionOf } from './model.js'

/** What one liveness probe round sends and where it records it. */
export interface ProbeRound {
  partitions: number
  /** Names the round's fresh accounts (`<idPrefix>-<partition>-<n>`); unique per round. */
  idPrefix: string
  /** The `client` of the recorded attempts. */
  client: string
  timeoutMs: number
  history: HistoryWriter
}

/**
 * Sends one new command to every partition (an account opened under a fresh id that hashes
 * there), retrying with the same command id, until each is answered (accepted or refused) or
 * `timeoutMs` passes. Returns, per partition, when it answered (ms since the epoch). Every attempt
 * goes into the history, so the checker holds the probes to the same rules as the load.
 */
export async function probePartitions(app: Esk, round: ProbeRound): Promise<Array<number | undefined>> {
  const accounts = app.repository(Account)
  const deadline = Date.now() + round.timeoutMs
  return Promise.all(
    Array.from({ length: round.partitions }, async (_, p) => {
      let id = ''
      for (let n = 0; ; n++) {
        id = `${round.idPrefix}-${p}-${n}`
        if (partitionOf(id, round.partitions) === p) break
      }
      const commandId = randomUUID()
      const payload = { type: 'faults.OpenAccount', owner: id, initialDeposit: 0, overdraftLimit: 0 }
      while (Date.now() < deadline) {
        const start = Date.now()
        let result: AttemptResult
        try {
          const r = await accounts.save(Object.assign(new OpenAccount(), { owner: id, initialDeposit: 0, overdraftLimit: 0 }), {
            id,
            commandId,
            timeoutMs: Math.max(1_000, Math.min(5_000, deadline - Date.now())),
          })
          result = { kind: 'accepted', version: r.version }
        } catch (error) {
          result = classify(error)
        }
        round.history.write({ client: round.client, op: 'save', aggregateId: id, commandId, payload, start, end: Date.now(), result })
        if (result.kind === 'accepted' || result.kind === 'refused') return Date.now()
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      return undefined
    }),
  )
}
