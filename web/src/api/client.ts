// The UI's only way to the server. Paths, methods and parameters are checked at compile time
// against `paths`, generated from ferry's OpenAPI document (src/api/schema.d.ts, `make build`
// regenerates it from build/ferry_openapi): an endpoint that is renamed, removed or loses a
// parameter breaks `vue-tsc`, not a page. Answers are typed by src/api/types.ts.
//
// Session: the cookie travels by itself; unsafe methods add the CSRF token from login.
import type { paths } from './schema'

export type Method = 'get' | 'post' | 'put' | 'delete'

// The paths that have an operation for method M.
export type PathFor<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends undefined | never ? never : P
}[keyof paths]

type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>
type ParamsOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: infer X } ? X : never

type Clean<T> = [T] extends [never] ? undefined : T extends undefined ? undefined : T

export interface CallOptions<P extends keyof paths, M extends Method> {
  path?: Clean<ParamsOf<P, M> extends { path?: infer X } ? X : never>
  query?: Clean<ParamsOf<P, M> extends { query?: infer X } ? X : never>
  body?: unknown
  form?: FormData
}

// A failed call: the HTTP status and the server's {"error": ...} message.
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

// What to show for a failed call or any other error.
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}

let csrfToken = ''
let onUnauthorized: (() => void) | null = null

export function setCsrfToken(token: string) {
  csrfToken = token
}

// Called when the server answers 401 to a call made with a session (it expired or ended).
export function setUnauthorizedHandler(handler: (() => void) | null) {
  onUnauthorized = handler
}

// "/api/v1/tasks/{id}" + {id: "a b"} -> "/api/v1/tasks/a%20b"; query values that are empty
// or undefined are left out.
export function buildUrl(
  template: string,
  path?: Record<string, string | number>,
  query?: Record<string, string | number | boolean | undefined | null>,
): string {
  const url = template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = path?.[name]
    if (value === undefined || value === '') {
      throw new Error(`missing path parameter ${name} for ${template}`)
    }
    return encodeURIComponent(String(value))
  })
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== '') {
      params.set(k, String(v))
    }
  }
  const qs = params.toString()
  return qs ? `${url}?${qs}` : url
}

export async function call<T, M extends Method, P extends PathFor<M>>(
  method: M,
  path: P,
  options: CallOptions<P, M> = {},
): Promise<T> {
  const url = buildUrl(
    path as string,
    options.path as Record<string, string> | undefined,
    options.query as Record<string, string> | undefined,
  )
  const headers: Record<string, string> = { Accept: 'application/json' }
  let body: BodyInit | undefined
  if (options.form) {
    body = options.form
  } else if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.body)
  } else if (method !== 'get') {
    headers['Content-Type'] = 'application/json'
    body = '{}'
  }
  if (method !== 'get' && csrfToken) {
    headers['X-CSRF-Token'] = csrfToken
  }
  const res = await fetch(url, {
    method: method.toUpperCase(),
    headers,
    body,
    credentials: 'same-origin',
  })
  const text = await res.text()
  let data: unknown = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = text
    }
  }
  if (!res.ok) {
    const message =
      data && typeof data === 'object' && 'error' in data
        ? String((data as { error: unknown }).error)
        : `${res.status} ${res.statusText}`
    if (res.status === 401 && onUnauthorized && path !== '/api/v1/session') {
      onUnauthorized()
    }
    throw new ApiError(res.status, message)
  }
  return data as T
}

export const api = {
  get: <T, P extends PathFor<'get'>>(path: P, options?: CallOptions<P, 'get'>) =>
    call<T, 'get', P>('get', path, options),
  post: <T, P extends PathFor<'post'>>(path: P, options?: CallOptions<P, 'post'>) =>
    call<T, 'post', P>('post', path, options),
  put: <T, P extends PathFor<'put'>>(path: P, options?: CallOptions<P, 'put'>) =>
    call<T, 'put', P>('put', path, options),
  del: <T, P extends PathFor<'delete'>>(path: P, options?: CallOptions<P, 'delete'>) =>
    call<T, 'delete', P>('delete', path, options),
}
