// Recent webhook deliveries (administrators): provider, event, status and reason, the
// conversation each led to, and redelivery; filtered by provider and status.
import { get, post } from './api.js';
import { h, show, notice, when, PROVIDER_NAMES } from './dom.js';

/** The providers that send webhooks, and what the server records of each delivery. */
const PROVIDERS = ['github', 'gitlab', 'slack', 'jira', 'jira-dc', 'linear'];
const STATUSES = ['accepted', 'ignored', 'duplicate', 'unauthorized', 'failed'];
const COLUMNS = ['Received', 'Provider', 'Event', 'Status', 'Reason', 'Conversation'];

export async function deliveriesPage() {
  document.title = 'Deliveries · OpenHands';
  // The filters are kept in the address, so a filtered list can be reloaded or shared.
  const asked = new URLSearchParams(window.location.search);
  const filters = {
    provider: PROVIDERS.includes(asked.get('provider')) ? asked.get('provider') : '',
    status: STATUSES.includes(asked.get('status')) ? asked.get('status') : '',
  };
  const list = h('div', { id: 'delivery-list', 'aria-live': 'polite' });
  const message = h('div', { 'aria-live': 'assertive' });
  const select = (name, label, any, options) => {
    const element = h('select', { id: `filter-${name}`, name },
      h('option', { value: '' }, any),
      options.map(([value, text]) => h('option', { value, selected: value === filters[name] }, text)));
    element.addEventListener('change', () => {
      filters[name] = element.value;
      const query = new URLSearchParams(Object.entries(filters).filter(([, value]) => value)).toString();
      window.history.replaceState({}, '', `/deliveries${query ? `?${query}` : ''}`);
      refresh();
    });
    return h('div', { class: 'field' }, h('label', { for: `filter-${name}` }, label), element);
  };
  show(h('section', {}, h('h1', {}, 'Deliveries'),
    h('div', { class: 'filter-bar', role: 'group', 'aria-label': 'Filters' },
      select('provider', 'Provider', 'All providers', PROVIDERS.map((p) => [p, PROVIDER_NAMES[p]])),
      select('status', 'Status', 'Any status', STATUSES.map((s) => [s, s]))),
    message, list));

  // The latest answer wins: an older one arriving late is dropped.
  let asking = 0;
  async function refresh() {
    const mine = ++asking;
    const params = new URLSearchParams({ limit: '50' });
    for (const [name, value] of Object.entries(filters)) if (value) params.set(name, value);
    let page;
    try {
      page = await get(`/api/deliveries?${params}`);
    } catch (error) {
      if (mine === asking) list.replaceChildren(notice('error', error.message));
      return;
    }
    if (mine !== asking) return;
    const deliveries = page.deliveries;
    if (!deliveries.length) {
      list.replaceChildren(filters.provider || filters.status
        ? h('p', { class: 'empty' }, 'No delivery matches these filters.')
        : h('p', { class: 'empty' }, 'No webhook has arrived yet. ',
          h('a', { href: '/integrations', 'data-link': true }, 'See what to register with each provider.')));
      return;
    }
    // A wide window shows a table; a narrow one shows each delivery as a card of its own,
    // every value under its column's name (style.css), so nothing scrolls sideways.
    list.replaceChildren(h('table', { class: 'table stacked', role: 'table' },
      h('caption', { class: 'visually-hidden' }, 'Deliveries, newest first'),
      h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' },
        COLUMNS.map((t) => h('th', { scope: 'col', role: 'columnheader' }, t)),
        h('th', { scope: 'col', role: 'columnheader' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', { role: 'rowgroup' }, deliveries.map(row))));
  }

  function row(d) {
    const cell = (label, ...content) => h('td', { role: 'cell', 'data-label': label }, ...content);
    return h('tr', { role: 'row', 'data-delivery': d.id, 'data-provider': d.provider, 'data-status': d.status },
      cell('Received', when(d.received_at)),
      cell('Provider', PROVIDER_NAMES[d.provider] || d.provider),
      cell('Event', d.event),
      cell('Status', h('span', { class: `badge status-${d.status}` }, d.status)),
      h('td', { role: 'cell', 'data-label': 'Reason', class: 'reason' }, d.reason || null),
      cell('Conversation', d.conversation_id ? h('a', { href: `/conversations/${d.conversation_id}`, 'data-link': true }, 'open') : null),
      // A delivery that asked for nothing has nothing to run again (the server refuses it).
      h('td', { role: 'cell', class: 'actions' }, d.redeliverable ? h('button', {
        type: 'button', class: 'small redeliver', 'aria-label': `Redeliver delivery ${d.id} (${d.event})`,
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
      }, 'Redeliver') : null));
  }
  await refresh();
}
