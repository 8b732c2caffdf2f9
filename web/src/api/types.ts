// The shapes of ferry's JSON answers that the UI reads (the OpenAPI document describes paths
// and parameters; answers are described here, next to the handlers' field names in src/web).
export type RoleName = 'viewer' | 'operator' | 'admin'

export interface Session {
  username: string
  role: RoleName
  must_change_password?: boolean
}

export interface LoginAnswer extends Session {
  csrf_token: string
}

export interface ServiceState {
  pid: number
  state: 'running' | 'restarting' | 'stopping' | 'stopped' | string
  restarts: number
  last_exit: string
  started_at?: string
}

export interface Suspension {
  suspended: boolean
  by?: string
  at?: string
  reason?: string
}

export interface Status {
  version: string
  services: Record<string, ServiceState>
  services_updated_at?: string
  queues: Record<string, number | null>
  disk: {
    path: string
    total_bytes: number
    used_bytes: number
    free_bytes: number
    used_percent: number
  } | null
  cleaner?: {
    emergency_threshold_percent: number
    low_water_percent: number
    retention_s: number
    error_retention_s: number
  }
  suspended: { dispatch: Suspension; processing: Suspension }
  database: { available: boolean }
  notes: string[]
}

export interface Page<T> {
  total: number
  // PostgreSQL prefix searches: more than `total` tasks match (not counted).
  total_capped?: boolean
  limit: number
  offset: number
  items: T[]
}

export interface Task {
  task_id: string
  parent_id: string | null
  series_uid: string | null
  study_uid: string | null
  action: string | null
  rule: string | null
  targets: string[]
  state: string
  stage: string | null
  priority: string | null
  patient_name: string | null
  patient_id: string | null
  accession_number: string | null
  created_us: number | null
  created: string | null
  updated_us: number | null
  updated: string | null
  completed_us: number | null
  completed: string | null
  attempts: number
  last_error: string | null
  next_attempt: string | null // when a retrying task is sent again
  [key: string]: unknown
}

export interface Series {
  series_uid: string
  study_uid: string | null
  patient_name: string | null
  patient_id: string | null
  accession_number: string | null
  series_description: string | null
  modality: string | null
  sender_aet: string | null
  first_seen_us: number | null
  complete_us: number | null
  instances: number
  state: string
  rule: string | null
  [key: string]: unknown
}

export interface JournalEvent {
  id: number
  ts_us: number
  time: string
  service: string
  pid: number | null
  event: string
  task_id: string | null
  series_uid: string | null
  details: Record<string, unknown> | string | null
}

export interface TaskDetail {
  task: Task
  note?: string
  spool_stage: string | null
  events: JournalEvent[]
  children: Task[]
  task_json: Record<string, unknown> | null
  task_json_source: 'spool' | 'database' | null
}

export interface SeriesDetail {
  series: Series
  tasks: Task[]
  events: JournalEvent[]
  events_truncated: boolean
}

export interface AuditEntry {
  id: number
  time: string
  actor: string
  address: string
  action: string
  object: string
  details: Record<string, unknown> | string | null
}

export interface AuditPage {
  items: AuditEntry[]
  total: number
  limit: number
  offset: number
  next_offset: number | null
}

export interface User {
  username: string
  role: RoleName
  disabled: boolean
  created_at: string
  updated_at: string
}

export interface ApiToken {
  id: number
  username: string
  name: string
  created_at: string
  last_used_at: string | null
  expires_at: string | null
}

export interface Timeseries {
  from: string
  to: string
  from_us: number
  step_s: number
  points: number
  instances_received: number[]
  series_completed: number[]
  tasks_created: number[]
  dispatched: Record<string, number[]>
  failed: Record<string, number[]>
  latency_mean_s: (number | null)[]
  latency_max_s: (number | null)[]
}
