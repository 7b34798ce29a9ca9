import { describe, expect, it } from 'vitest'
import { topFunctions, type CpuProfile } from '../src/cpuprofile.js'

describe('topFunctions', () => {
  it('ranks functions by their share of busy samples, merging the call paths of one function', () => {
    const frame = (functionName: string, url: string, lineNumber: number) => ({ functionName, url, lineNumber })
    const profile: CpuProfile = {
      nodes: [
        { id: 1, callFrame: frame('(root)', '', -1), hitCount: 0 },
        { id: 2, callFrame: frame('encode', 'file:///x/dist/codec.js', 9), hitCount: 30 },
        { id: 3, callFrame: frame('encode', 'file:///x/dist/codec.js', 9), hitCount: 20 },
        { id: 4, callFrame: frame('', 'file:///x/dist/processor.js', 99), hitCount: 25 },
        { id: 5, callFrame: frame('(garbage collector)', '', -1), hitCount: 25 },
        { id: 6, callFrame: frame('(idle)', '', -1), hitCount: 900 },
      ],
    }
    expect(topFunctions(profile, 2)).toEqual([
      { name: 'encode', where: 'x/dist/codec.js:10', selfPercent: 50 },
      { name: '(anonymous)', where: 'x/dist/processor.js:100', selfPercent: 25 },
    ])
    expect(topFunctions(profile, 10).map((f) => f.name)).toContain('(garbage collector)')
    expect(topFunctions(profile, 10).map((f) => f.name)).not.toContain('(idle)')
    expect(topFunctions({ nodes: [] }, 5)).toEqual([])
  })
})
