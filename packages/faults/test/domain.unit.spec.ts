import { createEsk } from '@esk/core'
import { seededRandom } from '@esk/testing'
import { describe, expect, it } from 'vitest'
import { classify } from '../src/history.js'
import { between } from '../src/config.js'
import { Account, commandClasses } from '../src/domain.js'
import { apply, CommandType, decide, type AccountState, type ModelCommand } from '../src/model.js'

// The checker's model and the esk domain must decide alike, or the checker would report (or miss)
// violations that are the model's own. Both get the same random commands; every answer and every
// final state must agree. Runs on the embedded driver: this tests the domain, not a driver.
describe('the esk domain and the checker model', () => {
  it('decide every command alike and end in the same states', async () => {
    const app = await createEsk({ aggregates: [Account], partitions: 2 })
    const accounts = app.repository(Account)
    const random = seededRandom(42)
    const model = new Map<string, { state: AccountState; version: number }>()
    const ids = ['a', 'b', 'c', 'd']
    try {
      for (let i = 0; i < 300; i++) {
        const id = ids[between(random, 0, ids.length - 1)]!
        const roll = random()
        const current = model.get(id)
        const expectedVersion = roll < 0.2 ? between(random, 0, 4) + (current?.version ?? 0) - 2 : undefined
        const [type, payload]: [string, Record<string, unknown>] =
          roll < 0.15 || !current
            ? [CommandType.Open, { owner: id, initialDeposit: between(random, 0, 50), overdraftLimit: between(random, 0, 30) }]
            : roll < 0.4
              ? [CommandType.Deposit, { amount: between(random, 0, 40) }]
              : roll < 0.5
                ? [CommandType.DepositMany, { amounts: [between(random, 1, 9), between(random, 0, 9)] }]
                : roll < 0.85
                  ? [CommandType.Withdraw, { amount: between(random, 1, 80) }]
                  : [CommandType.ChangeLimit, { limit: between(random, 0, 40) }]
        const kind = type === CommandType.Open ? 'create' : 'update'
        const command: ModelCommand = { type, payload, kind, ...(expectedVersion !== undefined && expectedVersion >= 0 && { expectedVersion }) }
        const decision = decide(current?.state, current?.version ?? 0, command)
        const instance = Object.assign(new (commandClasses[type as keyof typeof commandClasses] as new () => object)(), payload)
        let answer
        try {
          const r = kind === 'create' ? await accounts.save(instance, { id }) : await accounts.update(id, instance, command.expectedVersion === undefined ? {} : { expectedVersion: command.expectedVersion })
          answer = { kind: 'accepted', version: r.version }
        } catch (error) {
          answer = classify(error)
        }
        if (decision.accepted) {
          let state = current?.state
          for (const e of decision.events) state = (apply(state, e) as { state: AccountState }).state
          const version = (current?.version ?? 0) + decision.events.length
          model.set(id, { state: state!, version })
          expect(answer, `${type} ${JSON.stringify(command)}`).toEqual({ kind: 'accepted', version })
        } else {
          expect(answer, `${type} ${JSON.stringify(command)}`).toMatchObject({ kind: 'refused', code: decision.code })
        }
      }
      for (const [id, m] of model) {
        const found = await accounts.get(id)
        expect(found.version).toBe(m.version)
        expect({ ...found.state }).toEqual(m.state)
      }
    } finally {
      await app.close()
    }
  })
})
