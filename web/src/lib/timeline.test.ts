import { describe, expect, it } from 'vitest'
import type { JournalEvent } from '../api/types'
import { buildTimeline, kindOf, mergeEvents, summarize } from './timeline'

let nextId = 1
function ev(event: string, ts_s: number, details: Record<string, unknown> = {}): JournalEvent {
  return {
    id: nextId++,
    ts_us: Math.round(ts_s * 1e6),
    time: new Date(ts_s * 1000).toISOString(),
    service: 'test',
    pid: 1,
    event,
    task_id: 't1',
    series_uid: '1.2.3',
    details,
  }
}

describe('buildTimeline', () => {
  it('orders events, measures offsets and pairs dispatch attempts per target', () => {
    const t = buildTimeline([
      ev('dispatch.complete', 1003.5, { target: 'pacs', instances: 3 }),
      ev('series.first_seen', 1000),
      ev('series.complete', 1002, { reason: 'associations ended' }),
      ev('dispatch.begin', 1002.5, { target: 'pacs' }),
      ev('dispatch.begin', 1002.5, { target: 'ai' }),
      ev('dispatch.failed', 1004, { target: 'ai', error: 'connection refused' }),
      ev('dispatch.begin', 1010, { target: 'ai' }),
    ])
    expect(t.rows.map((r) => r.event.event)).toEqual([
      'series.first_seen',
      'series.complete',
      'dispatch.begin',
      'dispatch.begin',
      'dispatch.complete',
      'dispatch.failed',
      'dispatch.begin',
    ])
    expect(t.rows[1].offsetS).toBe(2)
    expect(t.rows[4].sincePreviousS).toBe(1)
    expect(t.totalS).toBe(10)
    expect(t.attempts).toEqual([
      { target: 'pacs', startS: 2.5, durationS: 1, outcome: 'delivered', error: '' },
      { target: 'ai', startS: 2.5, durationS: 1.5, outcome: 'failed', error: 'connection refused' },
      { target: 'ai', startS: 10, durationS: null, outcome: 'running', error: '' },
    ])
  })

  it('is empty for no events', () => {
    expect(buildTimeline([])).toEqual({ rows: [], attempts: [], totalS: 0 })
  })
})

describe('kinds and summaries', () => {
  it.each([
    ['series.first_seen', 'receive'],
    ['series.complete', 'complete'],
    ['series.classified', 'rule'],
    ['dispatch.failed', 'dispatch'],
    ['notify.sent', 'notification'],
    ['task.follow_up', 'follow-up'],
    ['router.error', 'error'],
    ['task.created', 'other'],
  ])('%s is %s', (event, kind) => expect(kindOf(event)).toBe(kind))

  it('says why', () => {
    expect(summarize(ev('series.complete', 0, { reason: 'forced by operator', junk: 1 }))).toBe(
      'reason: forced by operator',
    )
    expect(summarize(ev('series.classified', 0, { triggered: ['ct'], rejected: [] }))).toBe(
      'triggered: ["ct"]',
    )
  })
})

describe('mergeEvents', () => {
  it('adds the series events of no other task, once, in time order', () => {
    const own = ev('task.created', 5)
    const seriesOnly = { ...ev('series.complete', 4), task_id: null }
    const other = { ...ev('task.created', 6), task_id: 't2' }
    const merged = mergeEvents([own], [seriesOnly, own, other], 't1')
    expect(merged.map((e) => e.event)).toEqual(['series.complete', 'task.created'])
  })
})
