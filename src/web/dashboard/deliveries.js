// Recent webhook deliveries (administrators): provider, event, status and reason, the
// conversation each led to, and redelivery.
import { get, post } from './api.js';
import { h, show, notice, when, PROVIDER_NAMES } from './dom.js';

export async function deliveriesPage() {
  document.title = 'Deliveries · OpenHands';
  const list = h('div', { id: 'delivery-list', 'aria-live': 'polite' });
  const message = h('div', { 'aria-live': 'assertive' });
  show(h('section', {}, h('h1', {}, 'Deliveries'), message, list));
  async function refresh() {
    const page = await get('/api/deliveries?limit=50');
    const deliveries = page.deliveries;
    if (!deliveries.length) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No webhook has arrived yet. ',
        h('a', { href: '/integrations', 'data-link': true }, 'See what to register with each provider.')));
      return;
    }
    // A phone scrolls the table sideways, not the page; the region takes the keyboard for it.
    list.replaceChildren(h('div', { class: 'table-scroll', tabindex: 0, role: 'region', 'aria-label': 'Deliveries' }, h('table', { class: 'table' },
      h('thead', {}, h('tr', {}, ['Received', 'Provider', 'Event', 'Status', 'Reason', 'Conversation', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, deliveries.map((d) => h('tr', { 'data-delivery': d.id },
        h('td', {}, when(d.received_at)),
        h('td', {}, PROVIDER_NAMES[d.provider] || d.provider),
        h('td', {}, d.event),
        h('td', {}, h('span', { class: `badge status-${d.status}` }, d.status)),
        h('td', {}, d.reason || ''),
        h('td', {}, d.conversation_id ? h('a', { href: `/conversations/${d.conversation_id}`, 'data-link': true }, 'open') : ''),
        h('td', {}, h('button', {
          type: 'button', class: 'small',
          onclick: async () => {
            message.replaceChildren();
            try {
              await post(`/api/deliveries/${d.id}/redeliver`);
              message.replaceChildren(notice('info', `Delivery ${d.id} is being handled again.`));
              refresh();
            } catch (error) {
              message.replaceChildren(notice('error', error.message));
            }
          },
        }, 'Redeliver'))))))));
  }
  await refresh();
}
