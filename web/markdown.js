// A small, safe Markdown subset for replies: fenced code blocks, bullet and numbered
// lists, paragraphs, inline `code`, **bold**, *emphasis* and [links](https://…).
// It builds DOM nodes and text nodes only: no string of the reply is ever parsed as
// HTML, so a reply (or a message) containing markup shows that markup as text.

const LINK = /\[([^\]\n]+)\]\(((?:https?:\/\/|mailto:)[^\s)]+)\)/;
const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*)|(\[[^\]\n]+\]\((?:https?:\/\/|mailto:)[^\s)]+\))|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  a.target = '_blank';
  a.rel = 'noopener noreferrer';
  return a;
}

function inline(text, parent) {
  let rest = text;
  while (rest) {
    const match = INLINE.exec(rest);
    if (!match) {
      parent.append(rest);
      return;
    }
    if (match.index > 0) parent.append(rest.slice(0, match.index));
    const token = match[0];
    if (match[1]) {
      const code = document.createElement('code');
      code.textContent = token.slice(1, -1);
      parent.append(code);
    } else if (match[2]) {
      const strong = document.createElement('strong');
      inline(token.slice(2, -2), strong);
      parent.append(strong);
    } else if (match[3]) {
      const em = document.createElement('em');
      inline(token.slice(1, -1), em);
      parent.append(em);
    } else if (match[4]) {
      const [, label, href] = LINK.exec(token);
      parent.append(link(href, label));
    } else {
      parent.append(link(token, token));
    }
    rest = rest.slice(match.index + token.length);
  }
}

const BULLET = /^\s*[-*+]\s+(.*)$/;
const NUMBERED = /^\s*\d+[.)]\s+(.*)$/;

// Renders `text` into `container`, replacing what it held. An unterminated code fence
// (a reply still streaming) is shown as code up to the end.
export function renderMarkdown(container, text) {
  const out = document.createDocumentFragment();
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*```/.test(line)) {
      const body = [];
      i += 1;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) body.push(lines[i++]);
      i += 1;
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      code.textContent = body.join('\n');
      pre.append(code);
      out.append(pre);
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const pattern = BULLET.test(line) ? BULLET : NUMBERED;
      const list = document.createElement(pattern === BULLET ? 'ul' : 'ol');
      while (i < lines.length && pattern.test(lines[i])) {
        const item = document.createElement('li');
        inline(pattern.exec(lines[i])[1], item);
        list.append(item);
        i += 1;
      }
      out.append(list);
    } else if (!line.trim()) {
      i += 1;
    } else {
      const para = [];
      while (
        i < lines.length && lines[i].trim() && !/^\s*```/.test(lines[i])
        && !BULLET.test(lines[i]) && !NUMBERED.test(lines[i])
      ) para.push(lines[i++]);
      const p = document.createElement('p');
      inline(para.join('\n'), p);
      out.append(p);
    }
  }
  container.replaceChildren(out);
}
