import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, api, buildUrl, setCsrfToken, setUnauthorizedHandler } from './client'
import { roleAtLeast } from '../stores/session'

function answer(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
}

afterEach(() => {
  vi.unstubAllGlobals()
  setCsrfToken('')
  setUnauthorizedHandler(null)
})

describe('buildUrl', () => {
  it('fills and escapes path parameters and drops empty query values', () => {
    expect(buildUrl('/api/v1/tasks/{id}', { id: 'a b/c' })).toBe('/api/v1/tasks/a%20b%2Fc')
    expect(buildUrl('/api/v1/tasks', undefined, { patient_name: 'O\'Neil & co', state: '', rule: undefined, limit: 50 }))
      .toBe("/api/v1/tasks?patient_name=O%27Neil+%26+co&limit=50")
    expect(() => buildUrl('/api/v1/tasks/{id}', {})).toThrow(/missing path parameter id/)
  })
})

describe('call', () => {
  it('sends the CSRF token with unsafe methods only', async () => {
    const fetch = vi.fn(async () => answer(200, { ok: true }))
    vi.stubGlobal('fetch', fetch)
    setCsrfToken('tok')
    await api.get('/api/v1/status')
    await api.post('/api/v1/tasks/{id}/retry', { path: { id: 't1' } })
    const [getUrl, getInit] = fetch.mock.calls[0] as unknown as [string, RequestInit]
    const [postUrl, postInit] = fetch.mock.calls[1] as unknown as [string, RequestInit]
    expect(getUrl).toBe('/api/v1/status')
    expect((getInit.headers as Record<string, string>)['X-CSRF-Token']).toBeUndefined()
    expect(postUrl).toBe('/api/v1/tasks/t1/retry')
    expect(postInit.method).toBe('POST')
    expect((postInit.headers as Record<string, string>)['X-CSRF-Token']).toBe('tok')
    expect(postInit.body).toBe('{}')
  })

  it('turns the server error into an ApiError and reports an ended session', async () => {
    vi.stubGlobal('fetch', vi.fn(async () => answer(409, { error: 'the task is not in error/' })))
    await expect(api.post('/api/v1/tasks/{id}/discard', { path: { id: 'x' } })).rejects.toEqual(
      new ApiError(409, 'the task is not in error/'),
    )
    const ended = vi.fn()
    setUnauthorizedHandler(ended)
    vi.stubGlobal('fetch', vi.fn(async () => answer(401, { error: 'log in' })))
    await expect(api.get('/api/v1/status')).rejects.toMatchObject({ status: 401 })
    expect(ended).toHaveBeenCalledTimes(1)
    // A failed login is not an ended session.
    await expect(api.post('/api/v1/session', { body: {} })).rejects.toMatchObject({ status: 401 })
    expect(ended).toHaveBeenCalledTimes(1)
  })
})

describe('roles', () => {
  it('orders viewer < operator < admin', () => {
    expect(roleAtLeast('admin', 'operator')).toBe(true)
    expect(roleAtLeast('operator', 'operator')).toBe(true)
    expect(roleAtLeast('viewer', 'operator')).toBe(false)
    expect(roleAtLeast(undefined, 'viewer')).toBe(false)
  })
})
