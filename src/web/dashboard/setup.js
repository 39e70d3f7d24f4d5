// Set-up (administrators): what the service stands on, checked as `openhands doctor` checks it,
// with the fix beside each failure; the model and its key, tested with one tiny request before
// they are saved; where providers reach the service; and each provider's connection, whose
// settings are entered here and in force at once.
import { get, post } from './api.js';
import { h, show, notice, copyButton } from './dom.js';
import { providerCard } from './integrations.js';

const STATUS_LABELS = { ok: 'ok', failed: 'fix', skipped: 'not set' };

export async function setupPage() {
  document.title = 'Set up · OpenHands';
  const checks = h('div', { id: 'setup-checks', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Checking…'));
  const again = h('button', { type: 'button', id: 'check-again', class: 'small' }, 'Check again');
  const publicUrl = h('div', { id: 'setup-public-url' });
  const slack = h('div', { id: 'setup-slack' });
  async function refresh() {
    again.disabled = true;
    try {
      const setup = await get('/api/setup');
      checks.replaceChildren(
        setup.complete
          ? notice('info', 'Everything checked is in order.')
          : notice('error', 'Some checks failed: each says how to fix it.'),
        h('ul', { class: 'rows checks' }, setup.checks.map(checkRow)));
      publicUrl.replaceChildren(
        h('p', {}, 'Providers send webhooks to, and links point at: ',
          h('code', { id: 'public-url' }, setup.public_url), ' ', copyButton(setup.public_url, 'the public URL')),
        h('p', { class: 'muted' }, 'Set OPENHANDS_PUBLIC_URL when people and providers reach the service at another address. ',
          'Each provider\u2019s webhook URL and events are on the ', h('a', { href: '/integrations', 'data-link': true }, 'Integrations'), ' page.'));
      const manifest = JSON.stringify(setup.slack_manifest, null, 2);
      slack.replaceChildren(
        h('p', {}, 'At api.slack.com/apps choose Create New App, From an app manifest, and paste this: it names the events, the interactivity URL and the bot scopes this service needs. Then enter the new app’s signing secret, bot token and workspace ID under Connections below.'),
        h('pre', { id: 'slack-manifest', class: 'manifest' }, manifest),
        copyButton(manifest, 'the Slack app manifest'));
    } catch (error) {
      checks.replaceChildren(notice('error', error.message));
    } finally {
      again.disabled = false;
    }
  }
  again.addEventListener('click', refresh);
  const settings = await get('/api/settings');
  const models = await get('/api/options/models').catch(() => []);
  const created = new URLSearchParams(window.location.search).get('github_app');
  const github = h('section', { class: 'card', id: 'setup-github' },
    h('h2', {}, 'GitHub'),
    h('p', {}, 'Create this service’s GitHub App from its manifest: GitHub fills in the webhook URL, permissions and events, and this service keeps the app’s id, private key and webhook secret (sealed).'),
    h('p', {}, h('a', { class: 'button', href: '/setup/github/start', id: 'start-github-app' }, 'Create the GitHub App')));
  if (created) {
    github.append(notice('info', `The GitHub App ${created} was created and its credentials stored; they are in force now. Install it on the repositories to work on.`));
    get('/api/setup').then((setup) => {
      github.append(h('p', {}, h('a', { href: `${setup.github_web_url}/apps/${encodeURIComponent(created)}/installations/new`, id: 'install-github-app' }, 'Install the app on GitHub')));
    }).catch(() => null);
  }
  const connections = h('div', { id: 'setup-connections', class: 'stack' });
  show(h('section', { class: 'narrow' },
    h('h1', {}, 'Set up'),
    modelCard(settings, models, refresh),
    github,
    h('section', { class: 'card' }, h('h2', {}, 'Slack'), slack),
    h('section', { class: 'card' }, h('div', { class: 'heading' }, h('h2', {}, 'Checks'), again), checks),
    h('section', { class: 'card' }, h('h2', {}, 'Public address'), publicUrl),
    h('section', {}, h('h2', {}, 'Connections'),
      h('p', { class: 'muted' }, 'Each provider’s settings: what is typed here is stored sealed and in force at once; what the environment sets wins. A provider takes webhooks once its webhook secret and the credentials that answer are set.'),
      connections)));
  refresh();
  get('/api/integrations')
    .then(({ providers }) => connections.replaceChildren(...providers.map(providerCard)))
    .catch((error) => connections.replaceChildren(notice('error', error.message)));
}

function checkRow(check) {
  return h('li', { class: `row check check-${check.status}`, 'data-check': check.name },
    h('span', { class: `badge status-${check.status}` }, STATUS_LABELS[check.status] || check.status),
    h('strong', {}, check.name),
    h('span', { class: 'detail' }, check.detail),
    check.fix ? h('span', { class: 'fix' }, 'Fix: ', h('code', {}, check.fix)) : null);
}

/** The model, base URL and key: "Test" asks the model with what is typed (nothing is saved),
 * "Save" keeps it as this user's model. */
function modelCard(settings, models, afterSave) {
  const model = h('input', { id: 'setup-model', list: 'setup-models', value: settings.llm_model || '', placeholder: 'e.g. anthropic/claude-sonnet-4-5' });
  const baseUrl = h('input', { id: 'setup-base-url', value: settings.llm_base_url || '', placeholder: 'provider default' });
  const key = h('input', { id: 'setup-key', type: 'password', autocomplete: 'off', placeholder: settings.llm_api_key_set ? 'set — type to replace' : 'not set' });
  const result = h('div', { id: 'model-test', 'aria-live': 'polite' });
  const test = h('button', { type: 'button', id: 'test-model' }, 'Test');
  const save = h('button', { type: 'submit', id: 'save-model' }, 'Save');
  const typed = () => {
    const body = {};
    if (model.value.trim()) body.llm_model = model.value.trim();
    if (baseUrl.value.trim()) body.llm_base_url = baseUrl.value.trim();
    if (key.value) body.llm_api_key = key.value;
    return body;
  };
  test.addEventListener('click', async () => {
    test.disabled = true;
    result.replaceChildren(h('p', { class: 'muted' }, 'Asking the model…'));
    try {
      const answer = await post('/api/settings/test', typed());
      result.replaceChildren(answer.ok
        ? h('div', { class: 'notice info' }, `${answer.model} answered in ${answer.milliseconds} ms:`, h('pre', { id: 'model-answer' }, answer.answer))
        : h('div', { class: 'notice error', role: 'alert' }, `${answer.model} did not answer:`, h('pre', { id: 'model-error' }, answer.error)));
    } catch (error) {
      result.replaceChildren(notice('error', error.message));
    } finally {
      test.disabled = false;
    }
  });
  const form = h('form', { id: 'setup-model-form', class: 'card' },
    h('h2', {}, 'Model'),
    h('datalist', { id: 'setup-models' }, (Array.isArray(models) ? models : []).map((m) => h('option', { value: m }))),
    h('div', { class: 'field' }, h('label', { for: 'setup-model' }, 'Model'), model),
    h('div', { class: 'field' }, h('label', { for: 'setup-base-url' }, 'Base URL'), baseUrl),
    h('div', { class: 'field' }, h('label', { for: 'setup-key' }, 'API key'), key),
    h('div', { class: 'buttons' }, test, save),
    result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      const body = { llm_model: model.value.trim() || null, llm_base_url: baseUrl.value.trim() || null };
      if (key.value) body.llm_api_key = key.value;
      const saved = await post('/api/settings', body);
      key.value = '';
      key.placeholder = saved.llm_api_key_set ? 'set — type to replace' : 'not set';
      result.replaceChildren(notice('info', 'Saved: your conversations use this model.'));
      afterSave();
    } catch (error) {
      result.replaceChildren(notice('error', error.message));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}
