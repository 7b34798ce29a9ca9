import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ExitCode,
  formatOutcome,
  formatStatus,
  formatTopics,
  loadConfig,
  parseEntry,
  resolveConfig,
  run,
  table,
  type StatusReport,
  type TopicsReport,
} from '@esk/cli'
import { contractModel } from '@esk/testing/contract'
import { describe, expect, it } from 'vitest'

describe('esk CLI output', () => {
  it('lays out columns as wide as their widest cell, with - for missing values', () => {
    expect(table(['a', 'longer'], [[1, null], ['wide cell', 'x']])).toBe(['a          longer', '1          -', 'wide cell  x'].join('\n'))
  })

  it('prints status per partition with a short owner token, and read models', () => {
    const report: StatusReport = {
      aggregates: [
        {
          aggregate: 'account',
          partitions: 2,
          group: { id: 'esk.account.processor', state: 'Stable', members: 1 },
          rows: [
            { partition: 0, owner: '0123456789abcdef', ready: true, checkpoint: { offset: 12, commandPosition: 5, schemaVersion: 1 }, member: 'esk@10.0.0.1', commandEnd: 6, committed: 6, lag: 0, eventEnd: 13 },
            { partition: 1, owner: null, ready: false, checkpoint: null, member: null, commandEnd: 4, committed: null, lag: 4, eventEnd: 0 },
          ],
        },
      ],
      projections: [
        { name: 'balances', kind: 'projection', version: 1, live: { id: 3, version: 1 }, caughtUp: true, lag: 0, lanes: [] },
        { name: 'broken', error: 'read models need the aggregate classes' },
      ],
    }
    expect(formatStatus(report).split('\n')).toEqual([
      'account: 2 partitions, group esk.account.processor Stable with 1 member(s)',
      'partition  ready  owner     member        checkpoint  event end  commands end  committed  lag',
      '0          yes    01234567  esk@10.0.0.1  12 (cmd 5)  13         6             6          0',
      '1          no     -         -             -           0          4             -          4',
      'read models:',
      'name      kind        version  live      caught up  lag  note',
      'balances  projection  1        gen 3 v1  yes        0    -',
      'broken    -           -        -         -          -    read models need the aggregate classes',
    ])
  })

  it('prints every topic problem under its table, and the verdict last', () => {
    const report: TopicsReport = {
      ok: false,
      aggregates: [
        {
          aggregate: 'account',
          expectedPartitions: 4,
          topics: [
            { topic: 'esk.account.commands', role: 'commands', exists: true, partitions: 4, cleanupPolicy: 'delete', retentionMs: '604800000', retentionBytes: '-1', problems: [] },
            {
              topic: 'esk.account.events',
              role: 'events',
              exists: true,
              partitions: 4,
              cleanupPolicy: 'compact',
              retentionMs: '-1',
              retentionBytes: '-1',
              problems: [{ severity: 'error', message: 'cleanup.policy is compact' }],
            },
            { topic: 'esk.account.dead-letters', role: 'dead-letters', exists: false, partitions: null, cleanupPolicy: null, retentionMs: null, retentionBytes: null, problems: [{ severity: 'error', message: 'missing' }] },
          ],
        },
      ],
    }
    const text = formatTopics(report).split('\n')
    expect(text[0]).toBe('account (configured with 4 partitions)')
    expect(text[2]).toMatch(/^esk\.account\.commands\s+4\s+delete\s+604800000\s+-1\s+ok$/)
    expect(text[3]).toMatch(/ERROR$/)
    expect(text.slice(5)).toEqual(['  error: esk.account.events cleanup.policy is compact', '  error: esk.account.dead-letters missing', 'topics have errors'])
  })

  it('says where an outcome was found, or that there is no trace', () => {
    const base = { aggregate: 'account', id: 'a-1', commandId: 'c-1', partition: 2 }
    expect(
      formatOutcome({ ...base, found: true, source: 'event-log', offsets: [7, 8], outcome: { status: 'accepted', aggregateId: 'a-1', commandId: 'c-1', version: 4, events: 2 } }),
    ).toBe('account a-1 command c-1 (partition 2): accepted at version 4 with 2 event(s), from the event log (offsets 7, 8)')
    expect(
      formatOutcome({ ...base, found: true, source: 'unlogged', outcome: { status: 'rejected', aggregateId: 'a-1', commandId: 'c-1', error: { code: 'ESK_COMMAND_REJECTED', message: 'no' } } }),
    ).toBe("account a-1 command c-1 (partition 2): rejected with ESK_COMMAND_REJECTED: no, from the partition's unlogged outcomes")
    expect(formatOutcome({ ...base, found: false, source: null, outcome: null })).toMatch(/no trace in the store, the event log or the dead letters/)
  })

  it('names dead letters <partition>:<offset> and refuses anything else', () => {
    expect(parseEntry('3:42')).toEqual({ partition: 3, offset: 42 })
    expect(() => parseEntry('3-42')).toThrow(expect.objectContaining({ code: 'ESK_INVALID_ARGUMENT' }))
  })
})

describe('esk CLI configuration and exit codes', () => {
  it('takes flags over the file over the environment over defaults', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'esk-cli-config-'))
    try {
      await writeFile(join(dir, 'esk.config.json'), JSON.stringify({ brokers: ['file:9092'], topicPrefix: 'app.', aggregates: ['account'] }))
      const config = await loadConfig({ topicPrefix: 'flag.' }, dir, { ESK_KAFKA_BROKERS: 'env:9092', ESK_REDIS_URL: 'redis://env:6379' })
      expect(config).toMatchObject({
        file: join(dir, 'esk.config.json'),
        brokers: ['file:9092'],
        topicPrefix: 'flag.',
        keyPrefix: 'esk:',
        redisUrl: 'redis://env:6379',
        aggregates: [{ name: 'account' }],
      })
      expect((await loadConfig({}, tmpdir(), { ESK_KAFKA_BROKERS: 'env:9092' })).brokers).toEqual(['env:9092'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    expect(resolveConfig({ aggregates: [{ aggregate: contractModel.ContractAccount, partitions: 3 }] }, {}, {}).aggregates).toEqual([
      { name: 'contract-account', cls: contractModel.ContractAccount, partitions: 3 },
    ])
    expect(() => resolveConfig({ aggregates: [class NotOne {}] }, {}, {})).toThrow(/not an aggregate class/)
  })

  it('exits 2 on usage and configuration errors, before connecting to anything', async () => {
    const sink = { out: [] as string[], err: [] as string[] }
    const io = { stdout: (t: string) => void sink.out.push(t), stderr: (t: string) => void sink.err.push(t), cwd: tmpdir(), env: {}, progress: false }
    expect(await run(['inspect', 'account'], io)).toBe(ExitCode.Usage)
    expect(sink.err.join('')).toMatch(/missing required argument 'id'/)
    expect(await run(['rebuild', 'account', '--partition', 'two'], io)).toBe(ExitCode.Usage)
    expect(await run(['no-such-command'], io)).toBe(ExitCode.Usage)
    sink.err.length = 0
    expect(await run(['status', '--config', 'missing.json', '--json'], io)).toBe(ExitCode.Usage)
    expect(JSON.parse(sink.err.join(''))).toEqual({ error: { code: 'ESK_CONFIGURATION', message: expect.stringContaining('missing.json does not exist') } })
    sink.out.length = 0
    expect(await run(['--help'], io)).toBe(ExitCode.Ok)
    expect(sink.out.join('')).toMatch(/Usage: esk/)
  })
})
