import { describe, expect, it } from 'vitest'
import { formatBytes, formatDuration, formatLocal, formatUtc, localInputToIso, toDate } from './format'

describe('times', () => {
  it('reads ISO strings and epoch microseconds alike', () => {
    expect(toDate('2026-12-08T13:03:07Z')?.getTime()).toBe(Date.UTC(2026, 11, 8, 13, 3, 7))
    expect(toDate(Date.UTC(2026, 11, 8, 13, 3, 7) * 1000)?.toISOString()).toBe(
      '2026-12-08T13:03:07.000Z',
    )
    expect(toDate(null)).toBeNull()
    expect(toDate('not a time')).toBeNull()
  })

  it('shows UTC in the tooltip and the local zone on the page', () => {
    expect(formatUtc('2026-12-08T13:03:07.123Z')).toBe('2026-12-08 13:03:07.123 UTC')
    const d = new Date('2026-12-08T13:03:07Z')
    const hours = String(d.getHours()).padStart(2, '0')
    expect(formatLocal('2026-12-08T13:03:07Z')).toMatch(new RegExp(` ${hours}:03:07$`))
    expect(formatLocal(undefined)).toBe('—')
  })

  it('turns a local input value into UTC', () => {
    const iso = localInputToIso('2026-12-08T14:00')
    expect(new Date(iso).getHours()).toBe(14)
    expect(iso.endsWith('Z')).toBe(true)
    expect(localInputToIso('')).toBe('')
  })
})

describe('durations and sizes', () => {
  it.each([
    [0.0123, '12 ms'],
    [2.345, '2.3 s'],
    [42, '42 s'],
    [75, '1 min 15 s'],
    [3 * 3600 + 120, '3 h 2 min'],
    [-1, '0 ms'],
  ])('%s s is %s', (s, text) => expect(formatDuration(s)).toBe(text))

  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [200 * 1024 * 1024, '200 MiB'],
    [3.5 * 1024 ** 4, '3.5 TiB'],
  ])('%s bytes is %s', (b, text) => expect(formatBytes(b)).toBe(text))
})
