// One conversation, live: its events as a chat, streamed over the WebSocket and resumed after
// a drop from the last event seen (no gap, no duplicate); a box to send a message; stop,
// pause and resume; the pull requests it opened; tokens, cost and duration.
import { get, post } from './api.js';
import { h, show, fill, notice, triggerBadge, statusBadge, safeUrl } from './dom.js';
import { markdown } from './markdown.js';

const RECONNECT_MS = [500, 1000, 2000, 5000];
const REFRESH_MS = 5000;

export async function conversationPage(id) {
  let conversation = await get(`/api/conversations/${encodeURIComponent(id)}`);
  document.title = `${conversation.title || 'Conversation'} · OpenHands`;
  const header = h('div', { id: 'conversation-header' });
  const events = h('ol', { id: 'events', class: 'events', 'aria-live': 'polite' });
  const connection = h('p', { id: 'connection', class: 'muted', role: 'status' });
  const problem = h('div', { 'aria-live': 'assertive' });
  const runError = h('div', { id: 'run-error', 'aria-live': 'assertive' });
  const text = h('textarea', { id: 'message', rows: 3, required: true, placeholder: 'Send a message to the agent', 'aria-label': 'Message' });
  const form = h('form', { id: 'message-form', class: 'composer' }, text, h('button', { type: 'submit' }, 'Send'));
  const controls = h('div', { class: 'controls' },
    h('button', { type: 'button', id: 'pause', onclick: () => changeState('pause') }, 'Pause'),
    h('button', { type: 'button', id: 'resume', onclick: () => changeState('resume') }, 'Resume'),
    h('button', { type: 'button', id: 'stop', class: 'danger', onclick: () => changeState('stop') }, 'Stop'));
  show(h('section', { class: 'conversation' }, header, runError, controls, connection, events, problem, form));

  const seen = new Set();
  let lastId = 0;
  let socket = null;
  let attempts = 0;
  let closed = false;

  function renderHeader() {
    const c = conversation;
    const s = c.stats || {};
    const started = Date.parse(c.created_at);
    const updated = Date.parse(c.last_updated_at);
    const minutes = Number.isFinite(started) && Number.isFinite(updated) ? Math.max(0, (updated - started) / 60000) : 0;
    fill(header,
      h('h1', {}, c.title || 'Untitled'),
      h('p', { class: 'meta' },
        statusBadge(c.status), triggerBadge(c.trigger, c.trigger_url),
        c.selected_repository ? h('span', { class: 'repo' }, c.selected_repository + (c.selected_branch ? ` @ ${c.selected_branch}` : '')) : null,
        h('span', { id: 'stats' },
          `${(s.prompt_tokens || 0) + (s.completion_tokens || 0)} tokens · $${Number(s.cost_usd || 0).toFixed(4)} · ${minutes.toFixed(1)} min`)),
      c.pull_requests && c.pull_requests.length
        ? h('p', { id: 'pull-requests' }, 'Pull requests: ', c.pull_requests.map((url) => {
          const href = safeUrl(url);
          return href ? h('a', { href, rel: 'noopener noreferrer', target: '_blank' }, url) : url;
        }))
        : null,
      c.failed_posts && c.failed_posts.length
        ? notice('error', `${c.failed_posts.length} post(s) to ${c.failed_posts[0].provider} failed: ${c.failed_posts[0].last_error || 'no answer'}`)
        : null);
  }
  renderHeader();

  function append(event) {
    if (seen.has(event.id) || event.id <= lastId) return;
    seen.add(event.id);
    lastId = event.id;
    const item = renderEvent(event);
    if (item) {
      const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
      events.append(item);
      if (atBottom) item.scrollIntoView({ block: 'end' });
    }
    if (event.observation === 'agent_state_changed') {
      const extras = event.extras || {};
      // Why a run stopped in error (no model, key refused, sandbox engine down…) is the
      // first thing to see.
      fill(runError, extras.agent_state === 'error'
        ? notice('error', `The run stopped: ${extras.reason || 'an error'}`)
        : null);
      refresh();
    }
  }

  function connect() {
    if (closed) return;
    const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${window.location.host}/sockets/events/${encodeURIComponent(id)}?after=${lastId}`);
    connection.textContent = 'Connecting…';
    socket.addEventListener('open', () => { attempts = 0; connection.textContent = 'Live'; });
    socket.addEventListener('message', (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data.type === 'error') { problem.replaceChildren(notice('error', data.error)); return; }
      if (typeof data.id === 'number') append(data);
    });
    socket.addEventListener('close', (event) => {
      if (closed) return;
      if (event.code === 4001 || event.code === 4004) {
        connection.textContent = event.code === 4004 ? 'This conversation is not yours or no longer exists.' : 'Signed out.';
        return;
      }
      const delay = RECONNECT_MS[Math.min(attempts++, RECONNECT_MS.length - 1)];
      connection.textContent = `Disconnected; reconnecting in ${delay / 1000} s…`;
      setTimeout(connect, delay);
    });
  }
  connect();

  async function refresh() {
    try {
      conversation = await get(`/api/conversations/${encodeURIComponent(id)}`);
      renderHeader();
    } catch { /* the socket says when something is wrong */ }
  }
  const timer = setInterval(refresh, REFRESH_MS);

  async function changeState(state) {
    problem.replaceChildren();
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: 'state', state }));
    } else if (state === 'stop' || state === 'resume') {
      await post(`/api/conversations/${encodeURIComponent(id)}/${state === 'stop' ? 'stop' : 'start'}`)
        .catch((error) => problem.replaceChildren(notice('error', error.message)));
    } else {
      problem.replaceChildren(notice('error', 'Not connected; try again in a moment.'));
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const content = text.value.trim();
    if (!content) return;
    problem.replaceChildren();
    try {
      await post(`/api/conversations/${encodeURIComponent(id)}/message`, { message: content });
      text.value = '';
    } catch (error) {
      problem.replaceChildren(notice('error', error.message));
    }
  });
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  return () => {
    closed = true;
    clearInterval(timer);
    if (socket) socket.close(1000, 'page left');
  };
}

/** One event as a chat item; null for events that show nothing. */
export function renderEvent(event) {
  const who = event.source === 'user' ? 'user' : event.source === 'agent' ? 'agent' : 'environment';
  const item = (kind, ...children) => h('li', { class: `event ${who} ${kind}`, 'data-event-id': event.id, 'data-kind': event.kind },
    h('span', { class: 'who' }, who === 'user' ? 'You' : who === 'agent' ? 'Agent' : 'Service'), ...children);
  const args = event.args || {};
  // What the service records for itself (the repository asked for or chosen, the catalog of
  // knowledge) carries its fields at the top and no observation; read it as one of its kind.
  const own = !event.action && !event.observation;
  const observation = event.observation || (own ? event.kind : undefined);
  const extras = event.extras || (own ? event : {});
  if (observation === 'microagent_catalog') return null;
  if (observation === 'recall') return recallItem(event, extras, item);
  if (observation === 'run' && Object.hasOwn(SCRIPTS, extras.script)) return scriptItem(event, extras, item);
  if (observation === 'repository_question') return item('repository', repositoryQuestion(extras));
  if (observation === 'repository_selected') return item('repository', h('p', { class: 'muted' }, repositorySelected(extras)));
  if (event.action === 'message') {
    if (args.automatic) return null;
    return item('message', markdown(args.content ?? event.message));
  }
  if (event.action === 'run') return item('command', h('pre', { class: 'command' }, h('code', {}, `$ ${args.command ?? ''}`)));
  if (event.observation === 'run') {
    const code = extras.exit_code ?? (extras.metadata || {}).exit_code;
    return item('output', folded(`exit code ${code}`, event.content, code === 0 ? 'ok' : 'failed'));
  }
  if (event.action === 'edit') return item('edit', h('p', {}, `Edited ${args.path ?? ''}`), diff(args));
  if (event.observation === 'edit') return null;
  if (event.action === 'read') return item('read', h('p', { class: 'muted' }, `Read ${args.path ?? ''}`));
  if (event.observation === 'read') return item('output', folded(extras.path || 'file', event.content, 'ok'));
  if (event.action === 'think') return item('thought', h('p', { class: 'thought' }, args.thought ?? ''));
  if (event.observation === 'think') return null;
  if (event.action === 'finish') return item('finish', markdown(args.final_thought || event.message || 'Finished.'));
  if (event.observation === 'agent_state_changed') {
    const reason = extras.reason ? ` — ${extras.reason}` : '';
    return item('state', h('p', { class: 'muted' }, `State: ${String(extras.agent_state).replaceAll('_', ' ')}${reason}`));
  }
  if (event.observation === 'error') return item('error', h('p', {}, event.content ?? event.message ?? 'Error'));
  if (event.observation) return item('note', folded(event.message || event.observation, event.content, 'ok'));
  if (event.action) return item('note', h('p', { class: 'muted' }, event.message || event.action));
  return null;
}

/** The repository's own scripts, by the name their `run` observation gives them. */
const SCRIPTS = {
  setup: { label: 'Setup script', path: '.openhands/setup.sh' },
  'pre-commit': { label: 'Pre-commit script', path: '.openhands/pre-commit.sh' },
};

/** What the repository told the agent: its instructions (once), or knowledge a message
 * triggered. Everything in it comes from the repository, so it is only ever text. */
function recallItem(event, extras, item) {
  if (extras.recall_type === 'workspace_context') {
    const instructions = list(extras.instructions);
    const knowledge = list(extras.knowledge_available);
    const notes = list(extras.notes);
    return item('recall workspace',
      h('p', { class: 'card-title' }, 'Repository instructions'),
      instructions.length
        ? h('ul', { class: 'files' }, instructions.map((i) => h('li', {},
          h('code', {}, String(i.path ?? i.name ?? '')), i.source ? h('span', { class: 'muted' }, ` from ${i.source}`) : null)))
        : h('p', { class: 'muted' }, 'No instructions were found.'),
      knowledge.length
        ? h('div', { class: 'knowledge-available' },
          h('p', {}, 'Knowledge the agent recalls when a message mentions it:'),
          h('ul', { class: 'files' }, knowledge.map((k) => h('li', {},
            h('strong', {}, String(k.name ?? '')),
            list(k.triggers).length ? ` (${list(k.triggers).map((t) => `"${t}"`).join(', ')})` : '',
            k.path ? [' ', h('code', {}, String(k.path))] : null,
            k.source ? h('span', { class: 'muted' }, ` from ${k.source}`) : null))))
        : null,
      notes.length ? h('div', { class: 'workspace-notes' }, h('p', {}, 'Notes:'),
        h('ul', { class: 'notes' }, notes.map((n) => h('li', {}, String(n))))) : null,
      event.content ? folded('What the agent read', event.content, 'ok') : null);
  }
  if (extras.recall_type === 'knowledge') {
    const entries = list(extras.microagent_knowledge);
    if (!entries.length) return null;
    return item('recall knowledge', entries.map((k) => h('details', { class: 'fold ok knowledge' },
      h('summary', {}, `Knowledge: ${k.name ?? ''}`, k.trigger ? ` (triggered by "${k.trigger}")` : ''),
      h('pre', {}, String(k.content ?? '')))));
  }
  return item('note', folded(event.message || 'Recalled', event.content, 'ok'));
}

/** A run of the repository's setup or pre-commit script: which, how it ended, its output. */
function scriptItem(event, extras, item) {
  const script = SCRIPTS[extras.script];
  const code = extras.exit_code ?? (extras.metadata || {}).exit_code;
  const passed = code === 0;
  return item(`script ${passed ? 'ok' : 'failed'}`,
    h('p', { class: 'card-title' }, `${script.label} `, h('code', {}, script.path), ' ',
      h('span', { class: `badge ${passed ? 'status-finished' : 'status-failed'}` },
        `${passed ? 'passed' : 'failed'} · exit code ${code ?? '?'}`)),
    folded('Output', event.content, passed ? 'ok' : 'failed'));
}

/** A repository as the service records it (`{host, repository}` or `{host, path}`). */
function repositoryName(repository) {
  return repository ? String(repository.repository ?? repository.path ?? repository.name ?? '') : '';
}

function repositoryQuestion(extras) {
  const choices = list(extras.choices).map(repositoryName).filter(Boolean);
  const problems = list(extras.problems);
  return [
    h('p', { class: 'muted' }, 'Asked which repository to work on',
      choices.length ? `, offering ${choices.join(', ')}` : '', '.'),
    problems.length ? h('ul', { class: 'notes' }, problems.map((p) => h('li', {}, String(p)))) : null,
  ];
}

const HOW = {
  named: (by) => `named by ${by}`,
  chosen: (by) => `chosen by ${by}`,
  channel: () => "the channel's repository",
  ticket_route: () => "the ticket's repository",
};

function repositorySelected(extras) {
  const by = extras.by ? String(extras.by) : 'the requester';
  const how = Object.hasOwn(HOW, extras.how) ? ` (${HOW[extras.how](by)})` : '';
  if (!extras.name) return extras.how === 'chosen' ? `Working without a repository${how}` : 'Working without a repository';
  return `Working on ${extras.name}${how}`;
}

/** An array from data that should hold one, else an empty one. */
function list(value) {
  return Array.isArray(value) ? value : [];
}

function folded(summary, content, kind) {
  return h('details', { class: `fold ${kind}` }, h('summary', {}, summary), h('pre', {}, String(content ?? '')));
}

/** A file edit as removed and added lines. */
function diff(args) {
  const lines = [];
  const add = (prefix, text, kind) => {
    for (const line of String(text ?? '').split('\n')) lines.push(h('span', { class: `line ${kind}` }, `${prefix}${line}\n`));
  };
  if (args.command === 'create') add('+', args.file_text, 'added');
  else if (args.command === 'str_replace') { add('-', args.old_str, 'removed'); add('+', args.new_str, 'added'); }
  else if (args.command === 'insert') add('+', args.new_str, 'added');
  else if (args.command === 'undo_edit') lines.push(h('span', { class: 'line' }, 'Undid the last edit\n'));
  return h('pre', { class: 'diff' }, lines);
}
