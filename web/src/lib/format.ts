// Formatting shared by the pages: times in the browser's zone (UTC in the tooltip), durations,
// sizes. Pure functions, tested in format.test.ts.

// ISO 8601 or epoch microseconds -> Date; null when absent or unparseable.
export function toDate(value: string | number | null | undefined): Date | null {
  if (value === null || value === undefined || value === '') {
    return null
  }
  const d = typeof value === 'number' ? new Date(value / 1000) : new Date(value)
  return Number.isNaN(d.getTime()) ? null : d
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0')
}

// "2026-12-08 14:03:07" in the browser's time zone.
export function formatLocal(value: string | number | null | undefined): string {
  const d = toDate(value)
  if (!d) {
    return '—'
  }
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  )
}

// "2026-12-08 13:03:07.123 UTC", for the tooltip.
export function formatUtc(value: string | number | null | undefined): string {
  const d = toDate(value)
  if (!d) {
    return ''
  }
  return d.toISOString().replace('T', ' ').replace('Z', ' UTC')
}

// 0.0123 s -> "12 ms", 75 s -> "1 min 15 s", 3 h -> "3 h 0 min".
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return '—'
  }
  const s = Math.max(0, seconds)
  if (s < 1) {
    return `${Math.round(s * 1000)} ms`
  }
  if (s < 60) {
    return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
  }
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

// 1536 -> "1.5 KiB".
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) {
    return '—'
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = bytes
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`
}

// A value of a datetime-local input ("2026-12-08T14:00", the browser's zone) -> ISO 8601 UTC
// for the API; empty stays empty.
export function localInputToIso(value: string): string {
  if (!value) {
    return ''
  }
  const d = new Date(value)
  return Number.isNaN(d.getTime()) ? '' : d.toISOString()
}
