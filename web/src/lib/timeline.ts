// Turns a task's or series' journal events into what the trace page draws: one row per event
// with its kind, its offset from the first event and the time since the previous one, plus
// one bar per dispatch attempt (dispatch.begin up to its dispatch.complete or dispatch.failed for
// the same target) with its duration and error. Pure; tested in timeline.test.ts.
import type { JournalEvent } from '../api/types'

export type EventKind =
  | 'receive'
  | 'complete'
  | 'rule'
  | 'processing'
  | 'dispatch'
  | 'notification'
  | 'follow-up'
  | 'error'
  | 'other'

export interface TimelineRow {
  event: JournalEvent
  kind: EventKind
  offsetS: number // since the first event
  sincePreviousS: number
  summary: string
}

export interface AttemptBar {
  target: string
  startS: number
  durationS: number | null // null while it has not ended
  outcome: 'delivered' | 'failed' | 'running'
  error: string
}

export interface Timeline {
  rows: TimelineRow[]
  attempts: AttemptBar[]
  totalS: number
}

function details(e: JournalEvent): Record<string, unknown> {
  return e.details && typeof e.details === 'object' ? e.details : {}
}

function str(v: unknown): string {
  if (v === undefined || v === null) {
    return ''
  }
  return typeof v === 'string' ? v : JSON.stringify(v)
}

export function kindOf(event: string): EventKind {
  if (event.endsWith('.failed') || event.endsWith('.error') || event === 'task.discarded') {
    return event.startsWith('dispatch.') ? 'dispatch' : 'error'
  }
  if (event.startsWith('series.first_seen') || event.startsWith('instance.') ||
      event.startsWith('association.') || event === 'study.series_added') {
    return 'receive'
  }
  if (event === 'series.complete' || event === 'study.complete') {
    return 'complete'
  }
  if (event.startsWith('series.classified') || event.startsWith('rule.') ||
      event === 'series.rule_forced' || event === 'series.discarded') {
    return 'rule'
  }
  if (event.startsWith('process') || event.startsWith('module.')) {
    return 'processing'
  }
  if (event.startsWith('dispatch.')) {
    return 'dispatch'
  }
  if (event.startsWith('notify.')) {
    return 'notification'
  }
  if (event === 'task.follow_up') {
    return 'follow-up'
  }
  return 'other'
}

// One line that says what happened and why, from the fields events commonly carry.
export function summarize(e: JournalEvent): string {
  const d = details(e)
  const parts: string[] = []
  for (const key of ['reason', 'rule', 'triggered', 'rejected', 'target', 'instances', 'attempt',
                     'error', 'message', 'channel', 'module', 'by']) {
    const v = d[key]
    if (v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0)) {
      parts.push(`${key}: ${str(v)}`)
    }
  }
  return parts.join(' · ')
}

export function buildTimeline(events: JournalEvent[]): Timeline {
  const sorted = [...events].sort((a, b) => a.ts_us - b.ts_us || a.id - b.id)
  const t0 = sorted.length ? sorted[0].ts_us : 0
  const rows: TimelineRow[] = []
  const attempts: AttemptBar[] = []
  const open = new Map<string, AttemptBar>()
  let previous = t0
  for (const e of sorted) {
    const offsetS = (e.ts_us - t0) / 1e6
    rows.push({
      event: e,
      kind: kindOf(e.event),
      offsetS,
      sincePreviousS: (e.ts_us - previous) / 1e6,
      summary: summarize(e),
    })
    previous = e.ts_us
    const target = str(details(e).target)
    if (e.event === 'dispatch.begin') {
      const bar: AttemptBar = { target, startS: offsetS, durationS: null, outcome: 'running', error: '' }
      open.set(target, bar)
      attempts.push(bar)
    } else if (e.event === 'dispatch.complete' || e.event === 'dispatch.failed') {
      const bar = open.get(target)
      if (bar) {
        bar.durationS = offsetS - bar.startS
        bar.outcome = e.event === 'dispatch.complete' ? 'delivered' : 'failed'
        bar.error = str(details(e).error ?? details(e).message)
        open.delete(target)
      }
    }
  }
  const totalS = sorted.length ? (sorted[sorted.length - 1].ts_us - t0) / 1e6 : 0
  return { rows, attempts, totalS }
}

// A task's own events plus the events of its series that belong to no other task (received,
// completed, classified by the rules), each once, in time order.
export function mergeEvents(taskEvents: JournalEvent[], seriesEvents: JournalEvent[], taskId: string): JournalEvent[] {
  const seen = new Set(taskEvents.map((e) => e.id))
  const merged = [...taskEvents]
  for (const e of seriesEvents) {
    if (!seen.has(e.id) && (!e.task_id || e.task_id === taskId)) {
      merged.push(e)
      seen.add(e.id)
    }
  }
  return merged.sort((a, b) => a.ts_us - b.ts_us || a.id - b.id)
}
