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
  web: 'Web', github: 'GitHub', gitlab: 'GitLab', slack: 'Slack', jira: 'Jira',
  'jira-dc': 'Jira Data Center', linear: 'Linear',
};

const SVG = 'http://www.w3.org/2000/svg';

const JIRA_ICON = 'M15.4 7.4 8.6.6 8 0 2.9 5.1.6 7.4a.8.8 0 0 0 0 1.2L5.3 13.3 8 16l5.1-5.1 2.3-2.3a.8.8 0 0 0 0-1.2zM8 10.2 5.8 8 8 5.8 10.2 8z';

/** Each source's icon as 16×16 path data, drawn in the text's colour. */
const TRIGGER_ICONS = {
  web: 'M8 1a7 7 0 1 0 0 14A7 7 0 0 0 8 1zm4.9 6.2h-2.2a11 11 0 0 0-1-4.3 5.5 5.5 0 0 1 3.2 4.3zM8 2.6c.6.8 1.1 2.4 1.2 4.6H6.8C6.9 5 7.4 3.4 8 2.6zM6.3 2.9a11 11 0 0 0-1 4.3H3.1a5.5 5.5 0 0 1 3.2-4.3zM3.1 8.8h2.2a11 11 0 0 0 1 4.3 5.5 5.5 0 0 1-3.2-4.3zM8 13.4c-.6-.8-1.1-2.4-1.2-4.6h2.4c-.1 2.2-.6 3.8-1.2 4.6zm1.7-.3a11 11 0 0 0 1-4.3h2.2a5.5 5.5 0 0 1-3.2 4.3z',
  github: 'M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17.55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.01 8.01 0 0 0 16 8c0-4.42-3.58-8-8-8z',
  gitlab: 'M8 15 .6 9.6a.8.8 0 0 1-.3-.9L1.2 6l1.8-5.4a.3.3 0 0 1 .6 0L5.4 6h5.2l1.8-5.4a.3.3 0 0 1 .6 0L14.8 6l.9 2.7a.8.8 0 0 1-.3.9z',
  slack: 'M5.5 1a1.5 1.5 0 0 0 0 3H7V2.5A1.5 1.5 0 0 0 5.5 1zm0 4H2a1.5 1.5 0 0 0 0 3h3.5a1.5 1.5 0 0 0 0-3zM15.5 6.5a1.5 1.5 0 0 0-3 0V8H14a1.5 1.5 0 0 0 1.5-1.5zm-4 0V3a1.5 1.5 0 0 0-3 0v3.5a1.5 1.5 0 0 0 3 0zM10.5 15a1.5 1.5 0 0 0 0-3H9v1.5a1.5 1.5 0 0 0 1.5 1.5zm0-4H14a1.5 1.5 0 0 0 0-3h-3.5a1.5 1.5 0 0 0 0 3zM.5 9.5a1.5 1.5 0 0 0 3 0V8H2A1.5 1.5 0 0 0 .5 9.5zm4 0V13a1.5 1.5 0 0 0 3 0V9.5a1.5 1.5 0 0 0-3 0z',
  jira: JIRA_ICON,
  'jira-dc': JIRA_ICON,
  linear: 'M.2 9.6 6.4 15.8A8 8 0 0 1 .2 9.6zM0 7.6 8.4 16a8 8 0 0 0 1.9-.3L.3 5.7A8 8 0 0 0 0 7.6zm.9-3.2 10.7 10.7a8 8 0 0 0 1.4-1L1.9 3a8 8 0 0 0-1 1.4zM3 1.9A7.9 7.9 0 0 1 14.1 13z',
};

/** The source's icon: decoration only, its name is always written beside it. */
export function triggerIcon(trigger) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 16 16');
  svg.setAttribute('width', '14');
  svg.setAttribute('height', '14');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', TRIGGER_ICONS[trigger] || TRIGGER_ICONS.web);
  svg.append(path);
  return svg;
}

/** Where a conversation was asked, by source: the issue, thread or ticket it came from. */
const TRIGGER_PLACES = {
  github: 'the GitHub issue or pull request', gitlab: 'the GitLab issue or merge request',
  slack: 'the Slack thread', jira: 'the Jira issue', 'jira-dc': 'the Jira issue',
  linear: 'the Linear issue',
};

/** The trigger's badge (icon and name), linking back to where it was asked when there is a link. */
export function triggerBadge(trigger, url) {
  const label = PROVIDER_NAMES[trigger] || trigger;
  const badge = h('span', { class: `badge trigger trigger-${trigger}`, title: `Started from ${label}` },
    triggerIcon(trigger), label);
  const link = url && safeUrl(url);
  if (!link) return badge;
  const place = TRIGGER_PLACES[trigger] || `where it was asked (${label})`;
  return h('a', {
    class: 'trigger-link', href: link, rel: 'noopener noreferrer', target: '_blank',
    'aria-label': `Started from ${label}: open ${place}`,
  }, badge);
}

/** Said when the sandbox engine does not answer (the server's own check), else null. */
export function sandboxWarning(info) {
  const engine = info && info.sandbox_engine;
  if (!engine || engine.state !== 'down') return null;
  // A worker building the missing image: conversations wait for it, nothing is wrong.
  if (engine.reason && /sandbox image/.test(engine.reason) && /^(building|checking)/.test(engine.reason)) {
    return h('p', { id: 'sandbox-warning', class: 'notice', role: 'status' },
      `The sandbox image is being prepared; conversations start when it is ready (${engine.reason}).`);
  }
  return h('p', { id: 'sandbox-warning', class: 'notice error', role: 'alert' },
    engine.reason
      ? `The sandbox engine is not answering, so runs cannot start: ${engine.reason}`
      : 'The sandbox engine is not answering, so runs cannot start.');
}

/** A path on this site to go to after signing in, or null: never another origin. */
export function samePath(next) {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return null;
  try {
    const url = new URL(next, window.location.origin);
    return url.origin === window.location.origin ? url.pathname + url.search + url.hash : null;
  } catch {
    return null;
  }
}

export function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, status.replaceAll('_', ' '));
}

/**
 * A Copy button for `text` (`label` names what it copies, for readers of the button), with a
 * live region that says "Copied". Where the clipboard is refused, the text is copied the old
 * way, or else `target` (the element that shows the text) is selected for Ctrl+C.
 */
export function copyButton(text, label, target = null) {
  const said = h('span', { class: 'copy-status', role: 'status' });
  const button = h('button', { type: 'button', class: 'small copy', 'aria-label': `Copy ${label}` }, 'Copy');
  button.addEventListener('click', async () => {
    said.textContent = '';
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      copied = copyByCommand(text);
    }
    if (copied) {
      said.textContent = 'Copied';
      return;
    }
    if (target) {
      const range = document.createRange();
      range.selectNodeContents(target);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    said.textContent = target ? 'Selected: press Ctrl+C to copy' : 'Could not copy';
  });
  return h('span', { class: 'copy-control' }, button, said);
}

/** Copies through a selected, off-screen text box: for browsers that refuse the clipboard API. */
function copyByCommand(text) {
  const box = h('textarea', { class: 'visually-hidden', readonly: true, 'aria-hidden': 'true', tabindex: -1 });
  box.value = text;
  const focused = document.activeElement;
  document.body.append(box);
  box.select();
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  box.remove();
  if (focused instanceof HTMLElement) focused.focus();
  return copied;
}

/** The image types the agent's models take. */
const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
/** The most images one message carries (the API's limit). */
const MAX_IMAGES = 10;

/**
 * "Attach images": PNG, JPEG, GIF or WebP files read in the browser as data URLs, shown as
 * thumbnails that can be removed, sent with a message as `image_urls`.
 */
export function imagePicker(id) {
  const input = h('input', { id, type: 'file', accept: IMAGE_TYPES.join(','), multiple: true, class: 'file-input' });
  const list = h('ul', { class: 'attachments', id: `${id}-list` });
  const said = h('p', { class: 'muted attachments-note', role: 'status' });
  let images = [];
  function render() {
    list.replaceChildren(...images.map((image, at) => h('li', { class: 'attachment' },
      h('img', { src: image.url, alt: '', class: 'thumb' }),
      h('span', { class: 'name' }, image.name),
      h('button', {
        type: 'button', class: 'link', 'aria-label': `Remove ${image.name}`,
        onclick: () => { images.splice(at, 1); render(); },
      }, 'Remove'))));
  }
  input.addEventListener('change', async () => {
    said.textContent = '';
    for (const file of Array.from(input.files || [])) {
      if (!IMAGE_TYPES.includes(file.type)) {
        said.textContent = `${file.name} is not a PNG, JPEG, GIF or WebP image.`;
        continue;
      }
      if (images.length >= MAX_IMAGES) {
        said.textContent = `At most ${MAX_IMAGES} images go with one message.`;
        break;
      }
      images.push({ name: file.name, url: await dataUrl(file) });
    }
    input.value = '';
    render();
  });
  return {
    element: h('div', { class: 'image-picker' },
      h('label', { for: id }, 'Attach images'), input, list, said),
    urls: () => images.map((image) => image.url),
    clear() { images = []; render(); },
  };
}

function dataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}
