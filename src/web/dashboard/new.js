// A new conversation: the task, a repository picked from those the user can reach through the
// configured providers (searched as they type), and a branch. Ctrl+Enter starts it; the button
// is held while the request is in flight, and a retry carries the same Idempotency-Key, so a
// double click or a resent request starts one conversation.
import { get, post } from './api.js';
import { h, show, fill, notice, sandboxWarning, PROVIDER_NAMES, imagePicker } from './dom.js';
import { navigate } from './app.js';

const SEARCH_DELAY_MS = 250;

export async function newPage() {
  document.title = 'New conversation · OpenHands';
  const task = h('textarea', { id: 'task', rows: 6, required: true, placeholder: 'What should the agent do? (Ctrl+Enter starts)' });
  const repository = h('input', {
    id: 'repository', type: 'search', autocomplete: 'off', placeholder: 'Search your repositories',
    role: 'combobox', 'aria-expanded': 'false', 'aria-controls': 'repository-options', 'aria-autocomplete': 'list',
    'aria-describedby': 'repository-chosen',
  });
  const options = h('ul', { id: 'repository-options', class: 'options', role: 'listbox', 'aria-label': 'Repositories', hidden: true });
  const chosenNote = h('p', { id: 'repository-chosen', class: 'muted' }, 'No repository: the agent works in an empty workspace.');
  const notes = h('div', { id: 'repository-notes' });
  const branch = h('input', { id: 'branch', placeholder: 'the default branch', autocomplete: 'off' });
  const start = h('button', { type: 'submit', id: 'start' }, 'Start');
  const images = imagePicker('task-images');
  const message = h('div', { 'aria-live': 'assertive' });
  const form = h('form', { id: 'new-form', class: 'card' },
    h('label', { for: 'task' }, 'Task'), task,
    images.element,
    h('label', { for: 'repository' }, 'Repository'),
    h('div', { class: 'picker' }, repository, options),
    chosenNote, notes,
    h('label', { for: 'branch' }, 'Branch'), branch,
    start,
    message);

  /** The repository picked from the list: `{name, git_provider}`, or null for none. */
  let chosen = null;
  let found = [];
  let active = -1;
  let searchTimer = null;
  let searchSeq = 0;

  function choose(repo) {
    chosen = repo;
    repository.value = repo ? repo.name : '';
    chosenNote.textContent = repo
      ? `Working on ${repo.name} (${PROVIDER_NAMES[repo.git_provider] || repo.git_provider}).`
      : 'No repository: the agent works in an empty workspace.';
    closeOptions();
  }

  function closeOptions() {
    options.hidden = true;
    repository.setAttribute('aria-expanded', 'false');
    repository.removeAttribute('aria-activedescendant');
    active = -1;
  }

  function renderOptions() {
    const items = [{ name: null }, ...found];
    fill(options, items.map((repo, at) => h('li', {
      id: `repository-option-${at}`, role: 'option', class: 'option',
      'aria-selected': String(at === active), 'data-name': repo.name || '',
      onmousedown: (event) => { event.preventDefault(); choose(repo.name ? repo : null); },
    }, repo.name
      ? [repo.name, ' ', h('span', { class: 'muted' }, PROVIDER_NAMES[repo.git_provider] || repo.git_provider)]
      : h('span', { class: 'muted' }, 'No repository'))));
    options.hidden = false;
    repository.setAttribute('aria-expanded', 'true');
    if (active >= 0) repository.setAttribute('aria-activedescendant', `repository-option-${active}`);
    else repository.removeAttribute('aria-activedescendant');
  }

  async function search() {
    const seq = ++searchSeq;
    const words = repository.value.trim();
    try {
      const answer = await get(`/api/user/repositories?q=${encodeURIComponent(words)}`);
      if (seq !== searchSeq) return;
      found = answer.repositories || [];
      fill(notes, (answer.notes || []).map((n) => h('p', { class: 'muted note' }, n)));
      active = -1;
      renderOptions();
    } catch (error) {
      if (seq === searchSeq) fill(notes, notice('error', error.message));
    }
  }

  repository.addEventListener('input', () => {
    // Typing after a choice undoes it: only a listed repository is sent.
    if (chosen && repository.value !== chosen.name) {
      chosen = null;
      chosenNote.textContent = 'Pick a repository from the list, or none.';
    }
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, SEARCH_DELAY_MS);
  });
  repository.addEventListener('focus', () => { if (options.hidden) search(); });
  // The list sits in the form, not over it: it stays open until a choice, Escape, or moving
  // on to another field, so that nothing moves under a click on Start.
  for (const field of [task, branch]) field.addEventListener('focus', closeOptions);
  repository.addEventListener('keydown', (event) => {
    const count = found.length + 1;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      if (options.hidden) { search(); return; }
      active = (active + (event.key === 'ArrowDown' ? 1 : -1) + count) % count;
      renderOptions();
    } else if (event.key === 'Enter' && !options.hidden && active >= 0) {
      event.preventDefault();
      choose(active === 0 ? null : found[active - 1]);
    } else if (event.key === 'Escape') {
      closeOptions();
    }
  });

  // One key per intended conversation: kept across retries, renewed once one was created.
  let idempotencyKey = newKey();
  let inFlight = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (inFlight) return;
    closeOptions();
    message.replaceChildren();
    if (repository.value.trim() && !chosen) {
      message.replaceChildren(notice('error', 'Pick the repository from the list (or clear the field to work without one).'));
      repository.focus();
      return;
    }
    const body = { initial_user_msg: task.value };
    const attached = images.urls();
    if (attached.length) body.image_urls = attached;
    if (chosen) {
      body.repository = chosen.name;
      body.git_provider = chosen.git_provider;
    }
    if (branch.value.trim()) body.selected_branch = branch.value.trim();
    inFlight = true;
    start.disabled = true;
    start.textContent = 'Starting…';
    try {
      const created = await post('/api/conversations', body, { 'Idempotency-Key': idempotencyKey });
      idempotencyKey = newKey();
      navigate(`/conversations/${created.conversation_id}`);
    } catch (error) {
      message.replaceChildren(notice('error', error.message));
    } finally {
      inFlight = false;
      start.disabled = false;
      start.textContent = 'Start';
    }
  });
  task.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  const info = await get('/server_info').catch(() => null);
  show(h('section', { class: 'narrow' }, h('h1', {}, 'New conversation'), sandboxWarning(info), form));
  task.focus();
}

function newKey() {
  if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
  return `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
