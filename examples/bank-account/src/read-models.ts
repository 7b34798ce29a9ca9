import { On, Projection, defineProjection, on, type EventMeta, type ViewReader, type ViewStore } from '@esk/core'
import { AccountOpened, MoneyDeposited, MoneyWithdrawn } from './domain.js'

/**
 * Accounts by owner, with their balances: a local projection, so the instances of the
 * application share its partitions and its view lives in the store (Redis with `--kafka`).
 *
 * - `owner:<owner>` sorted set of account ids, by the time they were opened;
 * - `balances` hash of account id -> balance.
 */
@Projection({ name: 'accounts-by-owner' })
export class AccountsByOwner {
  @On(AccountOpened)
  opened(event: AccountOpened, meta: EventMeta, store: ViewStore): void {
    store.sortedSet(`owner:${event.owner}`).add(meta.aggregateId, meta.timestamp ?? 0)
    store.hash('balances').set(meta.aggregateId, event.initialDeposit)
  }

  @On(MoneyDeposited)
  deposited(event: MoneyDeposited, meta: EventMeta, store: ViewStore): void {
    store.hash('balances').incr(meta.aggregateId, event.amount)
  }

  @On(MoneyWithdrawn)
  withdrawn(event: MoneyWithdrawn, meta: EventMeta, store: ViewStore): void {
    store.hash('balances').incr(meta.aggregateId, -event.amount)
  }
}

/** The UTC day of an event, `YYYY-MM-DD`. */
export function dayOf(meta: EventMeta): string {
  return new Date(meta.timestamp ?? 0).toISOString().slice(0, 10)
}

/**
 * Money in and out per day, over every account: a running total written by every partition's
 * events, so only with increments, which add atomically in the store.
 *
 * - `day:<YYYY-MM-DD>` hash with `in` and `out`;
 * - `days` sorted set of the days seen, by date.
 */
export const DailyTotals = defineProjection({
  name: 'daily-totals',
  handlers: [
    on(AccountOpened, (event, meta, store) => moved(store, meta, 'in', event.initialDeposit)),
    on(MoneyDeposited, (event, meta, store) => moved(store, meta, 'in', event.amount)),
    on(MoneyWithdrawn, (event, meta, store) => moved(store, meta, 'out', event.amount)),
  ],
})

function moved(store: ViewStore, meta: EventMeta, direction: 'in' | 'out', amount: number): void {
  const day = dayOf(meta)
  store.hash(`day:${day}`).incr(direction, amount)
  store.sortedSet('days').add(day, Date.parse(day))
}

/** Money in and out over every day of a {@link DailyTotals} view. */
export async function totalsOf(view: ViewReader): Promise<{ in: number; out: number }> {
  const total = { in: 0, out: 0 }
  for (const { member } of await view.sortedSet('days').range()) {
    const day = await view.hash<number>(`day:${member}`).all()
    total.in += day.in ?? 0
    total.out += day.out ?? 0
  }
  return total
}

/**
 * Account ids by owner in every instance's memory: a global projection, read from the first event
 * on each start, for callers that must find an owner's accounts before they send a command.
 */
export const OwnerLookup = defineProjection({
  name: 'owner-lookup',
  scope: 'global',
  handlers: [on(AccountOpened, (event, meta, store) => store.sortedSet(event.owner).add(meta.aggregateId, meta.offset))],
})

/** Every read model of the example, as `createEsk({ projections })` takes them. */
export const READ_MODELS = [AccountsByOwner, DailyTotals, OwnerLookup]
