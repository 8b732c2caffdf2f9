// Archive search state <-> the URL query, so a search can be bookmarked, shared and reloaded.
// Pure; tested in query.test.ts.
export interface ArchiveQuery {
  kind: 'tasks' | 'series'
  patient_name: string
  name_match: '' | 'contains' // '': the name starts with patient_name (fast, indexed)
  patient_id: string
  accession: string
  study_uid: string
  rule: string
  target: string
  state: string
  from: string
  to: string
  sort: string
  offset: number
  limit: number
}

export const kEmptyQuery: ArchiveQuery = {
  kind: 'tasks',
  patient_name: '',
  name_match: '',
  patient_id: '',
  accession: '',
  study_uid: '',
  rule: '',
  target: '',
  state: '',
  from: '',
  to: '',
  sort: '',
  offset: 0,
  limit: 50,
}

type RouteQuery = Record<string, string | null | (string | null)[] | undefined>

export function fromRoute(q: RouteQuery): ArchiveQuery {
  const out: ArchiveQuery = { ...kEmptyQuery }
  const text = (k: string) => {
    const v = q[k]
    return typeof v === 'string' ? v : ''
  }
  for (const k of ['patient_name', 'patient_id', 'accession', 'study_uid', 'rule', 'target', 'state', 'from', 'to', 'sort'] as const) {
    out[k] = text(k)
  }
  out.kind = text('kind') === 'series' ? 'series' : 'tasks'
  out.name_match = text('name_match') === 'contains' ? 'contains' : ''
  const offset = Number.parseInt(text('offset'), 10)
  out.offset = Number.isFinite(offset) && offset > 0 ? offset : 0
  const limit = Number.parseInt(text('limit'), 10)
  out.limit = Number.isFinite(limit) && limit > 0 ? Math.min(limit, 500) : 50
  return out
}

// Only what differs from the defaults, so URLs stay short.
export function toRoute(q: ArchiveQuery): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(q)) {
    const d = kEmptyQuery[k as keyof ArchiveQuery]
    if (v !== d && v !== '') {
      out[k] = String(v)
    }
  }
  return out
}

// The API's patient name filter for the query: a prefix unless "contains" was chosen.
export function nameFilter(q: ArchiveQuery): { patient_name?: string; patient_name_prefix?: string } {
  if (!q.patient_name) return {}
  return q.name_match === 'contains' ? { patient_name: q.patient_name } : { patient_name_prefix: q.patient_name }
}

// Clicking a column header: another column -> ascending; ascending -> descending;
// descending -> ascending.
export function nextSort(current: string, column: string): string {
  if (current === column) {
    return `-${column}`
  }
  return column
}
