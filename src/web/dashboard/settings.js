// Settings: the LLM (model, base URL, key — write-only), limits, MCP servers (the user's,
// and for administrators the service's; secret values never shown), API keys (shown once,
// revocable), the provider accounts linked to the user, and secrets (values never shown).
import { api, get, post } from './api.js';
import { h, show, notice, when, PROVIDER_NAMES, triggerIcon, copyButton } from './dom.js';

export async function settingsPage() {
  document.title = 'Settings · OpenHands';
  const [settings, models, me] = await Promise.all([
    get('/api/settings'),
    get('/api/options/models').catch(() => []),
    get('/api/user').catch(() => null),
  ]);
  show(h('section', { class: 'narrow' },
    h('h1', {}, 'Settings'),
    llmForm(settings, models),
    mcpForm('mcp-own', 'Your MCP servers',
      'Tools of MCP servers your agent may use, in OpenHands’ mcp_config shape. Secret values show as ********** and are kept when saved as they are.',
      settings.mcp_config,
      async (config) => (await post('/api/settings', { mcp_config: config })).mcp_config),
    me?.is_admin ? await serviceMcpForm() : '',
    await keysSection(),
    await accountsSection(),
    await secretsSection()));
}

const MCP_EXAMPLE = '{\n  "shttp_servers": [{"url": "https://tools.example.com/mcp", "api_key": "…"}],\n  "stdio_servers": [{"name": "fetch", "command": "uvx", "args": ["mcp-server-fetch"]}]\n}';

/** A JSON editor for an `mcp_config`: empty removes it; `save` returns what is stored now. */
function mcpForm(id, title, help, config, save, readOnly = '') {
  const text = h('textarea', {
    id, rows: 8, spellcheck: 'false', autocomplete: 'off', placeholder: MCP_EXAMPLE, class: 'code',
  });
  text.value = config ? JSON.stringify(config, null, 2) : '';
  const message = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: `${id}-form`, class: 'card' },
    h('h2', {}, title), h('p', { class: 'muted' }, help), field(id, 'mcp_config (JSON)', text));
  if (readOnly) {
    text.disabled = true;
    form.append(notice('info', readOnly));
    return form;
  }
  form.append(h('button', { type: 'submit' }, 'Save'), message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    let parsed = null;
    if (text.value.trim()) {
      try {
        parsed = JSON.parse(text.value);
      } catch (error) {
        message.replaceChildren(notice('error', `This is not JSON: ${error.message}`));
        return;
      }
    }
    try {
      const stored = await save(parsed);
      text.value = stored ? JSON.stringify(stored, null, 2) : '';
      message.replaceChildren(notice('info', 'Saved. Runs that start from now on use these servers.'));
    } catch (error) {
      message.replaceChildren(notice('error', error.message));
    }
  });
  return form;
}

/** The service's own MCP servers, for administrators. */
async function serviceMcpForm() {
  const view = await get('/api/admin/mcp');
  return mcpForm('mcp-service', 'MCP servers of every conversation',
    'Every user’s agent may use these tools, beside their own servers.',
    view.mcp_config,
    async (config) => (await api('PUT', '/api/admin/mcp', { mcp_config: config })).mcp_config,
    view.source === 'environment' ? 'MCP_CONFIG sets these servers in the environment; change them there.' : '');
}

/** Runs a button's request, then `after`; a failure is said in `message`. */
async function act(message, request, after) {
  message.replaceChildren();
  try {
    await request();
    await after();
  } catch (error) {
    message.replaceChildren(notice('error', error.message));
  }
}

/** A label above its own input, together in one box: a row of them never mixes them up. */
function field(id, label, input) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), input);
}

function llmForm(settings, models) {
  const model = h('input', { id: 'llm-model', list: 'models', value: settings.llm_model || '', placeholder: 'server default' });
  const baseUrl = h('input', { id: 'llm-base-url', value: settings.llm_base_url || '', placeholder: 'provider default' });
  const key = h('input', { id: 'llm-api-key', type: 'password', autocomplete: 'off', placeholder: settings.llm_api_key_set ? 'set — type to replace' : 'not set' });
  const iterations = h('input', { id: 'max-iterations', type: 'number', min: 1, value: settings.max_iterations ?? '' });
  const budget = h('input', { id: 'max-budget', type: 'number', min: 0, step: '0.01', value: settings.max_budget_per_task ?? '' });
  const askFirst = h('input', { id: 'confirmation-default', type: 'checkbox', checked: Boolean(settings.confirmation_mode) });
  const message = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'llm-form', class: 'card' },
    h('h2', {}, 'Language model'),
    h('datalist', { id: 'models' }, (Array.isArray(models) ? models : []).map((m) => h('option', { value: m }))),
    field('llm-model', 'Model', model),
    field('llm-base-url', 'Base URL', baseUrl),
    field('llm-api-key', 'API key', key),
    field('max-iterations', 'Most steps per task', iterations),
    field('max-budget', 'Most dollars per task', budget),
    h('label', { class: 'toggle', for: 'confirmation-default' }, askFirst,
      ' Ask me before risky actions run in the conversations I start here'),
    h('button', { type: 'submit' }, 'Save'),
    message);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    const body = {
      llm_model: model.value.trim() || null,
      llm_base_url: baseUrl.value.trim() || null,
      max_iterations: iterations.value ? Number(iterations.value) : null,
      max_budget_per_task: budget.value ? Number(budget.value) : null,
      confirmation_mode: askFirst.checked,
    };
    if (key.value) body.llm_api_key = key.value;
    try {
      const saved = await post('/api/settings', body);
      key.value = '';
      key.placeholder = saved.llm_api_key_set ? 'set — type to replace' : 'not set';
      message.replaceChildren(notice('info', 'Saved.'));
    } catch (error) {
      message.replaceChildren(notice('error', error.message));
    }
  });
  return form;
}

async function keysSection() {
  const list = h('ul', { id: 'key-list', class: 'rows' });
  const shown = h('div', { 'aria-live': 'polite' });
  const listMessage = h('div', { 'aria-live': 'assertive' });
  const name = h('input', { id: 'key-name', required: true, placeholder: 'e.g. laptop' });
  const form = h('form', { id: 'key-form-new', class: 'inline' }, field('key-name', 'New key', name), h('button', { type: 'submit' }, 'Create'));
  async function refresh() {
    const keys = await get('/api/keys');
    list.replaceChildren(...(keys.length ? keys.map((k) => h('li', { class: 'row' },
      h('span', {}, `${k.name} (${k.prefix}…)`),
      h('span', { class: 'meta' }, k.last_used_at ? `used ${when(k.last_used_at)}` : 'never used',
        k.expires_at ? ` · expires ${when(k.expires_at)}` : ''),
      h('button', {
        type: 'button', class: 'small danger', 'aria-label': `Revoke the API key ${k.name}`,
        onclick: () => {
          if (!window.confirm(`Revoke the API key “${k.name}” (${k.prefix}…)? Whatever signs in with it will be refused.`)) return;
          act(listMessage, () => api('DELETE', `/api/keys/${k.id}`), refresh);
        },
      }, 'Revoke')))
      : [h('li', { class: 'muted' }, 'No API keys.')]));
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const created = await post('/api/keys', { name: name.value.trim() });
      name.value = '';
      const code = h('code', { id: 'new-key', class: 'secret' }, created.key);
      shown.replaceChildren(notice('info', 'Copy this key now; it is not shown again:'),
        h('div', { class: 'copyable' }, code, copyButton(created.key, 'the new API key', code)));
      refresh();
    } catch (error) {
      shown.replaceChildren(notice('error', error.message));
    }
  });
  await refresh();
  return h('div', { class: 'card' }, h('h2', {}, 'API keys'), list, listMessage, form, shown);
}

async function secretsSection() {
  const list = h('ul', { id: 'secret-list', class: 'rows' });
  const message = h('div', { 'aria-live': 'polite' });
  const name = h('input', { id: 'secret-name', required: true, placeholder: 'NAME' });
  const value = h('input', { id: 'secret-value', type: 'password', required: true, autocomplete: 'off' });
  const form = h('form', { id: 'secret-form', class: 'inline' },
    field('secret-name', 'Name', name), field('secret-value', 'Value', value), h('button', { type: 'submit' }, 'Add'));
  async function refresh() {
    const { secrets } = await get('/api/secrets');
    list.replaceChildren(...(secrets.length ? secrets.map((s) => h('li', { class: 'row' },
      h('code', {}, s.name), h('span', { class: 'meta' }, s.description || ''),
      h('button', {
        type: 'button', class: 'small danger', 'aria-label': `Delete the secret ${s.name}`,
        onclick: () => {
          if (!window.confirm(`Delete the secret ${s.name}? Sandboxes started from now on will not have it.`)) return;
          act(message, () => api('DELETE', `/api/secrets/${encodeURIComponent(s.name)}`), refresh);
        },
      }, 'Delete')))
      : [h('li', { class: 'muted' }, 'No secrets. They reach your sandboxes as environment variables.')]));
  }
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    try {
      await post('/api/secrets', { name: name.value.trim(), value: value.value });
      name.value = ''; value.value = '';
      refresh();
    } catch (error) {
      message.replaceChildren(notice('error', error.message));
    }
  });
  await refresh();
  return h('div', { class: 'card' }, h('h2', {}, 'Secrets'), list, form, message);
}

/** Providers whose accounts also sign in: unlinking one parts it from this user's sign-in. */
const SIGN_IN_PROVIDERS = new Set(['github', 'gitlab', 'oidc']);

async function accountsSection() {
  const list = h('ul', { id: 'account-list', class: 'rows' });
  const message = h('div', { id: 'account-message', 'aria-live': 'assertive' });
  async function refresh() {
    // Read afresh: a link followed in another tab shows here too.
    const { accounts } = await get('/api/user');
    list.replaceChildren(...(accounts && accounts.length ? accounts.map((a) => {
      const provider = PROVIDER_NAMES[a.provider] || a.provider;
      const label = `${provider} account ${a.external_id} of ${a.workspace}`;
      const unlink = async () => {
        const warning = SIGN_IN_PROVIDERS.has(a.provider)
          ? ' If you sign in with this account, signing in with it will no longer reach this user.'
          : ' Its requests are refused until it is linked again.';
        if (!window.confirm(`Unlink the ${label}?${warning}`)) return;
        const path = ['', 'api', 'user', 'accounts', a.provider, a.workspace, a.external_id]
          .map(encodeURIComponent).join('/');
        message.replaceChildren();
        try {
          await api('DELETE', path);
        } catch (error) {
          message.replaceChildren(notice('error', error.status === 404
            ? `The ${label} is no longer linked to you.`
            : `The ${label} could not be unlinked: ${error.message}`));
        }
        // Either way the list shows what is linked now.
        await refresh().catch((error) => message.replaceChildren(notice('error', error.message)));
      };
      return h('li', { class: 'row account', 'data-provider': a.provider, 'data-account': a.external_id },
        h('span', { class: 'account-name' },
          h('span', { class: `badge trigger trigger-${a.provider}` }, triggerIcon(a.provider), provider),
          ' ', h('code', {}, a.external_id)),
        h('span', { class: 'meta' }, a.workspace, a.created_at ? ` · linked ${when(a.created_at)}` : ''),
        h('button', { type: 'button', class: 'small danger', 'aria-label': `Unlink the ${label}`, onclick: unlink }, 'Unlink'));
    }) : [h('li', { class: 'muted', id: 'no-accounts' },
      'No accounts are linked to you. A Slack, Jira or Linear account is linked when you follow the link the agent sends you there, and a GitHub account when you sign in with it.')]));
  }
  await refresh();
  return h('div', { class: 'card', id: 'accounts' }, h('h2', {}, 'Linked accounts'),
    h('p', { class: 'muted intro' }, 'Requests from these accounts run as you.'), list, message);
}
