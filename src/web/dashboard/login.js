// Sign-in: the configured providers, an API key for a self-hosted service, and the one-time
// link a first start prints.
import { get, post } from './api.js';
import { h, show, notice, samePath } from './dom.js';
import { signedIn } from './app.js';

export async function loginPage() {
  document.title = 'Sign in · OpenHands';
  // Only a path on this site: a link to the sign-in page cannot send anyone elsewhere.
  const asked = new URLSearchParams(window.location.search);
  const next = samePath(asked.get('next')) || '/conversations';
  const message = h('div', { 'aria-live': 'polite' });
  const token = asked.get('token');
  if (token) {
    // Out of the address bar and the history first: the token works once.
    window.history.replaceState({}, '', '/login');
    try {
      await post('/auth/token', { token });
      // The first administrator starts where the service is set up.
      return signedIn(asked.get('next') ? next : '/setup');
    } catch (error) {
      message.replaceChildren(notice('error', error.status === 401
        ? 'That sign-in link was used already or has expired. Restart the service to print a new one, or sign in another way.'
        : error.message));
    }
  }
  const { providers } = await get('/auth/providers').catch(() => ({ providers: [] }));
  const key = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true, placeholder: 'oh_…' });
  const form = h('form', { class: 'card', id: 'key-form' },
    h('label', { for: 'api-key' }, 'API key'),
    key,
    h('button', { type: 'submit' }, 'Sign in with the key'),
    h('p', { class: 'muted' }, 'Create one with ', h('code', {}, 'openhands user create NAME'), '.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    message.replaceChildren();
    try {
      await post('/auth/key', { api_key: key.value });
      await signedIn(next);
    } catch (error) {
      message.replaceChildren(notice('error', error.status === 401 ? 'That key is not valid.' : error.message));
    }
  });
  const buttons = providers.map((p) => h('a', {
    class: 'button', href: `${p.login_url}?redirect_to=${encodeURIComponent(next)}`,
  }, `Sign in with ${p.name}`));
  show(h('section', { class: 'narrow' },
    h('h1', {}, 'Sign in'),
    buttons.length ? h('div', { class: 'stack' }, buttons) : null,
    form,
    message));
}
