// The app's pages. Every page but the login needs a session; a user whose password was
// generated at first start is sent to the password page until they change it; the accounts
// and audit pages are for admins (the server refuses them to others anyway).
import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { setUnauthorizedHandler } from './api/client'
import { roleAtLeast, useSession } from './stores/session'
import type { RoleName } from './api/types'

declare module 'vue-router' {
  interface RouteMeta {
    title?: string
    anonymous?: boolean
    role?: RoleName
  }
}

const routes: RouteRecordRaw[] = [
  { path: '/login', component: () => import('./pages/login/LoginPage.vue'), meta: { anonymous: true, title: 'Log in' } },
  { path: '/', component: () => import('./pages/dashboard/DashboardPage.vue'), meta: { title: 'Dashboard' } },
  { path: '/queue', component: () => import('./pages/queue/QueuePage.vue'), meta: { title: 'Queue' } },
  { path: '/archive', component: () => import('./pages/archive/ArchivePage.vue'), meta: { title: 'Archive' } },
  { path: '/trace/task/:id', component: () => import('./pages/trace/TracePage.vue'), meta: { title: 'Trace' } },
  { path: '/trace/study/:uid', component: () => import('./pages/trace/StudyTracePage.vue'), meta: { title: 'Study trace' } },
  { path: '/trace/series/:uid', component: () => import('./pages/trace/TracePage.vue'), meta: { title: 'Trace' } },
  { path: '/audit', component: () => import('./pages/audit/AuditPage.vue'), meta: { title: 'Audit', role: 'admin' } },
  { path: '/accounts', component: () => import('./pages/accounts/AccountsPage.vue'), meta: { title: 'Accounts', role: 'admin' } },
  { path: '/logs', component: () => import('./pages/logs/LogsPage.vue'), meta: { title: 'Logs', role: 'operator' } },
  { path: '/account', component: () => import('./pages/account/AccountPage.vue'), meta: { title: 'Your account' } },
  { path: '/:rest(.*)*', component: () => import('./pages/NotFound.vue'), meta: { title: 'Not found' } },
]

export function makeRouter() {
  const router = createRouter({ history: createWebHistory(), routes })
  router.beforeEach(async (to) => {
    const session = useSession()
    if (!session.checked) {
      await session.refresh().catch(() => undefined)
    }
    if (to.meta.anonymous) {
      return session.user && to.path === '/login' ? '/' : true
    }
    if (!session.user) {
      return { path: '/login', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
    }
    if (session.user.must_change_password && to.path !== '/account') {
      return { path: '/account', query: { first: '1' } }
    }
    if (to.meta.role && !roleAtLeast(session.role, to.meta.role)) {
      return '/'
    }
    return true
  })
  router.afterEach((to) => {
    document.title = to.meta.title ? `${to.meta.title} · ferry` : 'ferry'
  })
  setUnauthorizedHandler(() => {
    const session = useSession()
    if (session.user) {
      session.forget()
      void router.push({ path: '/login', query: { expired: '1' } })
    }
  })
  return router
}
