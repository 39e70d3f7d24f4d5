// The conversations list: status, where each was started (with a link back), repository,
// cost and last activity; filters and a search; refreshed every few seconds.
import { get } from './api.js';
import { h, show, notice, when, triggerBadge, statusBadge, PROVIDER_NAMES } from './dom.js';

const REFRESH_MS = 4000;
const STATUSES = ['running', 'awaiting_user_input', 'finished', 'error', 'stopped', 'paused', 'loading', 'rate_limited'];

export async function conversationsPage() {
  document.title = 'Conversations · OpenHands';
  const filters = { status: '', trigger: '', repository: '', search: '' };
  const select = (name, label, options) => {
    const element = h('select', { id: `filter-${name}`, name },
      h('option', { value: '' }, `Any ${label}`),
      options.map(([value, text]) => h('option', { value }, text)));
    element.addEventListener('change', () => { filters[name] = element.value; refresh(); });
    return h('label', {}, h('span', { class: 'visually-hidden' }, label), element);
  };
  const repository = h('input', { id: 'filter-repository', placeholder: 'owner/name', 'aria-label': 'Repository' });
  repository.addEventListener('change', () => { filters.repository = repository.value.trim(); refresh(); });
  const search = h('input', { id: 'search', type: 'search', placeholder: 'Search titles', 'aria-label': 'Search titles' });
  search.addEventListener('input', () => { filters.search = search.value.trim().toLowerCase(); render(); });
  const list = h('div', { id: 'conversation-list', 'aria-live': 'polite' });
  show(h('section', {},
    h('div', { class: 'heading' }, h('h1', {}, 'Conversations'), h('a', { class: 'button', href: '/new', 'data-link': true }, 'New conversation')),
    await llmWarning(),
    h('div', { class: 'filters' },
      select('status', 'status', STATUSES.map((s) => [s, s.replaceAll('_', ' ')])),
      select('trigger', 'source', Object.entries(PROVIDER_NAMES)),
      repository, search),
    list));

  let items = [];
  let failure = null;
  function render() {
    if (failure) { list.replaceChildren(notice('error', failure)); return; }
    const shown = items.filter((c) => !filters.search || (c.title || '').toLowerCase().includes(filters.search));
    if (!items.length && !filters.status && !filters.trigger && !filters.repository) {
      list.replaceChildren(h('div', { class: 'empty' },
        h('p', {}, 'No conversations yet — mention @openhands on an issue, or ',
          h('a', { href: '/new', 'data-link': true }, 'start one here'), '.')));
      return;
    }
    if (!shown.length) { list.replaceChildren(h('p', { class: 'muted' }, 'Nothing matches.')); return; }
    list.replaceChildren(h('ul', { class: 'rows' }, shown.map(row)));
  }
  async function refresh() {
    const query = new URLSearchParams({ limit: '100' });
    for (const name of ['status', 'trigger', 'repository']) if (filters[name]) query.set(name, filters[name]);
    try {
      const page = await get(`/api/conversations?${query}`);
      items = page.results;
      failure = null;
    } catch (error) {
      failure = error.message;
    }
    render();
  }
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

/** Said when no model can run the agent for this user: neither the server's nor their own. */
async function llmWarning() {
  const [info, settings] = await Promise.all([
    get('/server_info').catch(() => null),
    get('/api/settings').catch(() => null),
  ]);
  if (!info || info.llm_configured || (settings && settings.llm_model)) return null;
  return h('p', { id: 'llm-warning', class: 'notice error', role: 'alert' },
    'No language model is configured, so the agent cannot run: set LLM_MODEL and LLM_API_KEY on the server, or choose a model and key in ',
    h('a', { href: '/settings', 'data-link': true }, 'Settings'), '.');
}

function row(c) {
  const cost = c.stats && c.stats.cost_usd ? `$${Number(c.stats.cost_usd).toFixed(2)}` : '';
  return h('li', { class: 'row', 'data-id': c.conversation_id },
    h('a', { class: 'title', href: `/conversations/${c.conversation_id}`, 'data-link': true }, c.title || 'Untitled'),
    h('span', { class: 'meta' },
      statusBadge(c.status),
      triggerBadge(c.trigger, c.trigger_url),
      c.selected_repository ? h('span', { class: 'repo' }, c.selected_repository) : null,
      cost ? h('span', { class: 'cost' }, cost) : null,
      h('time', { datetime: c.last_updated_at }, when(c.last_updated_at))));
}
