import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { isDeepStrictEqual } from 'node:util'
import {
  ErrorCode,
  createEsk,
  hasCode,
  type Esk,
  type EskError,
  type EskOptions,
  type RecoveryProgress,
  type Repository,
} from '@esk/core'
import { Account, Deposit, OpenAccount, Reason, Withdraw } from './domain.js'
import { embeddedDriver, type DriverFactory } from './driver.js'
import { AccountsByOwner, DailyTotals, OwnerLookup, READ_MODELS, totalsOf } from './read-models.js'

/** Where {@link run} writes its narrative, one line per call. */
export type Log = (line: string) => void

/** Options of {@link run}. */
export interface RunOptions {
  /** Builds the driver of each application start. Default: the embedded driver over one in-memory backend. */
  driver?: DriverFactory
  /**
   * Suffix of the account and command ids, so that a run never meets the data of an earlier one
   * on a persistent driver. Default: 8 random hex digits.
   */
  runId?: string
}

/** An account's balance and the version it was read at. */
export interface Balance {
  balance: number
  version: number
}

/** The two accounts of the narrative, by owner. */
export interface Accounts<T> {
  ada: T
  bob: T
}

/** A refused command as the caller saw it. */
export interface Refusal {
  code: string
  reason?: string
  problems?: string[]
}

/** What the narrative observed; every value has already been checked against what it should be. */
export interface RunResult {
  ids: Accounts<string>
  /** Balances when the first application closes. */
  live: Accounts<Balance>
  /** Balances read after a restart on the same data. */
  afterRestart: Accounts<Balance>
  /** Balances read after a start that replayed every event from offset 0. */
  afterRebuild: Accounts<Balance>
  /** Versions returned by the first and the repeated send of one command id. */
  duplicate: { first: number; second: number }
  refusals: {
    overdraft: Refusal
    staleVersion: Refusal
    invalidDeposit: Refusal
    invalidOpen: Refusal
  }
  /** Events replayed when each application started, summed over partitions. */
  replayed: { restart: number; rebuild: number }
  /** What the read models showed: live, after the restart, and after a blue/green rebuild of one. */
  readModels: {
    /** Balances in accounts-by-owner, read right after the last write (read your writes). */
    balances: Accounts<number>
    /** Whether each owner's account is listed under the owner, in the view and in the global lookup. */
    listed: { byOwner: boolean; lookup: boolean }
    /** Money in and out during this run, from the daily totals. */
    moved: { in: number; out: number }
    /** The same after the restart: positions resumed, nothing applied twice. */
    afterRestart: { balances: Accounts<number>; moved: { in: number; out: number } }
    /** Balances after accounts-by-owner was rebuilt beside the live view and swapped in. */
    afterRebuild: Accounts<number>
  }
}

/** Thrown when the narrative does not go as it says: the example doubles as a smoke test. */
export class ExpectationFailed extends Error {
  override name = 'ExpectationFailed'
}

/** Events this narrative records: Ada open + 3 deposits, Bob open + deposit + withdrawal. */
const EVENTS_WRITTEN = 7

/** Money this narrative moves: in (Ada 100 + 50 + 25 + 10, Bob 20 + 30) and out (Bob 80). */
const MONEY_MOVED = { in: 235, out: 80 }

/** How long a restarted application may take to recover all its partitions. */
const RECOVERY_TIMEOUT_MS = 30_000

/**
 * Runs the bank-account story step by step, printing what happens through `log`: accounts opened,
 * deposits, an overdraft refused, a repeated command applied once, a stale expectedVersion, invalid
 * commands, read models (with a read of one's own writes), a restart recovered from snapshots, and
 * a rebuild from the first event.
 */
export async function run(log: Log, options: RunOptions = {}): Promise<RunResult> {
  const newDriver = options.driver ?? embeddedDriver()
  const runId = options.runId ?? randomUUID().slice(0, 8)
  const ids: Accounts<string> = { ada: `ada-${runId}`, bob: `bob-${runId}` }
  const step = (action: string, result: string): void => log(`   ${action.padEnd(48)} -> ${result}`)

  const first = await withApp(newDriver, {}, async (accounts, app) => {
    // A log that persists across runs holds earlier runs' money: this run's is what it adds.
    await app.projection(DailyTotals).ready()
    const before = await totalsOf(app.projection(DailyTotals))
    log('1. Open two accounts')
    const ada = await accounts.save(new OpenAccount('Ada', 100), { id: ids.ada })
    step(`Ada opens ${ids.ada} with 100, no overdraft`, `version ${ada.version}`)
    const bob = await accounts.save(new OpenAccount('Bob', 20, 50), { id: ids.bob })
    step(`Bob opens ${ids.bob} with 20, overdraft 50`, `version ${bob.version}`)
    expectEqual('versions of new accounts', [ada.version, bob.version], [1, 1])

    log('2. Deposit')
    const adaDeposit = await accounts.update(ids.ada, new Deposit(50))
    step('Ada deposits 50', `version ${adaDeposit.version}`)
    const bobDeposit = await accounts.update(ids.bob, new Deposit(30))
    step('Bob deposits 30', `version ${bobDeposit.version}`)
    const adaAfterDeposit = await balanceOf(accounts, ids.ada, adaDeposit.version)
    log(`   get(${ids.ada}): balance ${adaAfterDeposit.balance} at version ${adaAfterDeposit.version}`)
    expectEqual("Ada's account after her deposit", adaAfterDeposit, { balance: 150, version: 2 })

    log('3. Withdraw within, then beyond, the overdraft limit')
    const withinLimit = await accounts.update(ids.bob, new Withdraw(80))
    const bobOverdrawn = await balanceOf(accounts, ids.bob, withinLimit.version)
    step('Bob withdraws 80 (balance 50, overdraft 50)', `version ${withinLimit.version}, balance ${bobOverdrawn.balance}`)
    expectEqual("Bob's account within his overdraft", bobOverdrawn, { balance: -30, version: 3 })
    const overdraft = await refusal(
      'a withdrawal beyond the overdraft limit',
      accounts.update(ids.bob, new Withdraw(30)),
      ErrorCode.CommandRejected,
    )
    const reason = (overdraft as { reason?: string }).reason
    step('Bob withdraws 30 more', `refused ${overdraft.code}, reason ${reason}`)
    log(`      "${overdraft.message}"`)
    expectEqual('reason of the refused withdrawal', reason, Reason.InsufficientFunds)

    log(`4. Send one command twice (commandId salary-${runId})`)
    const commandId = `salary-${runId}`
    const once = await accounts.update(ids.ada, new Deposit(25), { commandId })
    step('Ada deposits 25', `version ${once.version}`)
    const twice = await accounts.update(ids.ada, new Deposit(25), { commandId })
    step('Ada deposits 25 again, same commandId', `version ${twice.version}, the recorded outcome`)
    const adaAfterSalary = await balanceOf(accounts, ids.ada, twice.version)
    log(`   get(${ids.ada}): balance ${adaAfterSalary.balance} at version ${adaAfterSalary.version}: applied once`)
    expectEqual('the repeated command', twice, once)
    expectEqual("Ada's account after the repeated deposit", adaAfterSalary, { balance: 175, version: 3 })

    log('5. Update with a stale expectedVersion')
    const seen = await balanceOf(accounts, ids.ada)
    log(`   two tellers read Ada's account at version ${seen.version}`)
    const teller1 = await accounts.update(ids.ada, new Deposit(10), { expectedVersion: seen.version })
    step(`teller 1 deposits 10, expectedVersion ${seen.version}`, `version ${teller1.version}`)
    const staleVersion = await refusal(
      'a withdrawal decided on a stale version',
      accounts.update(ids.ada, new Withdraw(20), { expectedVersion: seen.version }),
      ErrorCode.VersionConflict,
    )
    step(`teller 2 withdraws 20, expectedVersion ${seen.version}`, `refused ${staleVersion.code}`)
    log(`      "${staleVersion.message}"`)
    expectEqual('conflict details', [staleVersion.details.expected, staleVersion.details.actual], [3, 4])

    log('6. Send invalid commands')
    const invalidDeposit = await refusal(
      'a negative deposit',
      accounts.update(ids.ada, new Deposit(-5)),
      ErrorCode.InvalidCommand,
    )
    step('Ada deposits -5', `refused ${invalidDeposit.code}: ${problemsOf(invalidDeposit).join('; ')}`)
    const invalidOpen = await refusal('an account without owner', accounts.save(new OpenAccount(' ')), ErrorCode.InvalidCommand)
    step('open an account with no owner', `refused ${invalidOpen.code}: ${problemsOf(invalidOpen).join('; ')}`)
    log('   (checked before sending; the processor checks again, for other producers)')

    log('7. Read models: accounts by owner, daily totals, and a lookup in every instance')
    const byOwner = app.projection(AccountsByOwner)
    await byOwner.waitFor(teller1)
    const viewed = await balancesIn(app, ids)
    step(`accounts-by-owner.waitFor(teller 1's deposit)`, `Ada ${viewed.ada}, Bob ${viewed.bob}`)
    log(`      (the deposit's events are at ${teller1.position!.aggregate}/${teller1.position!.partition}@${teller1.position!.offset}; waitFor returns once the view has them)`)
    expectEqual('balances in accounts-by-owner', viewed, { ada: 185, bob: -30 })
    const listedByOwner = (await byOwner.sortedSet('owner:Ada').range()).some((m) => m.member === ids.ada)
    await app.projection(DailyTotals).ready()
    const moved = difference(await totalsOf(app.projection(DailyTotals)), before)
    step('daily totals, this run', `in ${moved.in}, out ${moved.out}`)
    expectEqual('money moved in the daily totals', moved, MONEY_MOVED)
    await app.projection(OwnerLookup).ready()
    const listedInLookup = (await app.projection(OwnerLookup).sortedSet('Bob').range()).some((m) => m.member === ids.bob)
    step("the global lookup lists Bob's account", String(listedInLookup))
    expectEqual("each owner's account listed", [listedByOwner, listedInLookup], [true, true])

    const live = { ada: await balanceOf(accounts, ids.ada), bob: await balanceOf(accounts, ids.bob) }
    log(`   balances: ${describeAccounts(live)}`)
    expectEqual('balances before the restart', live, {
      ada: { balance: 185, version: 4 },
      bob: { balance: -30, version: 3 },
    })
    return {
      live,
      readModels: { balances: viewed, listed: { byOwner: listedByOwner, lookup: listedInLookup }, moved, before },
      duplicate: { first: once.version, second: twice.version },
      refusals: {
        overdraft: { code: overdraft.code, ...(reason !== undefined && { reason }) },
        staleVersion: { code: staleVersion.code },
        invalidDeposit: { code: invalidDeposit.code, problems: problemsOf(invalidDeposit) },
        invalidOpen: { code: invalidOpen.code, problems: problemsOf(invalidOpen) },
      },
    }
  })

  log('8. Restart: close the application, start a new one on the same data')
  const restart = await startAndRead(newDriver, { rebuild: false }, ids, log, async (app) => {
    await Promise.all([app.projection(AccountsByOwner).ready(), app.projection(DailyTotals).ready()])
    return { balances: await balancesIn(app, ids), moved: difference(await totalsOf(app.projection(DailyTotals)), first.readModels.before) }
  })
  log(`   balances: ${describeAccounts(restart.balances)}: recovered from snapshots`)
  expectEqual('balances after the restart', restart.balances, first.live)
  log(`   read models resumed from their positions: Ada ${restart.extra.balances.ada}, Bob ${restart.extra.balances.bob}, in ${restart.extra.moved.in}, out ${restart.extra.moved.out}`)
  expectEqual('read models after the restart', restart.extra, { balances: first.readModels.balances, moved: MONEY_MOVED })

  log('9. Rebuild: start with rebuild: true, replaying every event from offset 0')
  const rebuild = await startAndRead(newDriver, { rebuild: true }, ids, log, async (app) => {
    // A read model is rebuilt on demand, beside the live view, which serves until the swap.
    const report = await app.projection(AccountsByOwner).rebuild()
    log(`   accounts-by-owner rebuilt beside the live view from ${plural(report.events, 'event')} and swapped in`)
    return balancesIn(app, ids)
  })
  log(`   balances: ${describeAccounts(rebuild.balances)}: the same, folded again from the events`)
  expectEqual('balances after the rebuild', rebuild.balances, first.live)
  expectEqual('accounts-by-owner after its rebuild', rebuild.extra, first.readModels.balances)
  if (rebuild.replayed < EVENTS_WRITTEN) {
    throw new ExpectationFailed(`the rebuild replayed ${rebuild.replayed} events, fewer than the ${EVENTS_WRITTEN} written`)
  }
  if (rebuild.replayed > EVENTS_WRITTEN) {
    // A persistent log still holds earlier runs' accounts: folded too, under ids this run never reads.
    log(`   (${EVENTS_WRITTEN} of the ${rebuild.replayed} events are this run's; the rest are earlier runs' accounts)`)
  }

  log('')
  log('All expectations held.')
  return {
    ids,
    live: first.live,
    afterRestart: restart.balances,
    afterRebuild: rebuild.balances,
    duplicate: first.duplicate,
    refusals: first.refusals,
    replayed: { restart: restart.replayed, rebuild: rebuild.replayed },
    readModels: {
      balances: first.readModels.balances,
      listed: first.readModels.listed,
      moved: first.readModels.moved,
      afterRestart: restart.extra,
      afterRebuild: rebuild.extra,
    },
  }
}

/** Starts an application, runs `body` with the account repository, and always closes it. */
async function withApp<R>(
  newDriver: DriverFactory,
  options: Pick<EskOptions, 'rebuild' | 'listeners'>,
  body: (accounts: Repository<Account>, app: Esk) => Promise<R>,
): Promise<R> {
  const app = await createEsk({ aggregates: [Account], projections: READ_MODELS, driver: await newDriver(), ...options })
  try {
    return await body(app.repository(Account), app)
  } finally {
    await app.close()
  }
}

/** Starts an application, prints each partition's recovery, reads both accounts, and then `more`. */
async function startAndRead<X>(
  newDriver: DriverFactory,
  options: { rebuild: boolean },
  ids: Accounts<string>,
  log: Log,
  more: (app: Esk) => Promise<X>,
): Promise<{ balances: Accounts<Balance>; replayed: number; extra: X }> {
  const finished: RecoveryProgress[] = []
  const listeners = {
    recovery: (p: RecoveryProgress) => {
      if (p.phase === 'end') finished.push(p)
    },
  }
  return withApp(newDriver, { ...options, listeners }, async (accounts, app) => {
    // The embedded driver recovers every partition inside createEsk; a consumer group may assign
    // partitions a little later, so wait for all of them before reading.
    const partitions = app.streams.reduce((sum, stream) => sum + stream.partitions, 0)
    const deadline = Date.now() + RECOVERY_TIMEOUT_MS
    while (finished.length < partitions) {
      if (Date.now() > deadline) {
        throw new ExpectationFailed(`only ${finished.length} of ${partitions} partitions recovered within ${RECOVERY_TIMEOUT_MS} ms`)
      }
      await sleep(20)
    }
    for (const p of [...finished].sort((a, b) => a.partition - b.partition)) {
      const into = p.events > 0 ? ` into ${plural(p.aggregates, 'account')}` : ''
      log(`   recovery ${p.aggregate}/${p.partition}: from offset ${p.from}, replayed ${plural(p.events, 'event')}${into}`)
    }
    const balances = { ada: await balanceOf(accounts, ids.ada), bob: await balanceOf(accounts, ids.bob) }
    return { balances, replayed: finished.reduce((sum, p) => sum + p.events, 0), extra: await more(app) }
  })
}

/** Both accounts' balances as accounts-by-owner shows them. */
async function balancesIn(app: Esk, ids: Accounts<string>): Promise<Accounts<number>> {
  const balances = app.projection(AccountsByOwner).hash<number>('balances')
  return { ada: (await balances.get(ids.ada)) ?? NaN, bob: (await balances.get(ids.bob)) ?? NaN }
}

function difference(after: { in: number; out: number }, before: { in: number; out: number }): { in: number; out: number } {
  return { in: after.in - before.in, out: after.out - before.out }
}

async function balanceOf(accounts: Repository<Account>, id: string, atLeastVersion?: number): Promise<Balance> {
  const found = await accounts.get(id, atLeastVersion === undefined ? {} : { atLeastVersion })
  return { balance: found.state.balance, version: found.version }
}

/** Awaits a command that must be refused with `code`, and returns the error. */
async function refusal(what: string, attempt: Promise<unknown>, code: ErrorCode): Promise<EskError> {
  let accepted: unknown
  try {
    accepted = await attempt
  } catch (error) {
    if (hasCode(error, code)) return error
    throw new ExpectationFailed(`${what} should be refused with ${code}, got: ${String(error)}`, { cause: error })
  }
  throw new ExpectationFailed(`${what} should be refused with ${code}, but was accepted: ${JSON.stringify(accepted)}`)
}

function expectEqual<T>(what: string, actual: T, expected: T): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new ExpectationFailed(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`)
  }
}

function problemsOf(error: EskError): string[] {
  const problems = error.details.problems
  return Array.isArray(problems) ? problems.map(String) : []
}

function describeAccounts(balances: Accounts<Balance>): string {
  return `Ada ${balances.ada.balance} (version ${balances.ada.version}), Bob ${balances.bob.balance} (version ${balances.bob.version})`
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}
