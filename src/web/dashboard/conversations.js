// The conversations list: status, where each was started (with a link back), repository,
// cost and last activity; filters and a search; older pages on request; refreshed every few
// seconds. Administrators see everyone's, with each owner named and a filter by owner.
import { get } from './api.js';
import { me } from './app.js';
import { h, show, notice, when, triggerBadge, statusBadge, sandboxWarning, PROVIDER_NAMES } from './dom.js';

const REFRESH_MS = 4000;
/** The most the API gives in one page. */
const PAGE_SIZE = 100;
const STATUSES = ['running', 'awaiting_user_input', 'finished', 'error', 'stopped', 'paused', 'rejected', 'loading', 'rate_limited'];

export async function conversationsPage() {
  document.title = 'Conversations · OpenHands';
  const filters = { status: '', trigger: '', repository: '', owner: '', search: '' };
  const admin = Boolean(me && me.is_admin);
  const select = (name, label, options) => {
    const element = h('select', { id: `filter-${name}`, name },
      h('option', { value: '' }, `Any ${label}`),
      options.map(([value, text]) => h('option', { value }, text)));
    element.addEventListener('change', () => { filters[name] = element.value; restart(); });
    return h('label', {}, h('span', { class: 'visually-hidden' }, label), element);
  };
  const repository = h('input', { id: 'filter-repository', placeholder: 'owner/name', 'aria-label': 'Repository' });
  repository.addEventListener('change', () => { filters.repository = repository.value.trim(); restart(); });
  const search = h('input', { id: 'search', type: 'search', placeholder: 'Search titles', 'aria-label': 'Search titles' });
  search.addEventListener('input', () => { filters.search = search.value.trim().toLowerCase(); render(); });
  const list = h('div', { id: 'conversation-list', 'aria-live': 'polite' });
  // Kept outside the refreshed list, so that it keeps the keyboard focus across refreshes.
  const moreButton = h('button', { type: 'button', id: 'load-more', hidden: true }, 'Load older conversations');
  const moreError = h('div', { 'aria-live': 'assertive' });
  let ownerFilter = null;
  if (admin) {
    const { users } = await get('/api/users').catch(() => ({ users: [] }));
    ownerFilter = select('owner', 'owner', users.map((u) => [u.login, u.login]));
  }
  const info = await get('/server_info').catch(() => null);
  show(h('section', {},
    h('div', { class: 'heading' }, h('h1', {}, 'Conversations'), h('a', { class: 'button', href: '/new', 'data-link': true }, 'New conversation')),
    sandboxWarning(info),
    await llmWarning(info, admin),
    admin ? setupNotice(info) : null,
    h('div', { class: 'filters' },
      select('status', 'status', STATUSES.map((s) => [s, s.replaceAll('_', ' ')])),
      select('trigger', 'source', Object.entries(PROVIDER_NAMES)),
      ownerFilter,
      repository, search),
    list,
    h('div', { class: 'more' }, moreButton, moreError)));

  let items = [];
  let failure = null;
  /** How many pages the reader has opened; a refresh reloads them all. */
  let pages = 1;
  let nextPageId = null;
  // One request at a time, in order: a refresh and "load more" never interleave.
  let pending = Promise.resolve();
  const serially = (work) => { pending = pending.then(work, work); return pending; };

  function query(pageId) {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const name of ['status', 'trigger', 'repository', 'owner']) if (filters[name]) params.set(name, filters[name]);
    if (pageId) params.set('page_id', pageId);
    return `/api/conversations?${params}`;
  }

  function render() {
    moreButton.hidden = !nextPageId || Boolean(failure);
    if (failure) { list.replaceChildren(notice('error', failure)); return; }
    const shown = items.filter((c) => !filters.search || (c.title || '').toLowerCase().includes(filters.search));
    if (!items.length && !filters.status && !filters.trigger && !filters.repository && !filters.owner) {
      list.replaceChildren(h('div', { class: 'empty' },
        h('p', {}, 'No conversations yet — mention @openhands on an issue, or ',
          h('a', { href: '/new', 'data-link': true }, 'start one here'), '.')));
      return;
    }
    if (!shown.length) {
      list.replaceChildren(h('p', { class: 'muted' }, nextPageId ? 'Nothing matches among these; older ones are not loaded yet.' : 'Nothing matches.'));
      return;
    }
    list.replaceChildren(h('ul', { class: 'rows' }, shown.map((c) => row(c, admin))));
  }

  async function refresh() {
    try {
      const loaded = [];
      let cursor = null;
      let opened = 0;
      do {
        const page = await get(query(cursor));
        loaded.push(...page.results);
        cursor = page.next_page_id;
        opened += 1;
      } while (cursor && opened < pages);
      items = loaded;
      nextPageId = cursor;
      failure = null;
    } catch (error) {
      failure = error.message;
    }
    render();
  }

  async function loadMore() {
    if (!nextPageId) return;
    moreError.replaceChildren();
    try {
      const page = await get(query(nextPageId));
      const known = new Set(items.map((c) => c.conversation_id));
      const added = page.results.filter((c) => !known.has(c.conversation_id));
      items = items.concat(added);
      nextPageId = page.next_page_id;
      pages += 1;
      render();
      // The last page hides the button: the keyboard goes on to the first row it brought.
      const first = added[0] && list.querySelector(`li[data-id="${CSS.escape(added[0].conversation_id)}"] a.title`);
      if (first && moreButton.hidden) first.focus();
    } catch (error) {
      moreError.replaceChildren(notice('error', error.message));
    }
  }
  moreButton.addEventListener('click', () => serially(loadMore));

  function restart() {
    pages = 1;
    serially(refresh);
  }

  await serially(refresh);
  const timer = setInterval(() => serially(refresh), REFRESH_MS);
  return () => clearInterval(timer);
}

/** Said when no model can run the agent for this user: neither the server's nor their own.
 * Administrators are sent to the set-up page, where the model is tested before it is saved. */
async function llmWarning(info, admin) {
  const settings = await get('/api/settings').catch(() => null);
  if (!info || info.llm_configured || (settings && settings.llm_model)) return null;
  return h('p', { id: 'llm-warning', class: 'notice error', role: 'alert' },
    'No language model is configured, so the agent cannot run: set LLM_MODEL and LLM_API_KEY on the server, or choose a model and key in ',
    admin ? h('a', { href: '/setup', 'data-link': true }, 'Set up') : h('a', { href: '/settings', 'data-link': true }, 'Settings'), '.');
}

/** For administrators while no provider takes webhooks: where to connect one. */
function setupNotice(info) {
  if (!info || (info.providers || []).length > 0) return null;
  return h('p', { id: 'setup-notice', class: 'notice', role: 'status' },
    'No provider is connected yet, so mentions on GitHub, GitLab, Slack, Jira or Linear do not reach this service. Connect one on the ',
    h('a', { href: '/setup', 'data-link': true }, 'Set up'), ' page.');
}

function row(c, admin) {
  const cost = c.stats && c.stats.cost_usd ? `$${Number(c.stats.cost_usd).toFixed(2)}` : '';
  return h('li', { class: 'row', 'data-id': c.conversation_id },
    h('a', { class: 'title', href: `/conversations/${c.conversation_id}`, 'data-link': true }, c.title || 'Untitled'),
    h('span', { class: 'meta' },
      statusBadge(c.status),
      triggerBadge(c.trigger, c.trigger_url),
      admin ? h('span', { class: 'owner', title: 'Owner' }, `by ${c.owner_login || 'unknown'}`) : null,
      c.selected_repository ? h('span', { class: 'repo' }, c.selected_repository) : null,
      cost ? h('span', { class: 'cost' }, cost) : null,
      h('time', { datetime: c.last_updated_at }, when(c.last_updated_at))));
}
