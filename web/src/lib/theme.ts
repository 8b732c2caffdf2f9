// Light, dark, or as the system says; the choice is kept in localStorage. The page always
// carries data-theme="light" or "dark" (style.css), following the system's setting while the
// choice is "system".
export type Theme = 'system' | 'light' | 'dark'
const kKey = 'ferry.theme'
const dark = typeof window !== 'undefined' && window.matchMedia ? window.matchMedia('(prefers-color-scheme: dark)') : null
let current: Theme = 'system'

export function storedTheme(): Theme {
  const v = localStorage.getItem(kKey)
  return v === 'light' || v === 'dark' ? v : 'system'
}

export function applyTheme(theme: Theme) {
  current = theme
  if (theme === 'system') {
    localStorage.removeItem(kKey)
  } else {
    localStorage.setItem(kKey, theme)
  }
  document.documentElement.dataset.theme = theme === 'system' ? (dark?.matches ? 'dark' : 'light') : theme
}

dark?.addEventListener?.('change', () => {
  if (current === 'system') applyTheme('system')
})
