// Scales and SVG paths for the dashboard's line charts. Pure; tested in chart.test.ts.

export interface Line {
  label: string
  values: (number | null)[]
}

// A "nice" upper bound for the y axis: 1, 2 or 5 times a power of ten, at least `max`.
export function niceMax(max: number): number {
  if (!(max > 0)) {
    return 1
  }
  const p = 10 ** Math.floor(Math.log10(max))
  for (const m of [1, 2, 5, 10]) {
    if (m * p >= max) {
      return m * p
    }
  }
  return 10 * p
}

// The SVG path of `values` in a width x height box with y from 0 (bottom) to yMax (top); a
// null value breaks the line.
export function linePath(values: (number | null)[], width: number, height: number, yMax: number): string {
  let d = ''
  let previous = -2
  for (const p of linePoints(values, width, height, yMax)) {
    const i = values.length > 1 ? Math.round((p.x * (values.length - 1)) / width) : 0
    d += `${i === previous + 1 ? 'L' : 'M'}${p.x},${p.y}`
    previous = i
  }
  return d
}

export interface Point {
  x: number
  y: number
  value: number
  alone: boolean // no value on either side
}

// The points of `values` in the same box as linePath; null values have none.
export function linePoints(values: (number | null)[], width: number, height: number, yMax: number): Point[] {
  const dx = values.length > 1 ? width / (values.length - 1) : 0
  const out: Point[] = []
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) {
      return
    }
    const before = i > 0 ? values[i - 1] : null
    const after = i + 1 < values.length ? values[i + 1] : null
    out.push({
      x: +(i * dx).toFixed(2),
      y: +(height - (Math.min(v, yMax) / yMax) * height).toFixed(2),
      value: v,
      alone: before === null && after === null,
    })
  })
  return out
}

// Per-step counts -> per-second rates.
export function perSecond(values: number[], stepS: number): number[] {
  return values.map((v) => v / stepS)
}

// The sum of the last `n` values.
export function lastSum(values: number[], n: number): number {
  return values.slice(-n).reduce((a, b) => a + b, 0)
}
