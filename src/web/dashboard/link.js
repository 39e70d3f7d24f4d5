// A one-time link, sent privately to someone whose Slack, Jira or Linear account is not yet
// linked: it says which account it would link to the signed-in user, and links it on Link.
// Signing in first comes back here (app.js keeps the page asked for).
import { get, post } from './api.js';
import { h, show, fill, notice, when, PROVIDER_NAMES } from './dom.js';
import { me } from './app.js';

export async function linkPage(token) {
  document.title = 'Link an account · OpenHands';
  const path = `/api/links/${encodeURIComponent(token)}`;
  const body = h('div', { id: 'link' });
  show(h('section', { class: 'narrow' }, h('h1', {}, 'Link an account'), body));

  let link;
  try {
    link = await get(path);
  } catch (error) {
    fill(body, refusal(error));
    return;
  }
  const account = describe(link);
  const message = h('div', { id: 'link-message', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', id: 'link-account' }, 'Link');
  button.addEventListener('click', async () => {
    // Disabled before the request leaves: a second click (a double click) posts nothing.
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = 'Linking…';
    message.replaceChildren();
    try {
      const linked = await post(path);
      fill(body, done(account, linked));
    } catch (error) {
      if (error.status === 404 || error.status === 409 || error.status === 410) {
        // The link cannot be followed any more: there is nothing left to press.
        fill(body, refusal(error, account));
        return;
      }
      button.disabled = false;
      button.removeAttribute('aria-busy');
      button.textContent = 'Link';
      message.replaceChildren(notice('error', error.message));
    }
  });
  const expires = when(link.expires_at);
  fill(body, h('div', { class: 'card' },
    h('p', { id: 'link-question' },
      `Link the ${account} to your user `, h('strong', {}, me ? me.login : 'you'), '?'),
    h('p', { class: 'muted' },
      'Requests from this account then run as you, with your settings and your access. ',
      'Nothing is linked until you press Link.',
      expires ? ` The link works until ${expires}.` : ''),
    h('div', { class: 'controls' }, button),
    message));
}

/** "Slack account U0CAROL01 (Carol) of workspace T0001", from the link's fields. */
function describe(link) {
  const provider = PROVIDER_NAMES[link.provider] || link.provider;
  const name = link.account_name && link.account_name !== link.external_id ? ` (${link.account_name})` : '';
  const place = link.provider === 'jira' || link.provider === 'jira-dc' ? 'site' : link.provider === 'linear' ? 'organization' : 'workspace';
  return `${provider} account ${link.external_id}${name} of the ${place} ${link.workspace}`;
}

function done(account, linked) {
  const count = Array.isArray(linked.requests) ? linked.requests.length : 0;
  const runs = count === 0
    ? 'No request from it was waiting.'
    : count === 1
      ? 'The request it was refused runs now.'
      : `The ${count} requests it was refused run now.`;
  return [
    notice('info', `Linked: the ${account} is now linked to your user.`),
    h('p', { id: 'link-done' }, runs, ' ',
      h('a', { href: '/conversations', 'data-link': true }, 'See your conversations'), '.'),
  ];
}

/** Why the link cannot be followed, in words; `account` as `describe` says it, once known. */
function refusal(error, account) {
  let text;
  if (error.status === 404) {
    text = 'This link is not known: it may be cut short or mistyped. Ask the agent again where you asked it, and follow the new link it sends.';
  } else if (error.status === 409 && account) {
    text = `The ${account} is linked to another user already. Ask an administrator to unlink it if it is yours.`;
  } else if (error.status === 410 || error.status === 409) {
    // The server says what happened (used already or expired) and what to do.
    text = sentence(error.message);
  } else {
    text = `The link cannot be shown now: ${error.message}`;
  }
  return [
    h('div', { id: 'link-error' }, notice('error', text)),
    h('p', {}, h('a', { href: '/settings', 'data-link': true }, 'See the accounts linked to you'), '.'),
  ];
}

/** The server's lower-case message as a sentence. */
function sentence(text) {
  const trimmed = String(text || '').trim();
  if (!trimmed) return 'This link cannot be followed.';
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
