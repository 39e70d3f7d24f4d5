// Small helpers to build the page without innerHTML: text is always text.

/** An element: h('a', {href: '/x', class: 'y'}, 'text', child, …). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replaces the main area's content and moves focus there for keyboard and reader users. */
export function show(...children) {
  const main = document.getElementById('main');
  fill(main, ...children);
  return main;
}

/** Replaces an element's content; absent children (null, false) are left out. */
export function fill(element, ...children) {
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** A time as the reader's locale writes it, or an empty string. */
export function when(iso) {
  if (!iso) return '';
  const date = new Date(typeof iso === 'number' ? iso : iso);
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleString();
}

/** A notice: kind is 'error' or 'info'. */
export function notice(kind, text) {
  return h('p', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Only http(s) links are ever made from data. */
export function safeUrl(url) {
  try {
    const parsed = new URL(url, window.location.origin);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:' ? parsed.href : null;
  } catch {
    return null;
  }
}

export const PROVIDER_NAMES = {
  web: 'Web', github: 'GitHub', gitlab: 'GitLab', slack: 'Slack', jira: 'Jira', linear: 'Linear',
};

/** The trigger's badge, linking back to where it was asked when there is a link. */
export function triggerBadge(trigger, url) {
  const label = PROVIDER_NAMES[trigger] || trigger;
  const badge = h('span', { class: `badge trigger-${trigger}`, title: `Started from ${label}` }, label);
  const link = url && safeUrl(url);
  return link ? h('a', { href: link, rel: 'noopener noreferrer', target: '_blank' }, badge) : badge;
}

export function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, status.replaceAll('_', ' '));
}
