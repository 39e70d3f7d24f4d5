// The workspace beside the chat, as tabs: the sandbox's terminal (every command and its
// output, and a prompt for the user's own commands, which a worker runs and records as the
// user's), its changes against the commit the run started from, and its files to browse and
// download. Changes and files are read through a worker; a sandbox that is gone says so.
import { get } from './api.js';
import { h, fill, notice } from './dom.js';

const HOME = '/workspace';

/** The panes of conversation `id`; `run(command)` sends the user's command (true if sent). */
export function workspacePanes(id, run) {
  const base = `/api/conversations/${encodeURIComponent(id)}/workspace`;
  const tabs = [];
  const panels = [];
  const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Workspace' });

  function addTab(name, label, panel, onOpen) {
    const tab = h('button', {
      type: 'button', role: 'tab', id: `tab-${name}`, 'aria-controls': `pane-${name}`,
      'aria-selected': 'false', tabindex: -1,
    }, label);
    panel.setAttribute('role', 'tabpanel');
    panel.setAttribute('id', `pane-${name}`);
    panel.setAttribute('aria-labelledby', `tab-${name}`);
    panel.hidden = true;
    tab.addEventListener('click', () => select(tabs.indexOf(tab)));
    tab.addEventListener('keydown', (event) => {
      const step = event.key === 'ArrowRight' ? 1 : event.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      event.preventDefault();
      const next = (tabs.indexOf(tab) + step + tabs.length) % tabs.length;
      select(next);
      tabs[next].focus();
    });
    tab.onOpen = onOpen;
    tabs.push(tab);
    panels.push(panel);
    tablist.append(tab);
  }

  function select(index) {
    tabs.forEach((tab, at) => {
      const chosen = at === index;
      tab.setAttribute('aria-selected', String(chosen));
      tab.tabIndex = chosen ? 0 : -1;
      panels[at].hidden = !chosen;
    });
    if (tabs[index].onOpen) tabs[index].onOpen();
  }

  // Terminal.
  const log = h('pre', { id: 'terminal-log', class: 'terminal', tabindex: 0, 'aria-label': 'Terminal output' });
  const command = h('input', { id: 'terminal-command', autocomplete: 'off', spellcheck: 'false', placeholder: 'ls -la' });
  const terminalMessage = h('div', { 'aria-live': 'polite' });
  const terminalForm = h('form', { id: 'terminal-form', class: 'terminal-prompt' },
    h('label', { for: 'terminal-command' }, 'Run a command in the sandbox'),
    h('div', { class: 'prompt-row' }, h('span', { class: 'prompt', 'aria-hidden': 'true' }, '$'), command,
      h('button', { type: 'submit' }, 'Run')),
    terminalMessage);
  terminalForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = command.value.trim();
    if (!text) return;
    if (run(text)) {
      command.value = '';
      terminalMessage.replaceChildren(h('p', { class: 'muted' }, 'Sent; a worker runs it and its output appears above.'));
    }
  });
  const terminalPanel = h('div', { class: 'pane' },
    h('p', { class: 'muted pane-intro' }, 'Every command run in the sandbox, the agent\'s and yours.'),
    log, terminalForm);
  addTab('terminal', 'Terminal', terminalPanel);

  // Changes.
  const changesBody = h('div', { id: 'changes', 'aria-live': 'polite' });
  const changesRefresh = h('button', { type: 'button', class: 'small', id: 'changes-refresh' }, 'Refresh');
  const changesPanel = h('div', { class: 'pane' },
    h('div', { class: 'pane-bar' }, h('p', { class: 'muted pane-intro' }, 'What the agent changed since the run began.'), changesRefresh),
    changesBody);
  let changesLoaded = false;
  async function loadChanges() {
    changesLoaded = true;
    fill(changesBody, h('p', { class: 'muted' }, 'Reading the workspace…'));
    try {
      const answer = await get(`${base}/changes`);
      fill(changesBody, renderChanges(answer));
    } catch (error) {
      fill(changesBody, notice(error.status === 410 ? 'info' : 'error', error.message));
    }
  }
  changesRefresh.addEventListener('click', loadChanges);
  addTab('changes', 'Changes', changesPanel, () => { if (!changesLoaded) loadChanges(); });

  // Files.
  const filesBody = h('div', { id: 'files', 'aria-live': 'polite' });
  const here = h('code', { id: 'files-path' }, HOME);
  const up = h('button', { type: 'button', class: 'small', id: 'files-up' }, 'Up');
  const filesRefresh = h('button', { type: 'button', class: 'small', id: 'files-refresh' }, 'Refresh');
  const filesPanel = h('div', { class: 'pane' },
    h('div', { class: 'pane-bar' }, here, h('span', { class: 'pane-buttons' }, up, filesRefresh)),
    filesBody);
  let directory = HOME;
  let filesLoaded = false;
  async function loadFiles(path) {
    filesLoaded = true;
    directory = path;
    here.textContent = path;
    up.disabled = path === '/';
    fill(filesBody, h('p', { class: 'muted' }, 'Reading the workspace…'));
    try {
      const answer = await get(`${base}/files?path=${encodeURIComponent(path)}`);
      fill(filesBody, renderFiles(answer, base, loadFiles));
    } catch (error) {
      fill(filesBody, notice(error.status === 410 ? 'info' : 'error', error.message));
    }
  }
  up.addEventListener('click', () => loadFiles(directory.replace(/\/[^/]+\/?$/, '') || '/'));
  filesRefresh.addEventListener('click', () => loadFiles(directory));
  addTab('files', 'Files', filesPanel, () => { if (!filesLoaded) loadFiles(HOME); });

  select(0);
  const element = h('aside', { class: 'workspace', 'aria-label': 'Workspace' }, tablist, ...panels);

  /** The commands shown, by event id: an error answering one of them is shown under it. */
  const commands = new Set();

  /** Adds a command, its output, or why it did not run to the terminal. */
  function terminal(event) {
    const following = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    if (event.action === 'run') {
      const args = event.args || {};
      const who = event.source === 'user' ? 'you' : 'agent';
      commands.add(event.id);
      log.append(h('span', { class: `terminal-command ${who}` }, `${who}$ ${args.command ?? ''}\n`));
    } else if (event.observation === 'error') {
      if (!commands.has(event.cause)) return;
      log.append(h('span', { class: 'terminal-error' }, `${event.content ?? 'It did not run.'}\n`));
    } else {
      const text = String(event.content ?? '');
      log.append(h('span', { class: 'terminal-output' }, text.endsWith('\n') || !text ? text : `${text}\n`));
    }
    if (following) log.scrollTop = log.scrollHeight;
  }

  return { element, terminal, leave() {} };
}

/** The changed files, each with its counts and its diff. */
function renderChanges(answer) {
  const files = Array.isArray(answer.files) ? answer.files : [];
  if (!files.length) {
    return h('p', { class: 'empty' }, answer.note || 'No changes yet.');
  }
  const added = files.reduce((sum, f) => sum + (f.added || 0), 0);
  const removed = files.reduce((sum, f) => sum + (f.removed || 0), 0);
  return [
    h('p', { id: 'changes-summary' },
      `${files.length} file${files.length === 1 ? '' : 's'} changed `,
      h('span', { class: 'added' }, `+${added}`), ' ', h('span', { class: 'removed' }, `−${removed}`),
      answer.base ? h('span', { class: 'muted' }, ` since ${String(answer.base).slice(0, 10)}`) : null),
    h('ul', { class: 'changed-files' }, files.map((f) => h('li', { 'data-path': f.path },
      h('details', {},
        h('summary', {},
          h('code', { class: 'path' }, f.path), ' ',
          h('span', { class: `badge change-${f.status}` }, f.status), ' ',
          h('span', { class: 'added counts' }, `+${f.added}`), ' ',
          h('span', { class: 'removed counts' }, `−${f.removed}`)),
        f.binary ? h('p', { class: 'muted' }, 'A binary file.')
          : f.diff ? diffText(f.diff)
            : h('p', { class: 'muted' }, 'Too long to show here.'))))),
    answer.truncated ? h('p', { class: 'muted' }, 'Some diffs were too long to send; their counts are shown.') : null,
  ];
}

function diffText(text) {
  return h('pre', { class: 'diff' }, String(text).split('\n').map((line) => {
    const kind = line.startsWith('+') && !line.startsWith('+++') ? 'added'
      : line.startsWith('-') && !line.startsWith('---') ? 'removed'
        : line.startsWith('@@') ? 'hunk' : '';
    return h('span', { class: `line ${kind}` }, `${line}\n`);
  }));
}

/** A directory's entries: folders open in place, files download. */
function renderFiles(answer, base, open) {
  const entries = Array.isArray(answer.entries) ? answer.entries : [];
  if (!entries.length) return h('p', { class: 'empty' }, 'This directory is empty.');
  const sorted = [...entries].sort((a, b) => (a.kind === 'directory' ? 0 : 1) - (b.kind === 'directory' ? 0 : 1)
    || String(a.path).localeCompare(String(b.path)));
  return h('ul', { class: 'file-list' }, sorted.map((entry) => {
    const path = String(entry.path);
    const name = path.split('/').filter(Boolean).pop() || path;
    if (entry.kind === 'directory') {
      return h('li', { 'data-path': path, class: 'directory' },
        h('button', { type: 'button', class: 'link', onclick: () => open(path) }, `${name}/`));
    }
    return h('li', { 'data-path': path, class: 'file' },
      h('a', { href: `${base}/file?path=${encodeURIComponent(path)}`, download: name }, name),
      h('span', { class: 'muted size' }, size(entry.size)));
  }));
}

function size(bytes) {
  const n = Number(bytes) || 0;
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
