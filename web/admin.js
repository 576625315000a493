// The admin desk: metrics, every user's sessions (filters, sorting, pages), help
// requests arriving live, and takeover: a live chat with the user until the admin
// leaves and the assistant answers again. One WebSocket carries the alerts and the
// traffic of the session taken over.
import {
  api, takeToken, acceptTokenMessages, claims, isAdmin, el, showNotice, formatTime,
  socketUrl, backoff, enterSends,
} from './common.js';
import { Transcript } from './transcript.js';

const $ = (id) => document.getElementById(id);
const notice = $('notice');
const live = new Transcript($('live-log'), 'admin');
let token = takeToken();
let me = {};
let socket = null;
let attempt = 0;
let liveSession = null;
let offset = 0;
let total = 0;
let typingSent = 0;
let typingTimer = null;

const METRICS = [
  ['total_sessions', 'Sessions'],
  ['active_sessions', 'Active now'],
  ['messages', 'Messages'],
  ['total_tokens', 'Tokens'],
  ['avg_response_time', 'Avg. reply (ms)'],
  ['max_response_time', 'Max. reply (ms)'],
  ['admin_assisted_count', 'Admin assisted'],
  ['help_requests', 'Help requests'],
];

function fail(what, error) {
  const text = error.status === 403 ? 'This login is not an administrator.'
    : error.status === 401 ? 'Your login has expired or is not valid.'
      : `${what}: ${error.message}`;
  showNotice(notice, text, 'error');
}

async function loadMetrics() {
  try {
    const body = await api('admin/metrics', { token });
    $('metrics').replaceChildren(...METRICS.map(([key, name]) => el('li', { class: 'metric' },
      el('span', { class: 'value' }, Math.round(Number(body[key] || 0)).toLocaleString()),
      el('span', { class: 'name' }, name))));
  } catch (error) {
    fail('Could not load the metrics', error);
  }
}

// The form as the API's query. Times are picked in the browser's zone and sent as
// RFC 3339 UTC, which is what the API reads.
function filters() {
  const query = new URLSearchParams();
  for (const [key, value] of new FormData($('filters'))) {
    if (!value) continue;
    query.set(key, key.startsWith('start_time') ? new Date(value).toISOString() : value);
  }
  query.set('offset', String(offset));
  return query;
}

function takeoverButton(session) {
  if (!session.is_active) return null;
  if (session.admin_assisted && session.assisting_admin_name && session.assisting_admin_name !== me.name) {
    return el('span', { class: 'badge admin' }, `with ${session.assisting_admin_name}`);
  }
  const label = liveSession === session.id ? 'Open' : 'Take over';
  return el('button', {
    type: 'button', class: 'primary', onclick: () => takeOver(session.id),
    'aria-label': `${label} the session of ${session.user_id}`,
  }, label);
}

function row(session) {
  const state = [
    el('span', { class: session.is_active ? 'badge active' : 'badge' }, session.is_active ? 'active' : 'ended'),
    session.help_requested ? el('span', { class: 'badge help' }, 'help') : null,
    session.admin_assisted ? el('span', { class: 'badge admin' }, 'assisted') : null,
  ];
  return el('tr', { 'data-session': session.id },
    el('td', {}, session.user_id),
    el('td', { class: 'name' }, session.name || '—'),
    el('td', {}, formatTime(session.last_activity)),
    el('td', {}, String(session.message_count)),
    el('td', {}, String(session.total_tokens)),
    el('td', {}, ...state),
    el('td', {}, takeoverButton(session)));
}

async function loadSessions() {
  try {
    const query = filters();
    const body = await api(`admin/sessions?${query}`, { token });
    total = body.total ?? body.count;
    $('rows').replaceChildren(...body.sessions.map(row));
    if (!body.sessions.length) $('rows').append(el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No sessions match.')));
    const from = body.sessions.length ? offset + 1 : 0;
    $('page').textContent = `${from}–${offset + body.sessions.length} of ${total}`;
    $('prev').disabled = offset === 0;
    $('next').disabled = offset + body.limit >= total;
  } catch (error) {
    fail('Could not load the sessions', error);
  }
}

function pageSize() {
  return Number($('f-limit').value);
}

function alert(frame) {
  const session = frame.session_id;
  const escalated = frame.metadata?.event === 'help_escalation';
  const existing = $('alerts').querySelector(`[data-session="${CSS.escape(session)}"]`);
  existing?.remove();
  $('alerts').prepend(el('li', { class: 'notice', 'data-session': session },
    el('span', {}, frame.content || `User ${frame.user_id} requested help`),
    escalated ? el('span', { class: 'badge help' }, 'still waiting') : null,
    el('span', { class: 'who' }, formatTime(frame.timestamp)),
    el('button', { type: 'button', class: 'primary', onclick: () => takeOver(session) }, 'Take over')));
  $('alerts-section').hidden = false;
  loadSessions();
}

function dismissAlert(session) {
  $('alerts').querySelector(`[data-session="${CSS.escape(session)}"]`)?.remove();
  $('alerts-section').hidden = !$('alerts').children.length;
}

function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    showNotice(notice, 'Not connected; retrying…', 'error');
    return false;
  }
  socket.send(JSON.stringify(frame));
  return true;
}

function takeOver(session) {
  if (liveSession === session) {
    $('live').scrollIntoView();
    return;
  }
  send({ type: 'admin_join', session_id: session });
}

async function openLive(session, content) {
  liveSession = session;
  live.clear();
  $('live').hidden = false;
  $('live-title').textContent = `Live chat · session ${session.slice(0, 8)}…`;
  live.system(content);
  dismissAlert(session);
  try {
    const body = await api(`admin/sessions/${encodeURIComponent(session)}`, { token });
    if (liveSession !== session) return;
    $('live-title').textContent = `Live chat with ${body.user_id || 'user'} · ${body.name || 'untitled'}`;
    live.history(body.messages || []);
  } catch (error) {
    live.system(`Could not load the history: ${error.message}`, { error: true });
  }
  $('live-input').focus();
  loadSessions();
}

function closeLive(content) {
  live.system(content);
  liveSession = null;
  $('live-input').disabled = true;
  $('live-indicator').textContent = '';
  loadSessions();
}

function onFrame(frame) {
  const meta = frame.metadata || {};
  if (frame.type === 'notification') {
    if (meta.event === 'help_request' || meta.event === 'help_escalation') alert(frame);
    else if (frame.content) showNotice(notice, frame.content);
    return;
  }
  if (frame.type === 'error') {
    showNotice(notice, frame.error?.message || 'Something went wrong.', 'error');
    return;
  }
  if (frame.type === 'admin_join' && meta.admin_id === me.user_id) {
    $('live-input').disabled = false;
    if (frame.session_id !== liveSession) openLive(frame.session_id, frame.content);
    return;
  }
  if (!liveSession || frame.session_id !== liveSession) return;
  switch (frame.type) {
    case 'admin_leave':
      closeLive(frame.content || 'You have left the session.');
      break;
    case 'user_message':
    case 'file_upload':
    case 'voice_message':
      live.message(frame);
      if (frame.sender === 'user') $('live-indicator').textContent = '';
      break;
    case 'ai_response':
      live.reply(frame);
      break;
    case 'typing_indicator':
      if (frame.sender === 'user') {
        $('live-indicator').textContent = meta.typing === 'true' ? 'The user is typing…' : '';
      }
      break;
    case 'connection_status':
      if (meta.ended === 'true') closeLive('The session has ended.');
      break;
    default:
      break;
  }
}

function connect() {
  const ws = new WebSocket(socketUrl({ token }));
  socket = ws;
  ws.addEventListener('open', () => {
    attempt = 0;
    $('dot').className = 'status-dot online';
    // Back after a drop: the session is still ours on the server, so are its frames.
    if (liveSession) send({ type: 'admin_join', session_id: liveSession });
  });
  ws.addEventListener('message', (event) => {
    try { onFrame(JSON.parse(event.data)); } catch (error) { console.warn('chatbox: bad frame', error); }
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    $('dot').className = 'status-dot offline';
    if (event.code === 1008) {
      showNotice(notice, 'Your login has expired: reopen the page with a new link.', 'error');
      return;
    }
    setTimeout(connect, backoff(attempt++));
  });
}

function typing(on) {
  clearTimeout(typingTimer);
  if (!liveSession) return;
  if (on) {
    if (Date.now() - typingSent > 3000) {
      typingSent = Date.now();
      send({ type: 'typing_indicator', session_id: liveSession, metadata: { typing: 'true' } });
    }
    typingTimer = setTimeout(() => typing(false), 3000);
  } else if (typingSent) {
    typingSent = 0;
    send({ type: 'typing_indicator', session_id: liveSession, metadata: { typing: 'false' } });
  }
}

$('live-composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = $('live-input');
  const content = input.value.trim();
  if (!content || !liveSession) return;
  // Shown when the server echoes it back: then it is stored.
  if (send({ type: 'user_message', session_id: liveSession, sender: 'admin', content })) {
    typing(false);
    input.value = '';
  }
});
$('live-input').addEventListener('input', () => { if ($('live-input').value) typing(true); });
enterSends($('live-input'), $('live-composer'));
$('leave').addEventListener('click', () => {
  if (liveSession) send({ type: 'admin_leave', session_id: liveSession });
  else $('live').hidden = true;
});
$('refresh-metrics').addEventListener('click', loadMetrics);
$('filters').addEventListener('submit', (event) => {
  event.preventDefault();
  offset = 0;
  loadSessions();
});
$('prev').addEventListener('click', () => { offset = Math.max(0, offset - pageSize()); loadSessions(); });
$('next').addEventListener('click', () => { offset += pageSize(); loadSessions(); });

function start() {
  me = claims(token);
  $('who').textContent = `Logged in as ${me.name || me.user_id || '?'}`;
  if (!isAdmin(token)) {
    showNotice(notice, 'This login is not an administrator: the admin desk needs the admin role.', 'error');
    return;
  }
  me.name = me.name || me.user_id;
  loadMetrics();
  loadSessions();
  connect();
}

acceptTokenMessages((fresh) => {
  token = fresh;
  if (!socket) start();
});
if (token) start();
else showNotice(notice, 'You are not logged in. Open this page with ?token=<an admin token> (chatbox --dev prints one).', 'error');
