/** The top functions by self time in a V8 CPU profile (the `.cpuprofile` that `node --cpu-prof` writes). */

/** The parts of a `.cpuprofile` read here. */
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }>
  samples?: number[]
}

/** A function's share of the busy samples (idle left out) taken while it was on top of the stack. */
export interface HotFunction {
  name: string
  /** The last three segments of the file's path (package, folder, file) and the 1-based line. */
  where: string
  selfPercent: number
}

/**
 * The `count` functions with the most self samples, merged by name and location (a function
 * appears once per call path in the tree, and in each of several profiles), as shares of the busy
 * samples: `(idle)` is left out, while the GC and `(program)` pseudo-frames are kept, since they
 * say where busy time went too.
 */
export function topFunctions(profiles: CpuProfile | readonly CpuProfile[], count: number): HotFunction[] {
  const hits = new Map<string, { name: string; where: string; hits: number }>()
  let total = 0
  for (const node of (Array.isArray(profiles) ? profiles : [profiles]).flatMap((p: CpuProfile) => p.nodes)) {
    const n = node.hitCount ?? 0
    if (n === 0 || node.callFrame.functionName === '(idle)') continue
    total += n
    const { functionName, url, lineNumber } = node.callFrame
    const name = functionName || '(anonymous)'
    const where = url ? `${url.split('/').slice(-3).join('/')}:${lineNumber + 1}` : ''
    const key = `${name}@${where}`
    const entry = hits.get(key)
    if (entry) entry.hits += n
    else hits.set(key, { name, where, hits: n })
  }
  return [...hits.values()]
    .sort((a, b) => b.hits - a.hits)
    .slice(0, count)
    .map((h) => ({ name: h.name, where: h.where, selfPercent: Math.round((h.hits / Math.max(1, total)) * 1000) / 10 }))
}
