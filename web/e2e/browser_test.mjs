// The web UI in a real browser: Debian's chromium driven by playwright-core against a ferry that
// tests/e2e/test_web_ui.py started and filled with real DICOM. Reads its facts from the JSON
// file named by FERRY_UI_TEST (url, users, task ids, series uids, screenshot folder); prints
// one line per step and exits non-zero on the first failed check. Downloads no browser.
import { readFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { chromium, request } from 'playwright-core'

const facts = JSON.parse(readFileSync(process.env.FERRY_UI_TEST, 'utf8'))
const require = createRequire(import.meta.url)
const axePath = require.resolve('axe-core/axe.min.js')
const shots = facts.screenshots
mkdirSync(shots, { recursive: true })
const TIMEOUT = 15000

function check(condition, message) {
  if (!condition) {
    throw new Error(`check failed: ${message}`)
  }
}

function step(name) {
  console.log(`[ui] ${name}`)
}

const browser = await chromium.launch({
  executablePath: facts.chromium ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
})
const axeFindings = []
let lastPage = null

async function newPage(options = {}) {
  // bypassCSP: only so that axe-core can be injected; the app itself runs under the CSP.
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, bypassCSP: true, ...options })
  const page = await context.newPage()
  page.setDefaultTimeout(TIMEOUT)
  lastPage = page
  page.on('pageerror', (e) => console.log(`[ui] page error: ${e.message}`))
  return { context, page }
}

async function shot(page, name) {
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true })
}

// axe-core in the page: serious and critical findings fail the test.
async function accessible(page, name) {
  await page.addScriptTag({ path: axePath })
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] })
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
      target: v.nodes[0]?.target?.join(' ') }))
  })
  for (const v of result) {
    axeFindings.push({ page: name, ...v })
  }
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical')
  check(bad.length === 0, `axe on ${name}: ${JSON.stringify(bad)}`)
}

async function login(page, user, password) {
  await page.goto(`${facts.url}/login`)
  await page.getByLabel('User name').fill(user)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Log in' }).click()
}

async function apiStatus(page, method, path) {
  return page.evaluate(
    async ([m, p]) => {
      const r = await fetch(p, {
        method: m,
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': sessionStorage.getItem('ferry.csrf') ?? '' },
        body: m === 'GET' ? undefined : '{}',
      })
      return r.status
    },
    [method, path],
  )
}

try {
  // --- first start: the generated admin password is used once ---
  {
    const { context, page } = await newPage()
    step('an anonymous visit lands on the login page')
    await page.goto(`${facts.url}/queue`)
    await page.waitForURL(/\/login\?next=(%2F|\/)queue/)
    await shot(page, '01-login')
    await accessible(page, 'login')

    step('a wrong password is refused with the server message')
    await login(page, 'admin', 'wrong password')
    await page.locator('[data-test=error]').waitFor()

    step('the generated admin password leads to the password page first')
    await login(page, 'admin', facts.admin_password)
    await page.waitForURL(/\/account\?first=1/)
    check(await page.getByText('still has the password generated').isVisible(), 'first-start notice')
    await page.goto(`${facts.url}/archive`)
    await page.waitForURL(/\/account/)
    await shot(page, '02-first-password')
    await page.getByLabel('Current password').fill(facts.admin_password)
    await page.getByLabel('New password (8 characters or more)').fill(facts.new_admin_password)
    await page.getByLabel('New password again').fill(facts.new_admin_password)
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.waitForURL(`${facts.url}/`)

    step('dashboard: services, queues, disk and charts')
    await page.locator('[data-service=receiver]').waitFor()
    for (const s of ['receiver', 'router', 'dispatcher', 'bookkeeper', 'web']) {
      check(await page.locator(`[data-service=${s}]`).count() === 1, `service ${s} listed`)
    }
    await page.locator('[data-stage=error] .n').filter({ hasText: '1' }).waitFor()
    await page.locator('[data-test=disk-percent]').waitFor()
    await page.getByText('Instances received per second').waitFor()
    let received = -1
    for (let i = 0; i < 50 && received !== facts.instances_sent; i++) {
      received = await page.evaluate(async () => {
        const r = await fetch('/api/v1/stats/timeseries?minutes=60&step=30')
        const j = await r.json()
        return j.instances_received.reduce((a, b) => a + b, 0)
      })
      if (received !== facts.instances_sent) await page.waitForTimeout(200)
    }
    check(received === facts.instances_sent, `charts count ${received} instances, sent ${facts.instances_sent}`)
    await page.waitForTimeout(500)
    await shot(page, '03-dashboard')
    await accessible(page, 'dashboard')

    step('an admin restarts a service through the supervisor')
    const restarts = async () => Number(await page.locator('[data-service=cleaner] td:nth-child(4)').textContent())
    const before = await restarts()
    await page.getByRole('button', { name: 'Restart cleaner' }).click()
    await page.locator('[data-test=confirm]').click()
    await page.locator('[data-test=success]', { hasText: 'Restart of cleaner requested' }).waitFor()
    for (let i = 0; i < 100 && (await restarts()) <= before; i++) {
      await page.waitForTimeout(200)
    }
    check((await restarts()) === before + 1, `cleaner restarted once (${before} -> ${await restarts()})`)

    step('logs: lines of every service, filtered, with the generated password masked')
    await page.getByRole('link', { name: 'Logs' }).click()
    await page.locator('[data-test=logs] tbody tr').first().waitFor()
    await page.getByLabel('Service').selectOption('web')
    await page.getByLabel('Lowest level').selectOption('warn')
    await page.getByLabel('Text').fill('created the first account')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.locator('[data-test=logs]', { hasText: "with password '***'" }).waitFor()
    check(!(await page.content()).includes(facts.admin_password), 'the generated password is not shown')
    await page.getByLabel('Service').selectOption('')
    await page.getByLabel('Lowest level').selectOption('info')
    await page.getByLabel('Text').fill('')
    await page.getByRole('button', { name: 'Filter' }).click()
    await page.locator('[data-test=logs] >> text=dispatcher').first().waitFor()
    await shot(page, '04-logs')
    await accessible(page, 'logs')

    step('archive: search by patient name, accession, study and sort')
    await page.getByRole('link', { name: 'Archive' }).click()
    await page.getByLabel('Patient name').fill('archive^an')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.locator(`[data-test=task-results] >> text=${facts.archive_task}`).waitFor()
    check((await page.locator('[data-test=task-results] tbody tr').count()) === 1, 'one task for Archive^Anna')
    await page.getByLabel('Patient name').fill('')
    await page.getByLabel('Accession').fill('ACC-B')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.locator(`[data-test=task-results] >> text=${facts.broken_task}`).waitFor()
    await page.getByLabel('Accession').fill('')
    await page.getByLabel('Study UID').fill(facts.archive_study)
    await page.getByRole('button', { name: 'Search' }).click()
    await page.locator(`[data-test=task-results] >> text=${facts.archive_task}`).waitFor()
    check((await page.locator('[data-test=task-results] tbody tr').count()) === 1, 'one task of the study')
    await page.getByLabel('Study UID').fill('')
    await page.getByRole('button', { name: 'Search' }).click()
    await Promise.all([
      page.waitForResponse((r) => r.url().includes('/api/v1/tasks?') && r.url().includes('sort=patient_name')),
      page.getByRole('button', { name: /^Patient/ }).click(),
    ])
    await page.waitForURL(/sort=patient_name/)
    await page.waitForTimeout(100) // the page renders the answer
    const names = await page.locator('[data-test=task-results] tbody tr td:nth-child(2)').allTextContents()
    check(JSON.stringify(names) === JSON.stringify([...names].sort()), `sorted by patient: ${names}`)
    await shot(page, '05-archive')
    await accessible(page, 'archive')

    step('trace: timeline, dispatch attempt and task.json of the delivered task')
    await page.goto(`${facts.url}/trace/task/${facts.archive_task}`)
    await page.locator('[data-test=events]').waitFor()
    for (const e of ['series.complete', 'task.created', 'dispatch.complete', 'task.completed']) {
      check(await page.locator('[data-test=events]').getByText(e, { exact: true }).count() >= 1, `trace has ${e}`)
    }
    check((await page.locator('svg rect title').allTextContents()).some((t) => t.startsWith('archive: delivered')),
      'a delivered dispatch bar for the archive target')
    const taskJson = await page.locator('[data-test=task-json]').textContent()
    check(taskJson.includes(facts.archive_series), 'task.json names the series')
    await shot(page, '06-trace')
    await accessible(page, 'trace')

    step('trace of the study: its series, tasks and events')
    await page.getByRole('link', { name: facts.archive_study }).click()
    await page.locator(`[data-test=study-series] >> text=${facts.archive_series}`).waitFor()
    await page.locator('[data-test=study-events]').getByText('series.complete', { exact: true }).first().waitFor()
    check(await page.getByRole('link', { name: facts.archive_task }).count() === 1, 'the study lists its task')
    await shot(page, '06-trace-study')
    await accessible(page, 'study trace')

    step('accounts: create a viewer, who shows in the list')
    await page.getByRole('link', { name: 'Accounts' }).click()
    await page.getByLabel('User name').fill('nina')
    await page.getByLabel('Password', { exact: true }).fill('nina-password-1')
    await page.locator('select[name=new-role]').selectOption('viewer')
    await page.getByRole('button', { name: 'Create account' }).click()
    await page.locator('[data-user=nina]').waitFor()
    step('accounts: reset a password and disable an account')
    page.once('dialog', (d) => void d.accept('nina-password-2'))
    await page.locator('[data-user=nina]').getByRole('button', { name: 'Reset password' }).click()
    await page.locator('[data-test=success]', { hasText: 'Password of nina reset' }).waitFor()
    // A client of its own: a login through the page's context would replace admin's cookie.
    const ninaLogin = async (password) => {
      const client = await request.newContext()
      const status = (await client.post(`${facts.url}/api/v1/session`, {
        data: { username: 'nina', password }, headers: { 'Content-Type': 'application/json' } })).status()
      await client.dispose()
      return status
    }
    check((await ninaLogin('nina-password-2')) === 200, 'nina logs in with the reset password')
    await page.locator('[data-user=nina]').getByRole('button', { name: 'Disable' }).click()
    await page.locator('dialog[open] [data-test=confirm]').click() // the page has two dialogs
    await page.locator('[data-user=nina]', { hasText: 'disabled' }).waitFor()
    check((await ninaLogin('nina-password-2')) === 401, 'a disabled account cannot log in')
    await page.getByLabel('Label').fill('grafana')
    await page.getByRole('button', { name: 'Create token' }).click()
    const token = (await page.locator('[data-test=new-token] code').textContent()).trim()
    check(/^ferry_[0-9a-f]{64}$/.test(token), `a new token is shown once: ${token}`)
    const tokenStatus = await page.evaluate(async (t) => (await fetch('/api/v1/status', {
      credentials: 'omit', headers: { Authorization: `Bearer ${t}` } })).status, token)
    check(tokenStatus === 200, `the new token works (${tokenStatus})`)
    await shot(page, '07-accounts')
    await accessible(page, 'accounts')

    step('audit: the password change and the new account are recorded')
    await page.getByRole('link', { name: 'Audit' }).click()
    await page.locator('[data-test=audit] >> text=user.created').first().waitFor()
    await page.getByLabel('Action').fill('user.created')
    await page.getByRole('button', { name: 'Search' }).click()
    await page.locator('[data-test=audit] >> text=nina').first().waitFor()
    await shot(page, '08-audit')
    await accessible(page, 'audit')

    step('dark mode')
    await page.getByRole('button', { name: /Theme/ }).click() // system -> light
    await page.getByRole('button', { name: /Theme/ }).click() // light -> dark
    check((await page.evaluate(() => document.documentElement.dataset.theme)) === 'dark', 'dark theme set')
    await page.getByRole('link', { name: 'Dashboard', exact: true }).click()
    await page.locator('[data-service=receiver]').waitFor()
    await shot(page, '09-dashboard-dark')
    await accessible(page, 'dashboard (dark)')

    step('logging out ends the session on the server')
    const cookie = (await context.cookies()).find((c) => c.name === 'ferry_session')
    check(cookie !== undefined, 'a session cookie while logged in')
    await page.getByRole('button', { name: 'Log out' }).click()
    await page.waitForURL(/\/login/)
    check((await apiStatus(page, 'GET', '/api/v1/status')) === 401, 'the API refuses the logged-out browser')
    // The old cookie, sent again by hand, is refused too: the server ended the session.
    const replay = await context.request.get(`${facts.url}/api/v1/status`, {
      headers: { Cookie: `ferry_session=${cookie.value}` },
    })
    check(replay.status() === 401, `the ended session's cookie is refused (${replay.status()})`)
    await context.close()
  }

  // --- an operator acts on the queue ---
  {
    const { context, page } = await newPage({ viewport: { width: 1024, height: 768 } }) // a tablet
    await login(page, facts.operator, facts.password)
    await page.waitForURL(`${facts.url}/`)
    check(await page.getByRole('link', { name: 'Accounts' }).count() === 0, 'no accounts link for an operator')
    await page.getByRole('link', { name: 'Queue' }).click()
    const failedRow = page.locator(`[data-task="${facts.broken_task}"]`)
    await failedRow.waitFor()
    await shot(page, '10-queue-operator')
    await accessible(page, 'queue')

    step('suspend dispatch asks for confirmation, then resume')
    await page.locator('[data-test=toggle-dispatch]').click()
    await page.locator('[data-test=reason]').fill('PACS maintenance')
    await page.locator('[data-test=confirm]').click()
    await page.locator('[data-test=success]', { hasText: 'dispatch suspended' }).waitFor()
    await page.locator('[data-activity=dispatch]', { hasText: 'suspended' }).waitFor()
    await page.locator('[data-test=toggle-dispatch]', { hasText: 'Resume dispatch' }).click()
    await page.locator('[data-test=success]', { hasText: 'dispatch resumed' }).waitFor()

    step('retry the failed task, then discard it after it failed again')
    await failedRow.getByRole('button', { name: 'Retry' }).click()
    await page.locator('[data-test=success]', { hasText: 'queued for dispatch again' }).waitFor()
    await failedRow.waitFor({ state: 'detached', timeout: TIMEOUT }).catch(() => undefined)
    await failedRow.waitFor({ timeout: 30000 }) // the target is still broken: it fails again
    await failedRow.getByRole('button', { name: 'Discard' }).click()
    await page.locator('[data-test=confirm]').waitFor()
    await page.getByRole('button', { name: 'Cancel' }).click()
    check(await failedRow.count() === 1, 'cancel keeps the task')
    await failedRow.getByRole('button', { name: 'Discard' }).click()
    await page.locator('[data-test=reason]').fill('test data')
    await page.locator('[data-test=confirm]').click()
    await page.locator('[data-test=success]', { hasText: 'discarded' }).waitFor()
    await failedRow.waitFor({ state: 'detached' })

    step('force a series waiting in incoming/ complete from its row')
    const waiting = page.locator(`[data-test=incoming-series] [data-series="${facts.waiting_series}"]`)
    await waiting.waitFor()
    check(await page.locator(`[data-test=incoming-series] [data-series="${facts.archive_series}"]`).count() === 0,
      'a routed series is not listed as waiting')
    await waiting.getByRole('button', { name: 'Complete now' }).click()
    await page.locator('[data-test=success]', { hasText: 'marked complete' }).waitFor()
    await waiting.waitFor({ state: 'detached' })

    step('route a series with a named rule')
    await page.getByLabel('Series Instance UID').fill(facts.route_series)
    await page.getByLabel('Rule', { exact: true }).fill('manual')
    await page.getByRole('button', { name: 'Route with rule' }).click()
    await page.locator('[data-test=confirm]').click()
    await page.locator('[data-test=success]', { hasText: 'routed with rule manual' }).waitFor()
    await page.getByLabel('Series Instance UID').fill('1.2.3.no.such.series')
    await page.getByRole('button', { name: 'Force complete', exact: true }).click()
    await page.locator('[data-test=error]').waitFor()
    await shot(page, '11-queue-actions')
    await context.close()
  }

  // --- a viewer sees no actions and cannot call them ---
  {
    const { context, page } = await newPage({ timezoneId: 'Asia/Tokyo' })
    step('keyboard: the skip link and the login form work without a mouse')
    await page.goto(`${facts.url}/login`)
    await page.getByLabel('User name').waitFor()
    // The user name field has autofocus; the skip link is the one focusable element before it.
    const focused = () => page.evaluate(() => document.activeElement?.getAttribute('name') ?? document.activeElement?.textContent?.trim())
    check((await focused()) === 'username', `the user name field has the focus (${await focused()})`)
    await page.keyboard.press('Shift+Tab')
    check((await focused()) === 'Skip to content', `Shift+Tab reaches the skip link (${await focused()})`)
    await page.keyboard.press('Tab')
    check((await focused()) === 'username', 'Tab returns to the user name')
    await page.keyboard.type(facts.viewer)
    await page.keyboard.press('Tab')
    await page.keyboard.type(facts.password)
    await page.keyboard.press('Enter')
    await page.waitForURL(`${facts.url}/`)

    step('times show in the browser\'s zone (Tokyo here), UTC on hover')
    await page.getByRole('link', { name: 'Archive' }).click()
    const time = page.locator('[data-test=task-results] time').first()
    await time.waitFor()
    const [shown, utc] = [await time.textContent(), await time.getAttribute('title')]
    const shownHour = Number(shown.slice(11, 13))
    const utcHour = Number(utc.slice(11, 13))
    check(utc.endsWith(' UTC') && shownHour === (utcHour + 9) % 24, `local ${shown} vs ${utc}`)

    step('a viewer sees no actions and cannot call them')
    await page.getByRole('link', { name: 'Queue' }).click()
    await page.getByRole('heading', { name: /Failed/ }).waitFor()
    await page.waitForTimeout(300)
    for (const name of [/Suspend/, /Resume/, /Retry/, /Discard/, /Force/, /Route/]) {
      check(await page.getByRole('button', { name }).count() === 0, `viewer sees no ${name} button`)
    }
    for (const name of ['Accounts', 'Audit', 'Logs']) {
      check(await page.getByRole('link', { name }).count() === 0, `viewer has no ${name} link`)
    }
    check((await apiStatus(page, 'GET', '/api/v1/logs')) === 403, 'the server refuses a viewer the logs')
    const status = await apiStatus(page, 'POST', '/api/v1/queue/dispatch/suspend')
    check(status === 403, `the server refuses a viewer's suspend (${status})`)
    await page.goto(`${facts.url}/accounts`)
    await page.waitForURL(`${facts.url}/`)
    await shot(page, '12-queue-viewer')
    await context.close()
  }
  const minor = axeFindings.filter((v) => v.impact !== 'serious' && v.impact !== 'critical')
  for (const v of minor) {
    console.log(`[ui] axe (${v.impact}) on ${v.page}: ${v.id} — ${v.help} (${v.nodes}x, ${v.target})`)
  }
  console.log('[ui] all checks passed')
  await browser.close()
} catch (e) {
  console.error(`[ui] FAILED: ${e.stack ?? e}`)
  if (lastPage) {
    await lastPage.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => undefined)
    console.error(`[ui] the page was ${lastPage.url()}; see ${shots}/failure.png`)
  }
  await browser.close()
  process.exit(1)
}
