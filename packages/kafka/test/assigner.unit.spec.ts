import { describe, expect, it } from 'vitest'
import { stickyAssignment, type StickyMember } from '../src/assigner.js'

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

/** Partitions whose owner differs between two assignments (a partition nobody had counts as moved). */
function moved(before: Map<string, number[]>, after: Map<string, number[]>): number {
  const owner = new Map<number, string>()
  for (const [id, list] of before) for (const p of list) owner.set(p, id)
  let count = 0
  for (const [id, list] of after) for (const p of list) if (owner.get(p) !== id) count += 1
  return count
}

function members(assignment: Map<string, number[]>, ...joining: string[]): StickyMember[] {
  return [...[...assignment].map(([id, previous]) => ({ id, previous })), ...joining.map((id) => ({ id, previous: [] }))]
}

function expectBalanced(assignment: Map<string, number[]>, partitions: number): void {
  const all = [...assignment.values()].flat().sort((a, b) => a - b)
  expect(all).toEqual(range(partitions))
  const sizes = [...assignment.values()].map((l) => l.length)
  expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
}

describe('sticky partition assignment', () => {
  it('spreads partitions evenly over new members', () => {
    const first = stickyAssignment(range(12), [{ id: 'b', previous: [] }, { id: 'a', previous: [] }, { id: 'c', previous: [] }])
    expectBalanced(first, 12)
    expect(first.get('a')).toEqual([0, 1, 2, 3])
  })

  it('moves only the joining member’s share when a member joins', () => {
    const three = stickyAssignment(range(12), members(new Map(), 'a', 'b', 'c'))
    const four = stickyAssignment(range(12), members(three, 'd'))
    expectBalanced(four, 12)
    expect(four.get('d')).toHaveLength(3)
    expect(moved(three, four)).toBe(3)
    // RoundRobin would reassign 9 of the 12 here.
  })

  it('moves only the leaving member’s partitions when a member leaves', () => {
    const four = stickyAssignment(range(12), members(new Map(), 'a', 'b', 'c', 'd'))
    const without = new Map([...four].filter(([id]) => id !== 'b'))
    const three = stickyAssignment(range(12), members(without))
    expectBalanced(three, 12)
    expect(moved(four, three)).toBe(four.get('b')!.length)
    for (const id of ['a', 'c', 'd']) expect(three.get(id)).toEqual(expect.arrayContaining(four.get(id)!))
  })

  it('gives a partition claimed twice to one member, and ignores claims of partitions that do not exist', () => {
    const assignment = stickyAssignment(range(4), [
      { id: 'a', previous: [0, 1, 7] },
      { id: 'b', previous: [1, 2, 3] },
    ])
    expectBalanced(assignment, 4)
    expect(assignment.get('a')).toEqual([0, 1])
    expect(assignment.get('b')).toEqual([2, 3])
  })

  it('gives a partition claimed twice to the claim of the newer generation', () => {
    // 'a' was out of the group (paused past its session timeout) while 'b' took its partitions.
    const assignment = stickyAssignment(range(4), [
      { id: 'a', previous: [0, 1, 2, 3], generation: 3 },
      { id: 'b', previous: [0, 1, 2, 3], generation: 4 },
    ])
    expect(assignment.get('b')).toEqual([0, 1])
    expect(assignment.get('a')).toEqual([2, 3])
    expect(moved(new Map([['b', range(4)]]), assignment)).toBe(2)
  })

  it('lets members that hold more keep the extra partition when the count does not divide evenly', () => {
    const assignment = stickyAssignment(range(5), [
      { id: 'a', previous: [0] },
      { id: 'b', previous: [1, 2, 3] },
    ])
    expectBalanced(assignment, 5)
    expect(assignment.get('b')).toEqual([1, 2, 3])
    expect(assignment.get('a')).toEqual([0, 4])
  })

  it('depends only on its input, and leaves members without partitions when there are more members than partitions', () => {
    const input: StickyMember[] = [
      { id: 'c', previous: [1] },
      { id: 'a', previous: [] },
      { id: 'b', previous: [0] },
    ]
    const once = stickyAssignment(range(2), input)
    expect(stickyAssignment(range(2), [...input].reverse())).toEqual(once)
    expect(once.get('a')).toEqual([])
    expect(once.get('b')).toEqual([0])
    expect(once.get('c')).toEqual([1])
  })
})
