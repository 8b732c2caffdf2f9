// Vite builds the UI into web/dist, which `ferry web` serves at /. `npm run dev` serves it with
// hot reload and forwards the API to a ferry on localhost:8080 (FERRY_URL to change).
import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

export default defineConfig({
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 300,
  },
  server: {
    proxy: {
      '/api': process.env.FERRY_URL ?? 'http://localhost:8080',
      '/metrics': process.env.FERRY_URL ?? 'http://localhost:8080',
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['src/**/*.test.ts'],
  },
})
