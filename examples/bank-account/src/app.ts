import { randomUUID } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import {
  ErrorCode,
  createEsk,
  hasCode,
  sleep,
  type Esk,
  type EskError,
  type EskOptions,
  type RecoveryProgress,
  type Repository,
} from '@esk/core'
import { Account, Deposit, OpenAccount, Reason, Withdraw } from './domain.js'
import { embeddedDriver, type DriverFactory } from './driver.js'

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
}

/** Thrown when the narrative does not go as it says: the example doubles as a smoke test. */
export class ExpectationFailed extends Error {
  override name = 'ExpectationFailed'
}

/** Events this narrative records: Ada open + 3 deposits, Bob open + deposit + withdrawal. */
const EVENTS_WRITTEN = 7

/** How long a restarted application may take to recover all its partitions. */
const RECOVERY_TIMEOUT_MS = 30_000

/**
 * Runs the bank-account story step by step, printing what happens through `log`: accounts opened,
 * deposits, an overdraft refused, a repeated command applied once, a stale expectedVersion, invalid
 * commands, a restart recovered from snapshots, and a rebuild from the first event.
 */
export async function run(log: Log, options: RunOptions = {}): Promise<RunResult> {
  const newDriver = options.driver ?? embeddedDriver()
  const runId = options.runId ?? randomUUID().slice(0, 8)
  const ids: Accounts<string> = { ada: `ada-${runId}`, bob: `bob-${runId}` }
  const step = (action: string, result: string): void => log(`   ${action.padEnd(48)} -> ${result}`)

  const first = await withApp(newDriver, {}, async (accounts) => {
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

    const live = { ada: await balanceOf(accounts, ids.ada), bob: await balanceOf(accounts, ids.bob) }
    log(`   balances: ${describeAccounts(live)}`)
    expectEqual('balances before the restart', live, {
      ada: { balance: 185, version: 4 },
      bob: { balance: -30, version: 3 },
    })
    return {
      live,
      duplicate: { first: once.version, second: twice.version },
      refusals: {
        overdraft: { code: overdraft.code, ...(reason !== undefined && { reason }) },
        staleVersion: { code: staleVersion.code },
        invalidDeposit: { code: invalidDeposit.code, problems: problemsOf(invalidDeposit) },
        invalidOpen: { code: invalidOpen.code, problems: problemsOf(invalidOpen) },
      },
    }
  })

  log('7. Restart: close the application, start a new one on the same data')
  const restart = await startAndRead(newDriver, { rebuild: false }, ids, log)
  log(`   balances: ${describeAccounts(restart.balances)}: recovered from snapshots`)
  expectEqual('balances after the restart', restart.balances, first.live)

  log('8. Rebuild: start with rebuild: true, replaying every event from offset 0')
  const rebuild = await startAndRead(newDriver, { rebuild: true }, ids, log)
  log(`   balances: ${describeAccounts(rebuild.balances)}: the same, folded again from the events`)
  expectEqual('balances after the rebuild', rebuild.balances, first.live)
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
  }
}

/** Starts an application, runs `body` with the account repository, and always closes it. */
async function withApp<R>(
  newDriver: DriverFactory,
  options: Pick<EskOptions, 'rebuild' | 'listeners'>,
  body: (accounts: Repository<Account>, app: Esk) => Promise<R>,
): Promise<R> {
  const app = await createEsk({ aggregates: [Account], driver: await newDriver(), ...options })
  try {
    return await body(app.repository(Account), app)
  } finally {
    await app.close()
  }
}

/** Starts an application, prints each partition's recovery, and reads both accounts. */
async function startAndRead(
  newDriver: DriverFactory,
  options: { rebuild: boolean },
  ids: Accounts<string>,
  log: Log,
): Promise<{ balances: Accounts<Balance>; replayed: number }> {
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
    return { balances, replayed: finished.reduce((sum, p) => sum + p.events, 0) }
  })
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
