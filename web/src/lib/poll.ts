// Runs `fn` now and then every `ms` while the component lives and the tab is visible; a slow
// answer delays the next call instead of stacking calls.
import { onBeforeUnmount, onMounted } from 'vue'

export function usePolling(fn: () => Promise<void>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined
  let stopped = false
  async function tick() {
    if (stopped) return
    if (document.visibilityState !== 'hidden') {
      await fn().catch(() => undefined)
    }
    if (!stopped) timer = setTimeout(tick, ms)
  }
  onMounted(() => void tick())
  onBeforeUnmount(() => {
    stopped = true
    clearTimeout(timer)
  })
}
