// A conversation on screen, for the chat page and the admin desk's live chat alike:
// messages from history and from frames, and streaming replies put together chunk by
// chunk. A reply is known by its message_id and counts the chunks it holds (`seq`), so
// a chunk it already holds (a replay after a reconnect, history that raced a frame) is
// never shown twice, and one it lacks is asked for by that count.
import { el, formatTime } from './common.js';
import { renderMarkdown } from './markdown.js';

const IMAGE = /\.(png|jpe?g|gif|webp|avif|svg)(\?|$)/i;

export class Transcript {
  // `me` is the sender whose messages are this reader's own: 'user', 'admin', or
  // 'reader' (a shared link's reader, whose messages none are).
  constructor(log, me) {
    this.log = log;
    this.me = me;
    this.names = {
      user: me === 'user' ? 'You' : 'User',
      ai: 'Assistant',
      admin: me === 'admin' ? 'You (administrator)' : 'Administrator',
      system: '',
    };
    this.replies = new Map();
    // What the current socket asked the server to resume: {message_id, seq}, or null.
    this.asked = null;
  }

  clear() {
    this.replies.clear();
    this.log.replaceChildren();
  }

  // A bubble; `at` puts it before that node (history goes above live traffic).
  bubble(sender, { before = null, error = false } = {}) {
    const body = el('div', { class: 'body' });
    const classes = ['msg', sender];
    if (sender === this.me) classes.push('mine');
    if (error) classes.push('error');
    const node = el('div', { class: classes.join(' '), 'data-sender': sender },
      this.names[sender] ? el('span', { class: 'from' }, this.names[sender]) : null,
      body);
    this.log.insertBefore(node, before);
    return { node, body };
  }

  // A message from the history API or a frame. Replies are Markdown, the rest plain text.
  message(msg, { before = null } = {}) {
    const sender = msg.sender || 'user';
    const { node, body } = this.bubble(sender, { before });
    if (msg.file_url) {
      this.attachment(body, msg);
    } else if (sender === 'ai' || sender === 'admin') {
      renderMarkdown(body, msg.content || '');
    } else {
      body.append(el('p', {}, msg.content || ''));
    }
    const meta = msg.metadata || {};
    if (meta.stopped === 'true') body.append(el('span', { class: 'tag' }, 'stopped'));
    if (msg.timestamp) node.title = formatTime(msg.timestamp);
    this.scroll();
    return node;
  }

  attachment(body, msg) {
    const voice = msg.type === 'voice_message' || msg.kind === 'voice'
      || /^audio\//.test(msg.content_type || '');
    const image = !voice && (/^image\//.test(msg.content_type || '') || IMAGE.test(msg.content || '') || IMAGE.test(msg.file_url));
    const url = new URL(msg.file_url, location.href).toString();
    if (voice) {
      body.append(el('audio', { controls: true, src: url, preload: 'none', 'aria-label': 'Voice message' }));
    } else if (image) {
      body.append(el('img', { src: url, alt: msg.content || 'Attached image', loading: 'lazy' }));
    }
    body.append(el('a', { href: url, target: '_blank', rel: 'noopener noreferrer' },
      voice ? 'Voice message' : (msg.content || 'Attached file')));
  }

  system(text, { error = false } = {}) {
    const { body } = this.bubble('system', { error });
    body.append(text);
    this.scroll();
  }

  // Loads a history page above whatever live traffic arrived first; a reply already
  // on screen (streaming or replayed) is completed from it instead of added again.
  history(messages) {
    const first = this.log.firstChild;
    for (const msg of messages) {
      const reply = msg.id && this.replies.get(msg.id);
      if (reply) {
        if (!reply.done && (msg.content || '').length >= reply.text.length) {
          reply.text = msg.content || '';
          reply.done = true;
          renderMarkdown(reply.body, reply.text);
        }
        continue;
      }
      const node = this.message(msg, { before: first });
      if (msg.id) this.replies.set(msg.id, { seq: Infinity, text: msg.content, done: true, node });
    }
    this.scroll();
  }

  // Picks up a reply that was streaming when the page was left (its text and seq).
  restore(saved) {
    const { node, body } = this.bubble('ai');
    const reply = { seq: saved.seq, text: saved.text, done: false, node, body };
    renderMarkdown(body, reply.text);
    this.replies.set(saved.message_id, reply);
  }

  // The reply still streaming, if any: where a reconnect asks the server to resume.
  streaming() {
    for (const [id, reply] of this.replies) {
      if (!reply.done) return { message_id: id, seq: reply.seq, text: reply.text };
    }
    return null;
  }

  // An ai_response frame. Returns the reply's state after it.
  reply(frame) {
    const meta = frame.metadata || {};
    const id = meta.message_id;
    if (meta.streaming !== 'true' || !id) {
      this.message({ ...frame, sender: 'ai' });
      return { done: true };
    }
    let reply = this.replies.get(id);
    if (!reply) {
      const { node, body } = this.bubble('ai');
      reply = { seq: 0, text: '', done: false, node, body };
      this.replies.set(id, reply);
    }
    if (meta.replay === 'true' && !(this.asked && this.asked.message_id === id && this.asked.seq === reply.seq)) {
      // A replay holds the reply from where this socket asked (`last_seq`) or, when it
      // asked for nothing of this reply, from the start: then it replaces, never adds.
      reply.text = '';
      reply.seq = 0;
    }
    const seq = Number(meta.seq || 0);
    if (frame.content && seq > reply.seq) {
      reply.text += frame.content;
      renderMarkdown(reply.body, reply.text);
    }
    reply.seq = Math.max(reply.seq, seq);
    if (meta.done === 'true' && !reply.done) {
      reply.done = true;
      if (meta.stopped === 'true') reply.body.append(el('span', { class: 'tag' }, 'stopped'));
      if (meta.error === 'true') reply.body.append(el('span', { class: 'tag' }, 'the assistant failed mid-reply'));
    }
    this.scroll();
    return { id, seq: reply.seq, text: reply.text, done: reply.done };
  }

  // Follows the bottom only when the reader is already there, so scrolling back to
  // read is not undone by every chunk.
  scroll() {
    const log = this.log;
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
    if (nearBottom || !this.started) log.scrollTop = log.scrollHeight;
    this.started = true;
  }
}
