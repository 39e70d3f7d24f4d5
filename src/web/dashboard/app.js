// The dashboard's entry: who is signed in, the navigation, and routing between pages
// without reloading.
import { get, post } from './api.js';
import { show, notice, samePath } from './dom.js';
import { loginPage } from './login.js';
import { conversationsPage } from './conversations.js';
import { conversationPage } from './conversation.js';
import { newPage } from './new.js';
import { deliveriesPage } from './deliveries.js';
import { settingsPage } from './settings.js';
import { integrationsPage } from './integrations.js';
import { linkPage } from './link.js';
import { devicePage } from './device.js';
import { setupPage } from './setup.js';

/** The signed-in user, or null. */
export let me = null;
/** What the current page stops when it is left (sockets, timers). */
let leave = null;

const ROUTES = [
  [/^\/(conversations)?$/, () => conversationsPage()],
  [/^\/conversations\/([A-Za-z0-9_-]+)$/, (id) => conversationPage(id)],
  [/^\/new$/, () => newPage()],
  [/^\/deliveries$/, () => deliveriesPage(), 'admin'],
  [/^\/integrations$/, () => integrationsPage(), 'admin'],
  [/^\/setup$/, () => setupPage(), 'admin'],
  [/^\/settings$/, () => settingsPage()],
  [/^\/link\/([A-Za-z0-9_-]+)$/, (token) => linkPage(token)],
  [/^\/device$/, () => devicePage()],
];

export function navigate(path) {
  if (path !== window.location.pathname + window.location.search) {
    window.history.pushState({}, '', path);
  }
  route();
}

async function route() {
  if (leave) { leave(); leave = null; }
  const path = window.location.pathname;
  if (!me) {
    me = await get('/api/user').catch(() => null);
  }
  updateNav();
  if (!me || path === '/login') {
    if (me) return navigate(samePath(new URLSearchParams(window.location.search).get('next')) || '/conversations');
    if (path !== '/login') {
      // Signing in comes back to the page that was asked for.
      const asked = window.location.pathname + window.location.search + window.location.hash;
      window.history.replaceState({}, '', `/login?next=${encodeURIComponent(asked)}`);
    }
    return loginPage();
  }
  for (const [pattern, page, access] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    if (access === 'admin' && !me.is_admin) {
      show(notice('error', 'This page is for administrators.'));
      return;
    }
    document.title = 'OpenHands';
    try {
      leave = (await page(...match.slice(1))) || null;
    } catch (error) {
      show(notice('error', error.message));
    }
    document.getElementById('main').focus({ preventScroll: true });
    return;
  }
  show(notice('error', 'There is no such page.'));
}

function updateNav() {
  const nav = document.getElementById('nav');
  nav.hidden = !me;
  document.getElementById('who').textContent = me ? me.login : '';
  for (const link of nav.querySelectorAll('[data-admin]')) link.hidden = !(me && me.is_admin);
  for (const link of nav.querySelectorAll('a')) {
    const current = window.location.pathname.startsWith(link.getAttribute('href'));
    if (current) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
}

/** After signing in: forget the old user, read the new one, go where asked (on this site only). */
export async function signedIn(next) {
  me = null;
  navigate(samePath(next) || '/conversations');
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[data-link]');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', route);
document.getElementById('sign-out').addEventListener('click', async () => {
  await post('/auth/logout').catch(() => null);
  me = null;
  navigate('/login');
});
route();
