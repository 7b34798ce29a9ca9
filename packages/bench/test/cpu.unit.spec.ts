import { describe, expect, it } from 'vitest'
import { parsePidStat, parseProcStat } from '../src/cpu.js'

describe('/proc parsing', () => {
  it('sums busy and total ticks from the cpu line of /proc/stat', () => {
    const text = 'cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1 2 3\n'
    expect(parseProcStat(text)).toEqual({ busy: 100 + 5 + 50 + 3 + 2 + 1, total: 100 + 5 + 50 + 3 + 2 + 1 + 1000 + 20 })
    expect(() => parseProcStat('intr 1\n')).toThrow()
  })

  it('reads user + system ticks of a process, whatever its name holds', () => {
    const fields = ['S', '1', '1', '1', '0', '-1', '4194304', '98', '0', '0', '0', '70', '30', '5', '5', '20', '0', '1']
    expect(parsePidStat(`1234 (java) ${fields.join(' ')}`)).toBe(100)
    expect(parsePidStat(`1234 (a (weird) name) ${fields.join(' ')}`)).toBe(100)
  })
})
