import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import { nextTick } from 'vue'
import ConfirmDialog from './ConfirmDialog.vue'

// happy-dom's <dialog> has showModal/close; the component resolves the question on a button.
describe('ConfirmDialog', () => {
  it('resolves true on confirm with the reason typed, false on cancel', async () => {
    const w = mount(ConfirmDialog, { attachTo: document.body })
    const vm = w.vm as unknown as { ask: (q: string, l?: string, r?: boolean) => Promise<boolean>; reason: string }
    const first = vm.ask('Discard task t1?', 'Discard', true)
    await nextTick()
    expect(w.text()).toContain('Discard task t1?')
    await w.get('[data-test=reason]').setValue('duplicate')
    await w.get('form').trigger('submit')
    expect(await first).toBe(true)
    expect(vm.reason).toBe('duplicate')

    const second = vm.ask('Suspend dispatch?', 'Suspend')
    await nextTick()
    expect(w.find('[data-test=reason]').exists()).toBe(false)
    await w.get('button.ghost').trigger('click')
    expect(await second).toBe(false)
    w.unmount()
  })
})
