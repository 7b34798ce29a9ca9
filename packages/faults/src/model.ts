/**
 * The checker's own model of the accounts domain: type names, a reducer and a decision function,
 * written without any esk code so that a bug in esk's fold or dispatch cannot hide itself. It must
 * agree with `domain.ts`, which is the same domain written with esk's decorators; the unit tests
 * run both on the same commands.
 */

/** Persisted command type names. */
export const CommandType = {
  Open: 'faults.OpenAccount',
  Deposit: 'faults.Deposit',
  DepositMany: 'faults.DepositMany',
  Withdraw: 'faults.Withdraw',
  ChangeLimit: 'faults.ChangeOverdraftLimit',
} as const

/** Persisted event type names. */
export const EventType = {
  Opened: 'faults.AccountOpened',
  Deposited: 'faults.MoneyDeposited',
  Withdrawn: 'faults.MoneyWithdrawn',
  LimitChanged: 'faults.OverdraftLimitChanged',
} as const

/** Refusal reasons the domain gives through `CommandRejected`. */
export const Reason = {
  InsufficientFunds: 'INSUFFICIENT_FUNDS',
  LimitBelowDebt: 'LIMIT_BELOW_DEBT',
} as const

/** An account as the log implies it. */
export interface AccountState {
  owner: string
  balance: number
  overdraftLimit: number
}

/** A command as the checker sees it: its type, fields, and how it was sent. */
export interface ModelCommand {
  type: string
  payload: Record<string, unknown>
  kind: 'create' | 'update'
  expectedVersion?: number
}

/** An event as the checker sees it. */
export interface ModelEvent {
  type: string
  payload: Record<string, unknown>
}

/** What the domain decides for a command on a state. */
export type Decision = { accepted: true; events: ModelEvent[] } | { accepted: false; code: string; reason?: string }

const refuse = (code: string, reason?: string): Decision => ({ accepted: false, code, ...(reason && { reason }) })

/** True for a whole number of cents at least `min`. */
export function isAmount(value: unknown, min: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= min
}

/** Validation the domain does before a command is sent; undefined when valid. */
export function validate(command: Pick<ModelCommand, 'type' | 'payload'>): string | undefined {
  const p = command.payload
  switch (command.type) {
    case CommandType.Open:
      if (typeof p.owner !== 'string' || p.owner === '') return 'owner is required'
      if (!isAmount(p.initialDeposit, 0)) return 'initialDeposit must be a whole number >= 0'
      if (!isAmount(p.overdraftLimit, 0)) return 'overdraftLimit must be a whole number >= 0'
      return undefined
    case CommandType.Deposit:
    case CommandType.Withdraw:
      return isAmount(p.amount, 1) ? undefined : 'amount must be a whole number > 0'
    case CommandType.DepositMany:
      return Array.isArray(p.amounts) && p.amounts.length > 0 && p.amounts.length <= 5 && p.amounts.every((a) => isAmount(a, 1))
        ? undefined
        : 'amounts must list 1 to 5 whole numbers > 0'
    case CommandType.ChangeLimit:
      return isAmount(p.limit, 0) ? undefined : 'limit must be a whole number >= 0'
    default:
      return `unknown command type ${command.type}`
  }
}

/**
 * The decision for `command` on `state` (undefined: the account does not exist) at `version`,
 * in the order esk checks: validation, existence, expected version, then the handler.
 */
export function decide(state: AccountState | undefined, version: number, command: ModelCommand): Decision {
  const problem = validate(command)
  if (problem) return refuse('ESK_INVALID_COMMAND', problem)
  if (command.kind === 'create') {
    if (state) return refuse('ESK_AGGREGATE_EXISTS')
  } else if (!state) {
    return refuse('ESK_AGGREGATE_NOT_FOUND')
  }
  if (command.expectedVersion !== undefined && command.expectedVersion !== version) return refuse('ESK_VERSION_CONFLICT')
  const p = command.payload
  switch (command.type) {
    case CommandType.Open:
      if (command.kind !== 'create') return refuse('ESK_UNKNOWN_COMMAND')
      return {
        accepted: true,
        events: [
          { type: EventType.Opened, payload: { owner: p.owner, initialDeposit: p.initialDeposit, overdraftLimit: p.overdraftLimit } },
        ],
      }
    case CommandType.Deposit:
      return { accepted: true, events: [{ type: EventType.Deposited, payload: { amount: p.amount } }] }
    case CommandType.DepositMany:
      return { accepted: true, events: (p.amounts as number[]).map((amount) => ({ type: EventType.Deposited, payload: { amount } })) }
    case CommandType.Withdraw: {
      const s = state as AccountState
      if ((p.amount as number) > s.balance + s.overdraftLimit) return refuse('ESK_COMMAND_REJECTED', Reason.InsufficientFunds)
      return { accepted: true, events: [{ type: EventType.Withdrawn, payload: { amount: p.amount } }] }
    }
    case CommandType.ChangeLimit: {
      const s = state as AccountState
      if (s.balance < -(p.limit as number)) return refuse('ESK_COMMAND_REJECTED', Reason.LimitBelowDebt)
      return { accepted: true, events: [{ type: EventType.LimitChanged, payload: { limit: p.limit } }] }
    }
    default:
      return refuse('ESK_UNKNOWN_COMMAND')
  }
}

/** How many events an accepted command of this shape records (the domain always records at least one). */
export function eventCount(command: Pick<ModelCommand, 'type' | 'payload'>): number {
  if (command.type === CommandType.DepositMany && Array.isArray(command.payload.amounts)) return command.payload.amounts.length
  return 1
}

/**
 * Applies one event. Returns the new state, or a problem when the event cannot apply (unknown
 * type, a creation of an existing account, a change of a missing one, a malformed payload).
 */
export function apply(state: AccountState | undefined, event: ModelEvent): { state: AccountState } | { problem: string } {
  const p = event.payload
  if (event.type === EventType.Opened) {
    if (state) return { problem: 'a second AccountOpened for an existing account' }
    if (typeof p.owner !== 'string' || !isAmount(p.initialDeposit, 0) || !isAmount(p.overdraftLimit, 0)) {
      return { problem: `malformed AccountOpened ${JSON.stringify(p)}` }
    }
    return { state: { owner: p.owner, balance: p.initialDeposit, overdraftLimit: p.overdraftLimit } }
  }
  if (!state) return { problem: `${event.type} before the account was opened` }
  switch (event.type) {
    case EventType.Deposited:
      if (!isAmount(p.amount, 1)) return { problem: `malformed MoneyDeposited ${JSON.stringify(p)}` }
      return { state: { ...state, balance: state.balance + p.amount } }
    case EventType.Withdrawn:
      if (!isAmount(p.amount, 1)) return { problem: `malformed MoneyWithdrawn ${JSON.stringify(p)}` }
      return { state: { ...state, balance: state.balance - p.amount } }
    case EventType.LimitChanged:
      if (!isAmount(p.limit, 0)) return { problem: `malformed OverdraftLimitChanged ${JSON.stringify(p)}` }
      return { state: { ...state, overdraftLimit: p.limit } }
    default:
      return { problem: `unknown event type ${event.type}` }
  }
}

/** The domain's invariant: the balance never goes below minus the overdraft limit. */
export function invariantHolds(state: AccountState): boolean {
  return state.balance >= -state.overdraftLimit
}

/**
 * The partition of an aggregate id: FNV-1a (32 bit) of its UTF-8 bytes modulo the partition
 * count, as esk documents it (written here again so the checker does not use esk's code).
 */
export function partitionOf(aggregateId: string, partitions: number): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(aggregateId, 'utf8')) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0
  }
  return hash % partitions
}
