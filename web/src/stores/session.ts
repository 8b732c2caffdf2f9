// Who is logged in, with which role, and the CSRF token of the session. Shared by the layout,
// the router guard and every page that shows or hides actions by role. The server still checks
// every call; the role here only decides what is shown.
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, ApiError, setCsrfToken } from '../api/client'
import type { LoginAnswer, RoleName, Session } from '../api/types'

const kRank: Record<RoleName, number> = { viewer: 0, operator: 1, admin: 2 }
const kCsrfKey = 'ferry.csrf'

// True when `role` is at least `needed`.
export function roleAtLeast(role: RoleName | undefined, needed: RoleName): boolean {
  return role !== undefined && kRank[role] >= kRank[needed]
}

export const useSession = defineStore('session', () => {
  const user = ref<Session | null>(null)
  const checked = ref(false)

  const role = computed(() => user.value?.role)
  const canOperate = computed(() => roleAtLeast(role.value, 'operator'))
  const isAdmin = computed(() => roleAtLeast(role.value, 'admin'))

  // Asks the server whether the cookie still holds a session (after a reload).
  async function refresh(): Promise<void> {
    // The CSRF token survives a reload of the tab, not the tab itself.
    setCsrfToken(sessionStorage.getItem(kCsrfKey) ?? '')
    try {
      user.value = await api.get<Session, '/api/v1/session'>('/api/v1/session')
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) {
        throw e
      }
      user.value = null
    } finally {
      checked.value = true
    }
  }

  async function login(username: string, password: string): Promise<void> {
    const answer = await api.post<LoginAnswer, '/api/v1/session'>('/api/v1/session', {
      body: { username, password },
    })
    setCsrfToken(answer.csrf_token)
    sessionStorage.setItem(kCsrfKey, answer.csrf_token)
    user.value = {
      username: answer.username,
      role: answer.role,
      must_change_password: answer.must_change_password,
    }
    checked.value = true
  }

  async function logout(): Promise<void> {
    try {
      await api.del<unknown, '/api/v1/session'>('/api/v1/session')
    } finally {
      forget()
    }
  }

  // The server ended the session (401): forget it locally.
  function forget() {
    user.value = null
    setCsrfToken('')
    sessionStorage.removeItem(kCsrfKey)
  }

  function passwordChanged() {
    if (user.value) {
      user.value = { ...user.value, must_change_password: false }
    }
  }

  return { user, checked, role, canOperate, isAdmin, refresh, login, logout, forget, passwordChanged }
})
