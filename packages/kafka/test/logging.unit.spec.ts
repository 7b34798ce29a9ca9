import type { Logger } from '@esk/core'
import type { LogEntry } from 'kafkajs'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { logLevel } from '../src/kafkajs.js'
import { LOG_REPEATED_CODE, conditionOf, kafkaLogCreator } from '../src/logging.js'

type Line = { level: string; message: string; fields: Record<string, unknown> | undefined }

function recording(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = []
  const at =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      lines.push({ level, message, fields })
    }
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines }
}

/** A kafkajs entry as its clients log them during a broker outage. */
function connectionError(port: number, clientId = 'esk'): LogEntry {
  return {
    namespace: 'Connection',
    level: logLevel.ERROR,
    label: 'ERROR',
    log: { timestamp: new Date().toISOString(), logger: 'kafkajs', message: 'Connection error: connect ECONNREFUSED', broker: `127.0.0.1:${port}`, clientId, error: `connect ECONNREFUSED 127.0.0.1:${port}` },
  }
}

function warning(message: string): LogEntry {
  return { namespace: 'Consumer', level: logLevel.WARN, label: 'WARN', log: { timestamp: '', logger: 'kafkajs', message } }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('kafkajs log limiter', () => {
  it('lets the first line of a condition through and sums up its repeats once per window', () => {
    vi.useFakeTimers({ now: 1_000_000 })
    const { logger, lines } = recording()
    const log = kafkaLogCreator(logger, { repeatIntervalMs: 10_000 })(logLevel.INFO)
    // Two clients flooding the same condition, against two brokers.
    for (let i = 0; i < 500; i++) {
      log(connectionError(9092 + (i % 2), `client-${i % 3}`))
      vi.advanceTimersByTime(10)
    }
    // 5 s in: only the first line so far.
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ level: 'error', message: 'kafkajs Connection: Connection error: connect ECONNREFUSED' })
    // The window closes while the outage goes on: one summary, then the next line opens a new window.
    vi.advanceTimersByTime(5_000)
    expect(lines).toHaveLength(2)
    expect(lines[1]).toMatchObject({
      level: 'error',
      message: 'kafkajs Connection: Connection error: connect ECONNREFUSED (and 499 more like it in the last 10 s)',
      fields: { code: LOG_REPEATED_CODE, repeats: 499 },
    })
    log(connectionError(9092))
    expect(lines).toHaveLength(3)
    // The outage ends: nothing more, not even a summary of an empty window.
    vi.advanceTimersByTime(60_000)
    expect(lines).toHaveLength(3)
  })

  it('keeps different conditions apart, and a summary comes with the next line if no sweep ran', () => {
    let now = 0
    const { logger, lines } = recording()
    const log = kafkaLogCreator(logger, { repeatIntervalMs: 1_000, now: () => now })(logLevel.INFO)
    log(warning('Crash: KafkaJSNumberOfRetriesExceeded, restarting the consumer'))
    log(connectionError(9092))
    log(warning('Crash: KafkaJSNumberOfRetriesExceeded, restarting the consumer'))
    log(connectionError(9093))
    expect(lines.map((l) => l.level)).toEqual(['warn', 'error'])
    now = 1_500
    log(warning('Crash: KafkaJSNumberOfRetriesExceeded, restarting the consumer'))
    expect(lines.slice(2).map((l) => [l.level, l.fields?.repeats ?? null])).toEqual([
      ['warn', 1],
      ['warn', null],
    ])
  })

  it('passes every line with a window of 0', () => {
    const { logger, lines } = recording()
    const log = kafkaLogCreator(logger, { repeatIntervalMs: 0 })(logLevel.INFO)
    for (let i = 0; i < 5; i++) log(connectionError(9092))
    expect(lines).toHaveLength(5)
  })

  it('takes numbers, addresses and ids out of a condition, and keeps level, namespace and words', () => {
    expect(conditionOf(connectionError(9092, 'a'))).toBe(conditionOf(connectionError(19292, 'b')))
    expect(conditionOf(warning('Response Metadata(key: 3, version: 6) took 512ms'))).toBe(conditionOf(warning('Response Metadata(key: 3, version: 6) took 80ms')))
    expect(conditionOf(warning('Connection timeout'))).not.toBe(conditionOf(warning('Request timeout')))
    expect(conditionOf(warning('Connection timeout'))).not.toBe(conditionOf({ ...warning('Connection timeout'), level: logLevel.ERROR }))
    expect(conditionOf(warning('Connection timeout'))).not.toBe(conditionOf({ ...warning('Connection timeout'), namespace: 'Producer' }))
  })
})
