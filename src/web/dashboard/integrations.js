// Integrations (administrators): for each provider, whether it is configured, the webhook URL
// and events to register with it, the last delivery it sent, and its settings. Settings typed
// here are stored sealed and in force at once; those set in the environment win and are only
// shown.
import { get, api } from './api.js';
import { h, show, when, notice, PROVIDER_NAMES, copyButton } from './dom.js';

export async function integrationsPage() {
  document.title = 'Integrations · OpenHands';
  const { providers } = await get('/api/integrations');
  show(h('section', {},
    h('h1', {}, 'Integrations'),
    h('div', { class: 'grid' }, providers.map(providerCard))));
}

/** A provider's card: what to register with it and its settings form. */
export function providerCard(p) {
  const name = PROVIDER_NAMES[p.provider] || p.provider;
  const url = h('code', { class: 'url' }, p.webhook_url);
  const badge = h('span', { class: 'badge' });
  const setBadge = (configured) => {
    badge.className = `badge ${configured ? 'status-finished' : 'status-stopped'}`;
    badge.textContent = configured ? 'configured' : 'not configured';
  };
  setBadge(p.configured);
  return h('article', { class: 'card', 'data-provider': p.provider },
    h('h2', {}, name, ' ', badge),
    h('p', { class: 'webhook' }, 'Webhook URL: ', url, ' ', copyButton(p.webhook_url, `the ${name} webhook URL`, url)),
    h('p', {}, 'Events: ', p.events.join(', ')),
    h('p', { class: 'muted' }, p.last_delivery
      ? `Last delivery: ${p.last_delivery.event}, ${p.last_delivery.status}, ${when(p.last_delivery.received_at)}`
      : 'No delivery received yet.'),
    settingsForm(p, name, setBadge));
}

const ENVIRONMENT_NOTE = 'set in the environment, which wins';

/** One input per setting: secrets are never shown, only whether they are stored. */
function settingsForm(p, name, setBadge) {
  const form = h('form', { class: 'provider-settings', 'data-provider': p.provider });
  const result = h('div', { class: 'result', 'aria-live': 'polite' });
  const fields = h('div', { class: 'stack' });
  let current = p.settings || [];
  const inputs = new Map();
  function render() {
    inputs.clear();
    fields.replaceChildren(...current.map((setting) => {
      const id = `setting-${setting.name.toLowerCase().replaceAll('_', '-')}`;
      const fromEnvironment = setting.source === 'environment';
      const multiline = setting.secret && setting.name.endsWith('PRIVATE_KEY');
      const input = multiline
        ? h('textarea', { id, name: setting.name, rows: 3, autocomplete: 'off', spellcheck: 'false' })
        : h('input', { id, name: setting.name, type: setting.secret ? 'password' : 'text', autocomplete: 'off', spellcheck: 'false' });
      if (setting.secret) {
        input.placeholder = fromEnvironment ? ENVIRONMENT_NOTE
          : setting.source === 'stored' ? 'stored — type to replace' : 'not set';
      } else {
        input.value = setting.value || '';
        if (fromEnvironment) input.title = ENVIRONMENT_NOTE;
      }
      input.disabled = fromEnvironment;
      inputs.set(setting.name, { setting, input });
      return h('div', { class: 'field' },
        h('label', { for: id }, setting.label, ' ', h('code', { class: 'setting-name' }, setting.name)),
        input,
        fromEnvironment ? h('span', { class: 'muted' }, `${setting.name} is ${ENVIRONMENT_NOTE}.`) : null);
    }));
    // Offered only while something is stored here.
    buttons.replaceChildren(save, ...(current.some((s) => s.source === 'stored') ? [forget] : []));
  }
  const save = h('button', { type: 'submit', class: 'small' }, 'Save');
  const forget = h('button', { type: 'button', class: 'small secondary' }, 'Forget stored settings');
  const buttons = h('div', { class: 'buttons' });
  async function send(settings, done) {
    save.disabled = true;
    forget.disabled = true;
    try {
      const answer = await api('PUT', `/api/integrations/${encodeURIComponent(p.provider)}/settings`, { settings });
      current = answer.settings;
      render();
      setBadge(answer.configured);
      result.replaceChildren(notice('info', done(answer)));
    } catch (error) {
      result.replaceChildren(notice('error', error.message));
    } finally {
      save.disabled = false;
      forget.disabled = false;
    }
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const settings = {};
    for (const [settingName, { setting, input }] of inputs) {
      if (input.disabled) continue;
      const value = input.value.trim();
      if (setting.secret) {
        if (value) settings[settingName] = value;
      } else if (value !== (setting.value || '')) {
        settings[settingName] = value || null;
      }
    }
    if (Object.keys(settings).length === 0) {
      result.replaceChildren(notice('info', 'Nothing was changed.'));
      return;
    }
    send(settings, (answer) => answer.configured
      ? `Saved: ${name} webhooks are accepted now.`
      : `Saved. ${name} webhooks are accepted once its webhook secret is set.`);
  });
  forget.addEventListener('click', () => {
    if (!window.confirm(`Forget the ${name} settings stored here? Those set in the environment stay.`)) return;
    const settings = {};
    for (const s of current) if (s.source === 'stored') settings[s.name] = null;
    send(settings, () => `The stored ${name} settings were forgotten.`);
  });
  render();
  form.append(fields, buttons, result);
  return form;
}
