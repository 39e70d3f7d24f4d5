// One conversation, live: its events as a chat, streamed over the WebSocket and resumed after
// a drop from the last event seen (no gap, no duplicate); a box to send a message; the
// controls the agent's state allows; the workspace beside the chat (terminal, changes,
// files); the header with model, cost, tokens, duration, repository, branch and pull
// requests; rename and delete.
import { api, get, post } from './api.js';
import { h, show, fill, notice, triggerBadge, statusBadge, safeUrl, imagePicker } from './dom.js';
import { markdown } from './markdown.js';
import { navigate } from './app.js';
import { workspacePanes } from './workspace.js';

const RECONNECT_MS = [500, 1000, 2000, 5000];
const REFRESH_MS = 5000;
/** How near the bottom (px) still counts as following the newest event. */
const STICK_PX = 48;

/** Which requests each state allows: the server's rule, mirrored so that a button is only
 * offered where it means something. */
const ALLOWED = {
  pause: ['loading', 'running'],
  stop: ['loading', 'running', 'paused', 'awaiting_user_input', 'awaiting_user_confirmation', 'rate_limited'],
  resume: ['paused', 'stopped', 'awaiting_user_input'],
  confirm: ['awaiting_user_confirmation'],
  reject: ['awaiting_user_confirmation'],
};

/** Where each request is posted. */
const REQUEST_PATHS = { resume: 'start', stop: 'stop', pause: 'pause', confirm: 'confirm', reject: 'reject' };

export async function conversationPage(id) {
  const path = `/api/conversations/${encodeURIComponent(id)}`;
  let conversation = await get(path);
  document.title = `${conversation.title || 'Conversation'} · OpenHands`;
  const header = h('div', { id: 'conversation-header', class: 'conversation-header' });
  const events = h('ol', { id: 'events', class: 'events', 'aria-live': 'polite', tabindex: 0, 'aria-label': 'Events' });
  const jump = h('button', { type: 'button', id: 'jump-latest', class: 'jump', hidden: true }, 'Jump to latest ↓');
  const working = h('p', { id: 'working', class: 'working', role: 'status', hidden: true });
  const connection = h('p', { id: 'connection', class: 'muted', role: 'status' });
  const problem = h('div', { 'aria-live': 'assertive' });
  const runError = h('div', { id: 'run-error', 'aria-live': 'assertive' });
  const text = h('textarea', { id: 'message', rows: 3, required: true, placeholder: 'Send a message to the agent (Ctrl+Enter sends)', 'aria-label': 'Message' });
  const send = h('button', { type: 'submit', id: 'send' }, 'Send');
  const images = imagePicker('message-images');
  const form = h('form', { id: 'message-form', class: 'composer' }, text, send, images.element);
  const buttons = {
    pause: h('button', { type: 'button', id: 'pause', onclick: () => changeState('pause') }, 'Pause'),
    resume: h('button', { type: 'button', id: 'resume', onclick: () => changeState('resume') }, 'Resume'),
    stop: h('button', { type: 'button', id: 'stop', class: 'danger', onclick: () => changeState('stop') }, 'Stop'),
    confirm: h('button', { type: 'button', id: 'confirm', onclick: () => changeState('confirm') }, 'Run it'),
    reject: h('button', { type: 'button', id: 'reject', class: 'danger', onclick: () => changeState('reject') }, 'Reject'),
  };
  // Shown while the agent waits for the user's word on what it wants to run.
  const confirmation = h('div', { id: 'confirmation', class: 'notice', role: 'status', hidden: true },
    h('p', {}, 'The agent waits for your confirmation before it runs what it asked for last.'),
    h('div', { class: 'buttons' }, buttons.confirm, buttons.reject));
  const askFirst = h('input', { id: 'confirmation-mode', type: 'checkbox' });
  askFirst.addEventListener('change', async () => {
    askFirst.disabled = true;
    try {
      conversation = await api('PATCH', path, { confirmation_mode: askFirst.checked });
    } catch (error) {
      askFirst.checked = !askFirst.checked;
      problem.replaceChildren(notice('error', error.message));
    } finally {
      askFirst.disabled = false;
    }
  });
  const askFirstField = h('label', { class: 'toggle', for: 'confirmation-mode' }, askFirst, ' Ask me before risky actions run');
  const controls = h('div', { class: 'controls', role: 'group', 'aria-label': 'Agent controls' },
    buttons.pause, buttons.resume, buttons.stop, conversation.trigger === 'web' ? askFirstField : null);
  const workspace = workspacePanes(id, (command) => sendFrame({ action: 'run', args: { command } }));
  show(h('section', { class: 'conversation' },
    header, runError, controls, confirmation,
    h('div', { class: 'conversation-layout' },
      h('div', { class: 'chat' }, connection,
        h('div', { class: 'events-frame' }, events, jump),
        working, problem, form),
      workspace.element)));

  const seen = new Set();
  let lastId = 0;
  let socket = null;
  let attempts = 0;
  let closed = false;
  let state = conversation.status;
  /** The newest model that answered, from the events' figures. */
  let model = null;
  /** The agent's tool call still waiting for its result, if any. */
  let pendingAction = null;
  /** A state change asked and not yet confirmed: its buttons stay disabled meanwhile. */
  let asking = false;

  function renderHeader() {
    const c = conversation;
    const s = c.stats || {};
    const started = Date.parse(c.created_at);
    const updated = Date.parse(c.last_updated_at);
    const minutes = Number.isFinite(started) && Number.isFinite(updated) ? Math.max(0, (updated - started) / 60000) : 0;
    const repository = c.selected_repository
      ? link(c.repository_url, c.selected_repository, 'repository')
      : null;
    const branch = c.selected_branch ? link(c.branch_url, c.selected_branch, 'branch') : null;
    fill(header,
      h('div', { class: 'heading' },
        h('h1', { id: 'conversation-title' }, c.title || 'Untitled'),
        h('div', { class: 'header-actions' },
          h('button', { type: 'button', id: 'rename', class: 'small', onclick: rename }, 'Rename'),
          h('button', { type: 'button', id: 'delete', class: 'small danger', onclick: remove, disabled: c.status === 'running' || c.status === 'loading', title: c.status === 'running' ? 'Stop the agent first' : null }, 'Delete'))),
      h('p', { class: 'meta' },
        statusBadge(c.status), triggerBadge(c.trigger, c.trigger_url),
        c.owner_login ? h('span', { class: 'owner' }, `by ${c.owner_login}`) : null,
        repository ? h('span', { class: 'repo' }, repository, branch ? [' @ ', branch] : null) : null),
      h('dl', { id: 'stats', class: 'stats' },
        stat('Model', model || '—', 'stat-model'),
        stat('Tokens', String((s.prompt_tokens || 0) + (s.completion_tokens || 0)), 'stat-tokens'),
        stat('Cost', `$${Number(s.cost_usd || 0).toFixed(4)}`, 'stat-cost'),
        stat('Duration', `${minutes.toFixed(1)} min`, 'stat-duration')),
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

  function renderControls() {
    for (const [name, button] of Object.entries(buttons)) {
      const allowed = ALLOWED[name].includes(state);
      button.disabled = asking || !allowed;
      button.title = allowed ? '' : `Not while the conversation is ${String(state).replaceAll('_', ' ')}`;
    }
    confirmation.hidden = state !== 'awaiting_user_confirmation';
    askFirst.checked = Boolean(conversation.confirmation_mode);
  }

  function renderWorking() {
    const busy = state === 'running' || state === 'loading';
    working.hidden = !busy;
    if (!busy) return;
    const doing = pendingAction
      ? (pendingAction.action === 'run' ? `Running ${String((pendingAction.args || {}).command || 'a command').split('\n')[0]}` : `Working: ${pendingAction.message || pendingAction.action}`)
      : (state === 'loading' ? 'Preparing the sandbox' : 'The model is thinking');
    fill(working, h('span', { class: 'spinner', 'aria-hidden': 'true' }), `${doing}…`);
  }

  function render() {
    renderHeader();
    renderControls();
    renderWorking();
  }
  render();

  const atBottom = () => events.scrollHeight - events.scrollTop - events.clientHeight <= STICK_PX;
  const toBottom = () => { events.scrollTop = events.scrollHeight; jump.hidden = true; };
  events.addEventListener('scroll', () => { if (atBottom()) jump.hidden = true; });
  jump.addEventListener('click', () => { toBottom(); events.focus({ preventScroll: true }); });

  function append(event) {
    if (seen.has(event.id) || event.id <= lastId) return;
    seen.add(event.id);
    lastId = event.id;
    const following = atBottom();
    const item = renderEvent(event);
    if (item) {
      events.append(item);
      if (following) toBottom(); else jump.hidden = false;
    }
    const metrics = event.llm_metrics;
    if (metrics && metrics.model) model = String(metrics.model);
    if (event.source === 'agent' && event.action && !['message', 'finish', 'think'].includes(event.action)) {
      pendingAction = event;
    } else if (event.observation && pendingAction && event.cause === pendingAction.id) {
      pendingAction = null;
    }
    if (event.action === 'run' || event.observation === 'run' || event.observation === 'error') workspace.terminal(event);
    if (event.observation === 'agent_state_changed') {
      const extras = event.extras || {};
      state = extras.agent_state || state;
      conversation.status = state;
      if (!['running', 'loading'].includes(state)) pendingAction = null;
      // Why a run stopped in error (no model, key refused, sandbox engine down…) is the
      // first thing to see.
      fill(runError, extras.agent_state === 'error'
        ? notice('error', `The run stopped: ${extras.reason || 'an error'}`)
        : null);
      refresh();
    }
    render();
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
      if (data.type === 'error') {
        asking = false;
        renderControls();
        problem.replaceChildren(notice('error', data.error));
        return;
      }
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
      conversation = await get(path);
      state = conversation.status;
      asking = false;
      render();
    } catch { /* the socket says when something is wrong */ }
  }
  const timer = setInterval(refresh, REFRESH_MS);

  /** Sends a frame over the socket; false when it is not open. */
  function sendFrame(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      problem.replaceChildren(notice('error', 'Not connected; try again in a moment.'));
      return false;
    }
    problem.replaceChildren();
    socket.send(JSON.stringify(frame));
    return true;
  }

  async function changeState(wanted) {
    if (!ALLOWED[wanted].includes(state)) return;
    asking = true;
    renderControls();
    problem.replaceChildren();
    try {
      await post(`${path}/${REQUEST_PATHS[wanted]}`);
    } catch (error) {
      problem.replaceChildren(notice('error', error.message));
    }
    await refresh();
  }

  async function rename() {
    const title = window.prompt('New title', conversation.title || '');
    if (title === null || !title.trim()) return;
    try {
      conversation = await api('PATCH', path, { title: title.trim() });
      document.title = `${conversation.title} · OpenHands`;
      render();
    } catch (error) {
      problem.replaceChildren(notice('error', error.message));
    }
  }

  async function remove() {
    if (!window.confirm(`Delete “${conversation.title || 'this conversation'}”? Its event log and its sandbox are removed; this cannot be undone.`)) return;
    try {
      await api('DELETE', path);
      navigate('/conversations');
    } catch (error) {
      problem.replaceChildren(notice('error', error.message));
    }
  }

  let sending = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const content = text.value.trim();
    // One message per click: a double click, or Ctrl+Enter pressed twice, sends it once.
    if (!content || sending) return;
    sending = true;
    send.disabled = true;
    problem.replaceChildren();
    try {
      const attached = images.urls();
      await post(`${path}/message`, attached.length ? { message: content, image_urls: attached } : { message: content });
      text.value = '';
      images.clear();
    } catch (error) {
      problem.replaceChildren(notice('error', error.message));
    } finally {
      sending = false;
      send.disabled = false;
    }
  });
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  return () => {
    closed = true;
    clearInterval(timer);
    workspace.leave();
    if (socket) socket.close(1000, 'page left');
  };
}

function stat(label, value, id) {
  return h('div', { class: 'stat' }, h('dt', {}, label), h('dd', { id }, value));
}

function link(url, text, what) {
  const href = url && safeUrl(url);
  return href
    ? h('a', { href, rel: 'noopener noreferrer', target: '_blank', class: what }, text)
    : h('span', { class: what }, text);
}

/** Longer outputs show their first and last lines, with the rest on request. */
const FOLD_HEAD = 12;
const FOLD_TAIL = 8;

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
  // The model's words that came with a tool call.
  const said = who === 'agent' && event.action && event.action !== 'message' && event.action !== 'think'
    && typeof args.thought === 'string' && args.thought.trim()
    ? h('div', { class: 'thought' }, markdown(args.thought)) : null;
  if (observation === 'microagent_catalog') return null;
  if (observation === 'recall') return recallItem(event, extras, item);
  if (observation === 'run' && Object.hasOwn(SCRIPTS, extras.script)) return scriptItem(event, extras, item);
  if (observation === 'repository_question') return item('repository', repositoryQuestion(extras));
  if (observation === 'repository_selected') return item('repository', h('p', { class: 'muted' }, repositorySelected(extras)));
  if (event.action === 'change_agent_state') return systemNote(event, stateRequest(args.agent_state));
  if (event.action === 'message') {
    if (args.automatic) return null;
    // Attached images: uploaded ones shown small; addresses elsewhere as links (the page
    // loads nothing from other sites).
    const images = (Array.isArray(args.image_urls) ? args.image_urls : [])
      .filter((url) => typeof url === 'string')
      .map((url) => (url.startsWith('data:image/')
        ? h('img', { src: url, alt: 'Attached image', class: 'attached-image' })
        : safeUrl(url) && h('a', { href: safeUrl(url), rel: 'noopener noreferrer', target: '_blank' }, 'Attached image')))
      .filter(Boolean);
    return item('message', markdown(args.content ?? event.message),
      images.length ? h('div', { class: 'attached-images' }, images) : null);
  }
  if (event.action === 'run') {
    return item('command', said, h('pre', { class: 'command' }, h('code', {}, `$ ${args.command ?? ''}`)));
  }
  if (event.observation === 'run') {
    const code = extras.exit_code ?? (extras.metadata || {}).exit_code;
    return item('output', output(`exit code ${code}`, event.content, code === 0 ? 'ok' : 'failed'));
  }
  if (event.action === 'call_tool_mcp') {
    return item('command', said, h('p', { class: 'muted' }, `MCP tool ${args.name ?? ''}`),
      h('pre', { class: 'command' }, h('code', {}, JSON.stringify(args.arguments ?? {}, null, 2))));
  }
  if (event.observation === 'mcp') return item('output', output(`${extras.name ?? 'MCP tool'} answered`, event.content, 'ok'));
  if (event.action === 'edit') return item('edit', said, h('p', {}, `Edited ${args.path ?? ''}`), diff(args));
  if (event.observation === 'edit') return null;
  if (event.action === 'read') return item('read', said, h('p', { class: 'muted' }, `Read ${args.path ?? ''}`));
  if (event.observation === 'read') return item('output', output(extras.path || 'file', event.content, 'ok'));
  if (event.action === 'think') {
    const words = thinkText(event);
    if (!words.trim()) return null;
    return item('thought', h('p', { class: 'card-title' }, 'Thought'), h('div', { class: 'thought' }, markdown(words)));
  }
  if (event.observation === 'think') return null;
  if (event.action === 'finish') return item('finish', said, markdown(args.final_thought || event.message || 'Finished.'));
  if (event.observation === 'agent_state_changed') {
    const reason = extras.reason ? ` — ${extras.reason}` : '';
    return item('state', h('p', { class: 'muted' }, `State: ${String(extras.agent_state).replaceAll('_', ' ')}${reason}`));
  }
  if (event.observation === 'error') return item('error', h('p', {}, event.content ?? event.message ?? 'Error'));
  if (event.observation) return item('note', output(event.message || event.observation, event.content, 'ok'));
  if (event.action) return item('note', said, h('p', { class: 'muted' }, event.message || event.action));
  return null;
}

/** What a think call said: its own argument, which the recorded action keeps in the call's
 * arguments (`args.thought` holds the model's words beside the call). */
function thinkText(event) {
  const meta = event.tool_call_metadata;
  if (meta && typeof meta.arguments === 'string') {
    try {
      const parsed = JSON.parse(meta.arguments);
      if (parsed && typeof parsed.thought === 'string' && parsed.thought.trim()) return parsed.thought;
    } catch { /* fall back to the recorded argument */ }
  }
  return String((event.args || {}).thought ?? '');
}

/** A request to stop, pause or resume, as the service notes it (never as the user speaking). */
function stateRequest(state) {
  switch (state) {
    case 'stopped': return 'Stop requested';
    case 'paused': return 'Pause requested';
    case 'running': return 'Resume requested';
    case 'user_confirmed': return 'You confirmed the waiting actions';
    case 'user_rejected': return 'You rejected the waiting actions';
    default: return `State change requested: ${String(state ?? '').replaceAll('_', ' ')}`;
  }
}

function systemNote(event, text) {
  return h('li', { class: 'event note-system state', 'data-event-id': event.id, 'data-kind': event.kind, role: 'note' },
    h('p', { class: 'muted' }, text));
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

/** A command's or file's output, open: short ones whole, long ones as their first and last
 * lines with a button that shows the rest. */
function output(summary, content, kind) {
  const lines = String(content ?? '').split('\n');
  const box = h('pre', { class: 'output' });
  const whole = () => fill(box, lines.join('\n'));
  const hidden = lines.length - FOLD_HEAD - FOLD_TAIL;
  if (hidden <= 2) {
    whole();
    return h('div', { class: `fold open ${kind}` }, h('p', { class: 'fold-title' }, summary), box);
  }
  fill(box, lines.slice(0, FOLD_HEAD).join('\n'), '\n', h('span', { class: 'elided' }, `… ${hidden} more lines …`), '\n',
    lines.slice(-FOLD_TAIL).join('\n'));
  const all = h('button', { type: 'button', class: 'small link show-all' }, `Show all ${lines.length} lines`);
  all.addEventListener('click', () => { whole(); all.remove(); });
  return h('div', { class: `fold open ${kind}` }, h('p', { class: 'fold-title' }, summary, ' ', all), box);
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
