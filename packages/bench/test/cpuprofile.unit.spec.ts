import { describe, expect, it } from 'vitest'
import { topFunctions, type CpuProfile } from '../src/cpuprofile.js'
import { windowProfileFiles } from '../src/window-profile.js'

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

describe('topFunctions over several profiles', () => {
  it('adds up the samples of every profile before ranking', () => {
    const frame = (functionName: string) => ({ functionName, url: 'file:///x/dist/a.js', lineNumber: 0 })
    const first: CpuProfile = { nodes: [{ id: 1, callFrame: frame('encode'), hitCount: 10 }, { id: 2, callFrame: frame('decode'), hitCount: 30 }] }
    const second: CpuProfile = { nodes: [{ id: 1, callFrame: frame('encode'), hitCount: 50 }, { id: 2, callFrame: frame('(idle)'), hitCount: 500 }] }
    expect(topFunctions([first, second], 5)).toEqual([
      { name: 'encode', where: 'x/dist/a.js:1', selfPercent: 66.7 },
      { name: 'decode', where: 'x/dist/a.js:1', selfPercent: 33.3 },
    ])
  })
})

describe('windowProfileFiles', () => {
  it('finds the profiles of one process, in window order, and none of another process', () => {
    const files = ['esk-p4-x1-1-w10.cpuprofile', 'esk-p4-x1-1-w2.cpuprofile', 'esk-p4-x1-client-w1.cpuprofile', 'esk-p4-x1-11-w1.cpuprofile', 'tx-p4-x1-1-w1.cpuprofile']
    expect(windowProfileFiles(files, '/tmp/p/esk-p4-x1-1')).toEqual(['/tmp/p/esk-p4-x1-1-w2.cpuprofile', '/tmp/p/esk-p4-x1-1-w10.cpuprofile'])
    expect(windowProfileFiles(files, '/tmp/p/esk-p4-x1-2')).toEqual([])
  })
})
