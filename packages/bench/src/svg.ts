/**
 * Small SVG charts for docs/benchmarks.md, written as plain text so the files diff well: a line
 * chart (a series per system, optional min/max whiskers) and a horizontal bar chart.
 */

/** One point of a line series; `low`/`high` draw a whisker (the spread of repetitions). */
export interface Point {
  x: number
  y: number
  low?: number
  high?: number
}

/** A named line. */
export interface Series {
  name: string
  points: Point[]
}

/** A line chart's content. */
export interface LineChart {
  title: string
  xLabel: string
  yLabel: string
  series: Series[]
  /** Draw the diagonal y = x (achieved against offered load). */
  diagonal?: boolean
  /** A horizontal reference line, such as a goal. */
  reference?: { y: number; label: string }
}

/** A bar chart's content: one bar per row. */
export interface BarChart {
  title: string
  xLabel: string
  bars: Array<{ label: string; value: number }>
}

const WIDTH = 640
const HEIGHT = 360
const MARGIN = { left: 70, right: 160, top: 36, bottom: 50 }
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']

/** Escapes text for an SVG text node or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** About `count` round tick values (1, 2 or 5 times a power of ten) from 0 to at least `max`. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1]
  const raw = max / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power
  const ticks: number[] = []
  for (let value = 0; value < max + step / 2 && ticks.length < 50; value += step) ticks.push(Number(value.toPrecision(12)))
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks.length * step).toPrecision(12)))
  return ticks
}

/** A tick label: 12000 -> "12k", 0.5 -> "0.5". */
export function formatTick(value: number): string {
  if (Math.abs(value) >= 1_000_000) return `${Number((value / 1_000_000).toPrecision(3))}M`
  if (Math.abs(value) >= 1_000) return `${Number((value / 1_000).toPrecision(3))}k`
  return String(Number(value.toPrecision(3)))
}

function frame(title: string, body: string[], height = HEIGHT): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14">${escapeXml(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

const fmt = (n: number): string => String(Math.round(n * 10) / 10)

/** Renders a line chart; points with a non-finite coordinate are left out. */
export function lineChart(chart: LineChart): string {
  const points = chart.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
  const xTicks = niceTicks(Math.max(0, ...points.map((p) => p.x)))
  const yValues = points.flatMap((p) => [p.y, p.high ?? p.y])
  if (chart.reference) yValues.push(chart.reference.y)
  const yTicks = niceTicks(Math.max(0, ...yValues.filter(Number.isFinite)))
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const xMax = xTicks[xTicks.length - 1]!
  const yMax = yTicks[yTicks.length - 1]!
  const sx = (x: number): number => MARGIN.left + (x / xMax) * plotW
  const sy = (y: number): number => MARGIN.top + plotH - (Math.min(y, yMax) / yMax) * plotH
  const body: string[] = []
  for (const t of xTicks) {
    body.push(`<line x1="${fmt(sx(t))}" y1="${MARGIN.top}" x2="${fmt(sx(t))}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`)
    body.push(`<text x="${fmt(sx(t))}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${formatTick(t)}</text>`)
  }
  for (const t of yTicks) {
    body.push(`<line x1="${MARGIN.left}" y1="${fmt(sy(t))}" x2="${MARGIN.left + plotW}" y2="${fmt(sy(t))}" stroke="#eee"/>`)
    body.push(`<text x="${MARGIN.left - 6}" y="${fmt(sy(t) + 4)}" text-anchor="end">${formatTick(t)}</text>`)
  }
  body.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`)
  body.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`)
  body.push(
    `<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">${escapeXml(chart.yLabel)}</text>`,
  )
  if (chart.diagonal) {
    const end = Math.min(xMax, yMax)
    body.push(`<line x1="${fmt(sx(0))}" y1="${fmt(sy(0))}" x2="${fmt(sx(end))}" y2="${fmt(sy(end))}" stroke="#aaa" stroke-dasharray="4 4"/>`)
  }
  if (chart.reference) {
    const y = fmt(sy(chart.reference.y))
    body.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotW}" y2="${y}" stroke="#444" stroke-dasharray="6 3"/>`)
    body.push(`<text x="${MARGIN.left + plotW + 4}" y="${y}" font-size="11">${escapeXml(chart.reference.label)}</text>`)
  }
  chart.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length]!
    const drawn = series.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x)
    if (drawn.length > 1) {
      const path = drawn.map((p) => `${fmt(sx(p.x))},${fmt(sy(p.y))}`).join(' ')
      body.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`)
    }
    for (const p of drawn) {
      if (p.low !== undefined && p.high !== undefined && Number.isFinite(p.low) && Number.isFinite(p.high)) {
        body.push(`<line x1="${fmt(sx(p.x))}" y1="${fmt(sy(p.low))}" x2="${fmt(sx(p.x))}" y2="${fmt(sy(p.high))}" stroke="${color}"/>`)
      }
      body.push(`<circle cx="${fmt(sx(p.x))}" cy="${fmt(sy(p.y))}" r="3" fill="${color}"/>`)
    }
    const ly = MARGIN.top + 10 + i * 18
    body.push(`<rect x="${WIDTH - MARGIN.right + 12}" y="${ly - 8}" width="12" height="12" fill="${color}"/>`)
    body.push(`<text x="${WIDTH - MARGIN.right + 30}" y="${ly + 2}">${escapeXml(series.name)}</text>`)
  })
  return frame(chart.title, body)
}

/** Renders a horizontal bar chart with the value printed beside each bar. */
export function barChart(chart: BarChart): string {
  const ticks = niceTicks(Math.max(0, ...chart.bars.map((b) => b.value).filter(Number.isFinite)))
  const max = ticks[ticks.length - 1]!
  const left = 200
  const plotW = WIDTH - left - 90
  const barH = 22
  const height = MARGIN.top + chart.bars.length * (barH + 10) + 50
  const body: string[] = []
  chart.bars.forEach((bar, i) => {
    const y = MARGIN.top + 10 + i * (barH + 10)
    const w = Number.isFinite(bar.value) ? (bar.value / max) * plotW : 0
    body.push(`<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${escapeXml(bar.label)}</text>`)
    body.push(`<rect x="${left}" y="${y}" width="${fmt(w)}" height="${barH}" fill="${COLORS[i % COLORS.length]!}"/>`)
    body.push(`<text x="${fmt(left + w + 6)}" y="${y + barH / 2 + 4}">${Number.isFinite(bar.value) ? formatTick(bar.value) : 'n/a'}</text>`)
  })
  body.push(`<text x="${left + plotW / 2}" y="${height - 14}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`)
  return frame(chart.title, body, height)
}
