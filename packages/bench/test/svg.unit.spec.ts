import { describe, expect, it } from 'vitest'
import { barChart, escapeXml, formatTick, lineChart, niceTicks } from '../src/svg.js'

describe('svg charts', () => {
  it('picks round ticks from 0 that cover the maximum', () => {
    expect(niceTicks(1000)).toEqual([0, 200, 400, 600, 800, 1000])
    expect(niceTicks(7)).toEqual([0, 2, 4, 6, 8])
    expect(niceTicks(0.9)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1])
    expect(niceTicks(0)).toEqual([0, 1])
    expect(formatTick(12_000)).toBe('12k')
    expect(formatTick(2_500_000)).toBe('2.5M')
    expect(formatTick(0.5)).toBe('0.5')
  })

  it('draws a line per series, a point and whisker per value, and a legend entry per series', () => {
    const svg = lineChart({
      title: 'T <1>',
      xLabel: 'partitions',
      yLabel: 'commands/s',
      series: [
        { name: 'esk', points: [{ x: 1, y: 100, low: 90, high: 110 }, { x: 8, y: 200 }] },
        { name: 'a & b', points: [{ x: 1, y: 300 }, { x: 8, y: NaN }] },
      ],
      reference: { y: 50, label: 'goal' },
    })
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
    expect(svg.trim().endsWith('</svg>')).toBe(true)
    expect(svg).toContain('T &lt;1&gt;')
    expect(svg).toContain('a &amp; b')
    expect(svg.match(/<polyline/g)).toHaveLength(1) // the second series has one drawable point
    expect(svg.match(/<circle/g)).toHaveLength(3)
    expect(svg).toContain('stroke-dasharray="6 3"') // the reference line
    // Points land inside the plot: x 1 of 8 on a 0..8 axis, y 100 of 300 on 0..300.
    const [cx, cy] = /<circle cx="([\d.]+)" cy="([\d.]+)"/.exec(svg)!.slice(1).map(Number)
    expect(cx).toBeCloseTo(70 + (1 / 8) * 410, 0)
    expect(cy).toBeCloseTo(36 + 274 - (100 / 300) * 274, 0)
  })

  it('draws a bar per row, proportional to its value', () => {
    const svg = barChart({ title: 'r', xLabel: 'events/s', bars: [{ label: 'a', value: 50 }, { label: 'b', value: 100 }] })
    const widths = [...svg.matchAll(/<rect x="200" y="[\d.]+" width="([\d.]+)"/g)].map((m) => Number(m[1]))
    expect(widths).toHaveLength(2)
    expect(widths[1]! / widths[0]!).toBeCloseTo(2, 5)
    expect(escapeXml('"<&>"')).toBe('&quot;&lt;&amp;&gt;&quot;')
  })
})
