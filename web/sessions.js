// The sessions page: the user's chats, newest first; open, share or end one, or start
// a new one.
import {
  api, takeToken, acceptTokenMessages, claims, isAdmin, el, showNotice, formatTime,
  requireToken, copyable, base,
} from './common.js';

const notice = document.getElementById('notice');
const list = document.getElementById('sessions');
const empty = document.getElementById('empty');
let token = takeToken();

function chatLink(params) {
  const url = new URL('chat', base);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.pathname + url.search;
}

async function share(session, row) {
  try {
    const { share_token: shareToken } = await api(`sessions/${encodeURIComponent(session.id)}/share`, { token, method: 'POST', body: {} });
    const link = new URL(chatLink({ share_token: shareToken }), location.origin).toString();
    row.querySelector('.share-link')?.remove();
    row.append(copyable(`Read-only link to ${session.name || 'this chat'}`, link));
  } catch (error) {
    showNotice(notice, `Could not share: ${error.message}`, 'error');
  }
}

async function end(session) {
  if (!confirm(`End “${session.name || 'this chat'}”? It can still be read, but no longer continued.`)) return;
  try {
    await api(`sessions/${encodeURIComponent(session.id)}/end`, { token, method: 'POST', body: {} });
    await load();
  } catch (error) {
    showNotice(notice, `Could not end the chat: ${error.message}`, 'error');
  }
}

function row(session) {
  const title = session.name || 'Untitled chat';
  const badges = [
    session.is_active ? el('span', { class: 'badge active' }, 'active') : el('span', { class: 'badge' }, 'ended'),
    session.admin_assisted
      ? el('span', { class: 'badge admin' }, session.assisting_admin_name ? `admin: ${session.assisting_admin_name}` : 'admin assisted')
      : null,
    session.help_requested ? el('span', { class: 'badge help' }, 'help requested') : null,
  ];
  const item = el('li', { class: 'card', 'data-session': session.id });
  item.append(
    el('div', { class: 'title' },
      title,
      el('span', { class: 'meta' },
        `Last activity ${formatTime(session.last_activity)} · ${session.message_count} message${session.message_count === 1 ? '' : 's'}`),
    ),
    el('div', { class: 'actions' },
      ...badges,
      el('a', { class: 'button primary', href: chatLink(session.is_active ? { session_id: session.id } : { session_id: session.id, read: '1' }), 'aria-label': `Open ${title}` }, session.is_active ? 'Open' : 'Read'),
      el('button', { type: 'button', onclick: () => share(session, item), 'aria-label': `Share ${title}` }, 'Share'),
      session.is_active
        ? el('button', { type: 'button', class: 'danger', onclick: () => end(session), 'aria-label': `End ${title}` }, 'End')
        : null,
    ),
  );
  return item;
}

async function load() {
  try {
    const body = await api('sessions', { token });
    list.replaceChildren(...body.sessions.map(row));
    empty.hidden = body.sessions.length > 0;
    showNotice(notice, body.truncated ? `Showing your ${body.limit} most recent chats.` : '');
  } catch (error) {
    showNotice(notice, error.status === 401 ? 'Your login has expired or is not valid.' : `Could not load your chats: ${error.message}`, 'error');
  }
}

function start() {
  const who = claims(token);
  const admin = isAdmin(token);
  document.getElementById('who').replaceChildren(
    `Logged in as ${who.name || who.user_id || '?'} `,
    admin ? el('span', { class: 'badge admin' }, 'admin') : '',
  );
  document.getElementById('nav-admin').hidden = !admin;
  load();
}

document.getElementById('new-chat').addEventListener('click', () => {
  location.href = chatLink({ new: '1' });
});
document.getElementById('refresh').addEventListener('click', load);
acceptTokenMessages((fresh) => { token = fresh; start(); });
if (requireToken(token, notice)) start();
