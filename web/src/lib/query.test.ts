import { describe, expect, it } from 'vitest'
import { fromRoute, kEmptyQuery, nameFilter, nextSort, toRoute } from './query'

describe('archive query', () => {
  it('round-trips through the URL and keeps it short', () => {
    const q = { ...kEmptyQuery, patient_name: 'doe', state: 'error', offset: 50, sort: '-created' }
    const route = toRoute(q)
    expect(route).toEqual({ patient_name: 'doe', state: 'error', offset: '50', sort: '-created' })
    expect(fromRoute(route)).toEqual(q)
    expect(toRoute(kEmptyQuery)).toEqual({})
  })

  it('ignores junk', () => {
    const q = fromRoute({ kind: 'nonsense', offset: '-5', limit: '100000', rule: ['a', 'b'] })
    expect(q.kind).toBe('tasks')
    expect(q.offset).toBe(0)
    expect(q.limit).toBe(500)
    expect(q.rule).toBe('')
  })

  it('searches names by prefix unless asked for a substring', () => {
    expect(nameFilter({ ...kEmptyQuery, patient_name: 'doe' })).toEqual({ patient_name_prefix: 'doe' })
    expect(nameFilter({ ...kEmptyQuery, patient_name: 'doe', name_match: 'contains' })).toEqual({ patient_name: 'doe' })
    expect(nameFilter(kEmptyQuery)).toEqual({})
    expect(fromRoute({ name_match: 'regex' }).name_match).toBe('')
  })

  it('toggles the sort direction of a column', () => {
    expect(nextSort('', 'patient_name')).toBe('patient_name')
    expect(nextSort('patient_name', 'patient_name')).toBe('-patient_name')
    expect(nextSort('-patient_name', 'patient_name')).toBe('patient_name')
    expect(nextSort('-created', 'rule')).toBe('rule')
  })
})
