// Integrations (administrators): for each provider, whether it is configured, the webhook URL
// and events to register with it, and the last delivery it sent.
import { get } from './api.js';
import { h, show, when, PROVIDER_NAMES, copyButton } from './dom.js';

export async function integrationsPage() {
  document.title = 'Integrations · OpenHands';
  const { providers } = await get('/api/integrations');
  show(h('section', {},
    h('h1', {}, 'Integrations'),
    h('div', { class: 'grid' }, providers.map(card))));
}

function card(p) {
  const name = PROVIDER_NAMES[p.provider] || p.provider;
  const url = h('code', { class: 'url' }, p.webhook_url);
  return h('article', { class: 'card', 'data-provider': p.provider },
    h('h2', {}, name, ' ',
      h('span', { class: `badge ${p.configured ? 'status-finished' : 'status-stopped'}` }, p.configured ? 'configured' : 'not configured')),
    h('p', { class: 'webhook' }, 'Webhook URL: ', url, ' ', copyButton(p.webhook_url, `the ${name} webhook URL`, url)),
    h('p', {}, 'Secret: ', h('code', {}, p.secret_setting)),
    h('p', {}, 'Events: ', p.events.join(', ')),
    h('p', { class: 'muted' }, p.last_delivery
      ? `Last delivery: ${p.last_delivery.event}, ${p.last_delivery.status}, ${when(p.last_delivery.received_at)}`
      : 'No delivery received yet.'));
}
