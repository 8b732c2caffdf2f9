import { createPinia } from 'pinia'
import { createApp } from 'vue'
import App from './App.vue'
import { makeRouter } from './router'
import './style.css'
import { applyTheme, storedTheme } from './lib/theme'

applyTheme(storedTheme())
const app = createApp(App)
app.use(createPinia())
app.use(makeRouter())
app.mount('#app')
