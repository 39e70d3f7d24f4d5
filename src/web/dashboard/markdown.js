// Markdown to DOM nodes, safely: text only ever becomes text nodes, links only http(s).
// Covers what agents write: paragraphs, headings, lists, fenced code, inline code, bold,
// italics and links.
import { h, safeUrl } from './dom.js';

export function markdown(source) {
  const root = h('div', { class: 'markdown' });
  const lines = String(source ?? '').replaceAll('\r\n', '\n').split('\n');
  let paragraph = [];
  let list = null;
  const endParagraph = () => {
    if (paragraph.length) root.append(h('p', {}, inline(paragraph.join(' '))));
    paragraph = [];
  };
  const endList = () => { list = null; };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```(.*)$/);
    if (fence) {
      endParagraph(); endList();
      const code = [];
      for (i++; i < lines.length && !/^\s*```\s*$/.test(lines[i]); i++) code.push(lines[i]);
      root.append(h('pre', {}, h('code', {}, code.join('\n'))));
      continue;
    }
    const heading = line.match(/^(#{1,6})\s+(.*)$/);
    if (heading) {
      endParagraph(); endList();
      const level = Math.min(heading[1].length + 2, 6);
      root.append(h(`h${level}`, {}, inline(heading[2])));
      continue;
    }
    const item = line.match(/^\s*([-*+]|\d+[.)])\s+(.*)$/);
    if (item) {
      endParagraph();
      const ordered = /\d/.test(item[1]);
      if (!list || list.ordered !== ordered) {
        list = { ordered, element: h(ordered ? 'ol' : 'ul') };
        root.append(list.element);
      }
      list.element.append(h('li', {}, inline(item[2])));
      continue;
    }
    if (!line.trim()) { endParagraph(); endList(); continue; }
    endList();
    paragraph.push(line.trim());
  }
  endParagraph();
  return root;
}

const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))|(https?:\/\/[^\s<>()]+)/;

/** Inline markup of one block, as nodes. */
export function inline(text) {
  const nodes = [];
  let rest = text;
  while (rest) {
    const match = rest.match(INLINE);
    if (!match) { nodes.push(rest); break; }
    if (match.index > 0) nodes.push(rest.slice(0, match.index));
    const [token] = match;
    if (match[1]) nodes.push(h('code', {}, token.slice(1, -1)));
    else if (match[2]) nodes.push(h('strong', {}, token.slice(2, -2)));
    else if (match[3]) nodes.push(h('em', {}, token.slice(1, -1)));
    else if (match[4]) {
      const [, label, url] = token.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      const href = safeUrl(url);
      nodes.push(href ? h('a', { href, rel: 'noopener noreferrer', target: '_blank' }, label) : label);
    } else {
      const href = safeUrl(token);
      nodes.push(href ? h('a', { href, rel: 'noopener noreferrer', target: '_blank' }, token) : token);
    }
    rest = rest.slice(match.index + token.length);
  }
  return nodes;
}
