import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it, vi } from 'vitest'
import { run } from '../src/app.js'
import { driverFromArgs, EXAMPLE_DEFAULTS, USAGE_ERROR, type Env } from '../src/driver.js'

// The Kafka and Redis drivers are replaced by stubs that record their options: these tests check
// what the example asks for, without a broker or a server.
const built = vi.hoisted(() => ({ transports: [] as unknown[], stores: [] as unknown[] }))
vi.mock('@esk/kafka', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@esk/kafka')>()),
  kafkaTransport: (options: unknown) => {
    built.transports.push(options)
    return { stub: 'transport' }
  },
}))
vi.mock('@esk/redis', async (importOriginal) => ({
  ...(await importOriginal<typeof import('@esk/redis')>()),
  redisStore: (options: unknown) => {
    built.stores.push(options)
    return { stub: 'store' }
  },
}))

/** The options the `--kafka` factory passes to kafkaTransport and redisStore on one start. */
async function optionsOf(args: string[], env: Env = {}): Promise<{ transport: unknown; store: unknown }> {
  built.transports.length = 0
  built.stores.length = 0
  await driverFromArgs(args, env)()
  return { transport: built.transports[0], store: built.stores[0] }
}

function usageError(args: string[], env: Env = {}): Error & { code?: string } {
  try {
    driverFromArgs(args, env)
  } catch (error) {
    return error as Error
  }
  throw new Error(`driverFromArgs(${JSON.stringify(args)}) accepted what it should refuse`)
}

describe('driverFromArgs', () => {
  describe('without arguments', () => {
    it('is the embedded driver, whatever the Kafka variables say', async () => {
      const driver = driverFromArgs([], { ESK_KAFKA_BROKERS: 'kafka:9092', ESK_KAFKA_SASL_MECHANISM: 'plain' })
      expect(driver.description).toBe('Driver: embedded (in memory; the data lives as long as this process)')
      const result = await run(() => undefined, { driver })
      expect(result.afterRestart).toEqual(result.live)
      expect(built.transports).toEqual([])
    })

    it('refuses Kafka options without --kafka', () => {
      expect(usageError(['--brokers', 'kafka:9092']).message).toBe('--brokers applies only with --kafka')
      expect(usageError(['--key-prefix', 'x:']).message).toBe('--key-prefix applies only with --kafka')
    })
  })

  describe('--kafka', () => {
    it('defaults to the local stack and prefixes of its own', async () => {
      const driver = driverFromArgs(['--kafka'], {})
      expect(driver.description).toBe(
        'Driver: Kafka at 127.0.0.1:9092 (topics esk-example.*) + Redis at redis://127.0.0.1:6379 (keys esk-example:*)',
      )
      expect(await optionsOf(['--kafka'])).toEqual({
        transport: { brokers: ['127.0.0.1:9092'], topicPrefix: 'esk-example.' },
        store: { url: 'redis://127.0.0.1:6379', keyPrefix: 'esk-example:' },
      })
      expect(EXAMPLE_DEFAULTS.topicPrefix).not.toBe('esk.')
    })

    it('builds a new transport and store for every start', async () => {
      built.transports.length = 0
      const driver = driverFromArgs(['--kafka'], {})
      const first = await driver()
      const second = await driver()
      expect(first).not.toBe(second)
      expect(built.transports).toHaveLength(2)
    })

    it('takes addresses from the environment, and flags over the environment', async () => {
      const env = { ESK_KAFKA_BROKERS: ' k1:9092, k2:9093 ', ESK_REDIS_URL: 'redis://cache:6380/2' }
      expect(await optionsOf(['--kafka'], env)).toEqual({
        transport: { brokers: ['k1:9092', 'k2:9093'], topicPrefix: 'esk-example.' },
        store: { url: 'redis://cache:6380/2', keyPrefix: 'esk-example:' },
      })
      const flags = ['--kafka', '--brokers', 'k3:9092', '--redis-url=redis://other:6379', '--topic-prefix', 't.', '--key-prefix', 'k:']
      expect(await optionsOf(flags, env)).toEqual({
        transport: { brokers: ['k3:9092'], topicPrefix: 't.' },
        store: { url: 'redis://other:6379', keyPrefix: 'k:' },
      })
      expect(driverFromArgs(flags, env).description).toBe(
        'Driver: Kafka at k3:9092 (topics t.*) + Redis at redis://other:6379 (keys k:*)',
      )
    })

    it('treats empty variables as unset', async () => {
      const env = { ESK_KAFKA_BROKERS: '', ESK_REDIS_URL: ' ', ESK_KAFKA_SSL: '', ESK_KAFKA_SASL_MECHANISM: '' }
      expect(await optionsOf(['--kafka'], env)).toEqual(await optionsOf(['--kafka']))
    })

    it('passes TLS and SASL from the environment through to kafkajs', async () => {
      const env = {
        ESK_KAFKA_SSL: '1',
        ESK_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
        ESK_KAFKA_SASL_USERNAME: 'alice',
        ESK_KAFKA_SASL_PASSWORD: 's3cret',
      }
      const { transport } = await optionsOf(['--kafka'], env)
      expect(transport).toMatchObject({
        kafka: { ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'alice', password: 's3cret' } },
      })
      expect((await optionsOf(['--kafka'], { ESK_KAFKA_SSL: 'true' })).transport).toMatchObject({ kafka: { ssl: true } })
      expect((await optionsOf(['--kafka'], { ESK_KAFKA_SSL: '0' })).transport).not.toHaveProperty('kafka')
      const plain = { ESK_KAFKA_SASL_MECHANISM: 'plain', ESK_KAFKA_SASL_USERNAME: 'bob', ESK_KAFKA_SASL_PASSWORD: 'pw' }
      expect((await optionsOf(['--kafka'], plain)).transport).toMatchObject({
        kafka: { sasl: { mechanism: 'plain', username: 'bob', password: 'pw' } },
      })
    })

    it('never prints a password', () => {
      const env = {
        ESK_KAFKA_SSL: '1',
        ESK_KAFKA_SASL_MECHANISM: 'scram-sha-256',
        ESK_KAFKA_SASL_USERNAME: 'alice',
        ESK_KAFKA_SASL_PASSWORD: 's3cret',
        ESK_REDIS_URL: 'rediss://app:hunter2@cache.example:6380/1',
      }
      const { description } = driverFromArgs(['--kafka'], env)
      expect(description).toBe(
        "Driver: Kafka at 127.0.0.1:9092 (topics esk-example.*, TLS, SASL scram-sha-256 as 'alice')" +
          ' + Redis at rediss://app:***@cache.example:6380/1 (keys esk-example:*)',
      )
      const messages = [
        usageError(['--kafka', '--redis-ur=rediss://app:hunter2@cache:6380']).message,
        usageError(['--kafka', 'rediss://app:hunter2@cache:6380']).message,
        usageError(['--kafka', '--redis-url', 'rediss//app:hunter2@cache:6380']).message,
        usageError(['--kafka', '--redis-url', 'https://app:hunter2@cache:6380']).message,
        usageError(['--kafka'], { ...env, ESK_KAFKA_SASL_USERNAME: '' }).message,
      ]
      for (const message of messages) {
        expect(message).not.toContain('hunter2')
        expect(message).not.toContain('s3cret')
      }
      expect(messages[1]).toContain('rediss://app:***@cache:6380')
    })
  })

  describe('refuses with a usage error', () => {
    it.each([
      [['--verbose'], "Unknown option '--verbose'"],
      [['kafka'], "Unexpected argument 'kafka'"],
      [['--kafka', '--brokers'], "Option '--brokers <value>' argument missing"],
      [['--kafka', '--brokers', 'localhost'], "--brokers must list host:port pairs separated by commas, got 'localhost'"],
      [['--kafka', '--brokers', ','], '--brokers must list host:port pairs'],
      [['--kafka', '--topic-prefix', 'a b'], "topicPrefix 'a b' may only use letters, digits"],
      [['--kafka', '--key-prefix', '{x}'], "--key-prefix '{x}' must be 1 to 100 letters"],
      [['--kafka', '--redis-url', 'localhost:6379'], '--redis-url must start with redis:// or rediss://'],
    ])('%j', (args, message) => {
      const error = usageError(args)
      expect(error.code).toBe(USAGE_ERROR)
      expect(error.message).toContain(message)
    })

    it.each([
      [{ ESK_KAFKA_BROKERS: 'kafka' }, "ESK_KAFKA_BROKERS must list host:port pairs separated by commas, got 'kafka'"],
      [{ ESK_REDIS_URL: 'cache:6379' }, 'ESK_REDIS_URL must start with redis:// or rediss://'],
      [{ ESK_KAFKA_SSL: 'maybe' }, "ESK_KAFKA_SSL must be 1 or 0 (true/false), got 'maybe'"],
      [
        { ESK_KAFKA_SASL_MECHANISM: 'scram-sha-256' },
        'ESK_KAFKA_SASL_MECHANISM=scram-sha-256 needs ESK_KAFKA_SASL_USERNAME and ESK_KAFKA_SASL_PASSWORD as well',
      ],
      [
        { ESK_KAFKA_SASL_MECHANISM: 'plain', ESK_KAFKA_SASL_USERNAME: 'alice' },
        'ESK_KAFKA_SASL_MECHANISM=plain needs ESK_KAFKA_SASL_PASSWORD as well',
      ],
      [{ ESK_KAFKA_SASL_MECHANISM: 'gssapi' }, "ESK_KAFKA_SASL_MECHANISM 'gssapi' is not supported; use one of plain"],
      [{ ESK_KAFKA_SASL_USERNAME: 'alice', ESK_KAFKA_SASL_PASSWORD: 'pw' }, 'but ESK_KAFKA_SASL_MECHANISM is not'],
    ])('%j', (env, message) => {
      const error = usageError(['--kafka'], env)
      expect(error.code).toBe(USAGE_ERROR)
      expect(error.message).toContain(message)
    })
  })
})

const mainJs = fileURLToPath(new URL('../dist/main.js', import.meta.url))

// What a shell sees from the built example: usage problems exit 2 before any connection.
describe.runIf(existsSync(mainJs))('main.js', () => {
  const node = (args: string[], env: Env = {}) =>
    promisify(execFile)(process.execPath, [mainJs, ...args], { env: { PATH: process.env.PATH, ...env } })

  it('exits 2 with the usage on an unknown argument', async () => {
    const failure = await node(['--verbose']).catch((error: unknown) => error as { code: number; stderr: string })
    expect(failure).toMatchObject({ code: 2 })
    expect((failure as { stderr: string }).stderr).toMatch(/^bank-account example: Unknown option '--verbose'.*\n\nusage: /s)
  })

  it('exits 2 when a SASL mechanism comes without credentials', async () => {
    const failure = await node(['--kafka'], { ESK_KAFKA_SASL_MECHANISM: 'plain' }).catch((error: unknown) => error)
    expect(failure).toMatchObject({ code: 2, stderr: expect.stringContaining('needs ESK_KAFKA_SASL_USERNAME') })
  })

  it('prints the usage on --help', async () => {
    const { stdout } = await node(['--help'])
    expect(stdout).toContain('--kafka ')
    expect(stdout).toContain('ESK_KAFKA_SASL_MECHANISM')
  })
})
