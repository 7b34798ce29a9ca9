import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DelayQueue } from '../src/delay-queue.js'

describe('DelayQueue', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('fires each entry once its delay has passed, in the order added, and not before', () => {
    const fired: string[] = []
    const queue = new DelayQueue<string>(100, (item) => fired.push(item))
    queue.add('a')
    vi.advanceTimersByTime(30)
    queue.add('b')
    vi.advanceTimersByTime(69)
    expect(fired).toEqual([])
    vi.advanceTimersByTime(1)
    expect(fired).toEqual(['a'])
    vi.advanceTimersByTime(29)
    expect(fired).toEqual(['a'])
    vi.advanceTimersByTime(1)
    expect(fired).toEqual(['a', 'b'])
    expect(queue.size).toBe(0)
  })

  it('never fires a cancelled entry, and keeps no timer once every entry is cancelled', () => {
    const fired: string[] = []
    const queue = new DelayQueue<string>(100, (item) => fired.push(item))
    const a = queue.add('a')
    const b = queue.add('b')
    queue.cancel(a)
    expect(queue.size).toBe(1)
    queue.cancel(b)
    // Nothing left to fire: no timer holds the process open.
    expect(vi.getTimerCount()).toBe(0)
    vi.advanceTimersByTime(1_000)
    expect(fired).toEqual([])
  })

  it('fires the entries after a cancelled oldest one at their own time', () => {
    const fired: Array<[string, number]> = []
    const start = performance.now()
    const queue = new DelayQueue<string>(100, (item) => fired.push([item, performance.now() - start]))
    const a = queue.add('a')
    vi.advanceTimersByTime(40)
    queue.add('b')
    queue.cancel(a)
    vi.advanceTimersByTime(200)
    expect(fired).toEqual([['b', 140]])
  })

  it('ignores a cancel of an entry that fired already', () => {
    const fired: string[] = []
    const queue = new DelayQueue<string>(10, (item) => fired.push(item))
    const a = queue.add('a')
    vi.advanceTimersByTime(10)
    queue.add('b')
    queue.cancel(a)
    expect(queue.size).toBe(1)
    vi.advanceTimersByTime(10)
    expect(fired).toEqual(['a', 'b'])
  })

  it('takes entries added by the callback it fires', () => {
    const fired: number[] = []
    const queue: DelayQueue<number> = new DelayQueue<number>(10, (item) => {
      fired.push(item)
      if (item < 3) queue.add(item + 1)
    })
    queue.add(1)
    vi.advanceTimersByTime(35)
    expect(fired).toEqual([1, 2, 3])
    expect(vi.getTimerCount()).toBe(0)
  })

  it('fires every entry due even when a callback throws, then throws the first error', () => {
    const fired: string[] = []
    const queue = new DelayQueue<string>(10, (item) => {
      fired.push(item)
      if (item.startsWith('bad')) throw new Error(`${item} failed`)
    })
    queue.add('bad-1')
    queue.add('good')
    queue.add('bad-2')
    vi.advanceTimersByTime(5)
    queue.add('later')
    expect(() => vi.advanceTimersByTime(5)).toThrow('bad-1 failed')
    expect(fired).toEqual(['bad-1', 'good', 'bad-2'])
    // The timer was set again for what is still pending.
    vi.advanceTimersByTime(5)
    expect(fired).toEqual(['bad-1', 'good', 'bad-2', 'later'])
  })

  it('keeps tickets valid while it drops the slots of fired entries', () => {
    const fired: number[] = []
    const queue = new DelayQueue<number>(100, (item) => fired.push(item))
    const tickets: number[] = []
    for (let i = 0; i < 3_000; i++) tickets.push(queue.add(i))
    vi.advanceTimersByTime(50)
    const later: number[] = []
    for (let i = 3_000; i < 3_010; i++) later.push(queue.add(i))
    // The first 3,000 fire; their slots are dropped, and the later tickets still cancel the right entries.
    vi.advanceTimersByTime(50)
    expect(fired).toHaveLength(3_000)
    queue.cancel(later[1]!)
    queue.cancel(tickets[5]!)
    vi.advanceTimersByTime(50)
    expect(fired.slice(3_000)).toEqual([3_000, 3_002, 3_003, 3_004, 3_005, 3_006, 3_007, 3_008, 3_009])
  })
})
