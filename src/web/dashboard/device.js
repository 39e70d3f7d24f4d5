// A device's sign-in (OpenHands' CLI running `openhands login` or `openhands cloud`): the
// device shows a code and this page, the signed-in user checks the code is the one their
// device shows, and approves or denies it. Approving gives the device an API key of theirs.
import { get, post } from './api.js';
import { h, show, fill, notice, when } from './dom.js';
import { me } from './app.js';

export async function devicePage() {
  document.title = 'Sign in a device · OpenHands';
  const body = h('div', { id: 'device' });
  show(h('section', { class: 'narrow' }, h('h1', {}, 'Sign in a device'), body));
  const given = new URLSearchParams(window.location.search).get('user_code') || '';
  const input = h('input', {
    id: 'device-code', name: 'user_code', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'BCDF-GHJK', value: given, 'aria-label': 'The code your device shows',
  });
  const message = h('div', { id: 'device-message', 'aria-live': 'polite' });
  const approve = h('button', { type: 'button', id: 'device-approve' }, 'Approve');
  const deny = h('button', { type: 'button', id: 'device-deny', class: 'secondary' }, 'Deny');
  const decide = async (approved) => {
    const code = input.value.trim();
    if (!code) {
      message.replaceChildren(notice('error', 'Type the code your device shows.'));
      return;
    }
    // Disabled before the request leaves: a double click decides once.
    if (approve.disabled) return;
    approve.disabled = true;
    deny.disabled = true;
    message.replaceChildren();
    const path = `/api/oauth/device/${encodeURIComponent(code)}`;
    try {
      const grant = await post(path, { approve: approved });
      fill(body, done(grant));
    } catch (error) {
      approve.disabled = false;
      deny.disabled = false;
      const text = error.status === 404
        ? 'No device is waiting with this code: it may be mistyped or expired. Start the sign-in on the device again.'
        : error.message;
      message.replaceChildren(notice('error', text));
    }
  };
  approve.addEventListener('click', () => decide(true));
  deny.addEventListener('click', () => decide(false));
  let expires = '';
  if (given) {
    try {
      const grant = await get(`/api/oauth/device/${encodeURIComponent(given)}`);
      expires = when(grant.expires_at) ? ` The code works until ${when(grant.expires_at)}.` : '';
    } catch (error) {
      message.replaceChildren(notice('error', error.status === 404
        ? 'No device is waiting with this code: it may be mistyped or expired.'
        : error.message));
    }
  }
  fill(body, h('div', { class: 'card' },
    h('p', { id: 'device-question' },
      'A device asks to sign in as ', h('strong', {}, me ? me.login : 'you'),
      '. Approve only if you started the sign-in yourself and the code below is the one it shows.'),
    h('label', { for: 'device-code' }, 'Code'),
    input,
    h('p', { class: 'muted' },
      'Approving gives the device an API key of yours, listed under Settings, where you can revoke it.',
      expires),
    h('div', { class: 'controls' }, approve, deny),
    message));
}

function done(grant) {
  if (grant.status === 'approved') {
    return [
      notice('info', `Approved: the device with the code ${grant.user_code} is signed in as you. You can go back to it.`),
      h('p', { id: 'device-done' }, h('a', { href: '/settings', 'data-link': true }, 'See your API keys'), '.'),
    ];
  }
  return [notice('info', `Denied: the device with the code ${grant.user_code} is not signed in.`)];
}
