// The chat page: one WebSocket to the session, replies streaming in, Stop, automatic
// reconnection that resumes a reply where it was left, help, share, model choice, files
// and voice, the administrator's presence; and a read-only view for ?share_token=.
import {
  api, takeToken, acceptTokenMessages, claims, el, socketUrl, backoff, enterSends,
  copyable, base,
} from './common.js';
import { Transcript } from './transcript.js';
import { Attachments } from './attach.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
// A shared link's reader is not the one who wrote: the user is "User" to them.
const log = new Transcript($('log'), params.get('share_token') ? 'reader' : 'user');
const input = $('input');
const composer = $('composer');

let token = takeToken();
let sessionId = params.get('session_id') || (params.get('new') ? freshId() : '');
let socket = null;
let attempt = 0;
let ended = false;
let assisted = false;
let waitingForReply = false;
let typingSent = 0;
let typingTimer = null;

// An id the server does not know: asking for it gets a fresh session (spec: a fresh id
// for an unknown one), which is how "New chat" starts one.
function freshId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const PROGRESS = 'chatbox.reply.';

// The reply streaming now, kept per session in this tab so that a reload resumes it
// from the last chunk shown (the server replays only what comes after).
function saveProgress(state) {
  if (!sessionId) return;
  if (!state || state.done) sessionStorage.removeItem(PROGRESS + sessionId);
  else sessionStorage.setItem(PROGRESS + sessionId, JSON.stringify({ message_id: state.id, seq: state.seq, text: state.text }));
}

function loadProgress() {
  try {
    return JSON.parse(sessionStorage.getItem(PROGRESS + sessionId) || 'null');
  } catch {
    return null;
  }
}

function setStatus(text, state) {
  $('status').textContent = text;
  $('dot').className = `status-dot ${state || ''}`;
}

// Who answers: an administrator (by name) while one assists, else the assistant.
function setAssisted(name) {
  assisted = Boolean(name);
  $('assist').hidden = !assisted;
  $('assist').textContent = assisted ? `${name} is answering` : '';
}

function setStreaming() {
  const streaming = waitingForReply || log.streaming() !== null;
  $('stop').hidden = !streaming;
  if (!assisted) $('indicator').textContent = streaming ? 'The assistant is writing…' : '';
}

function send(frame) {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    log.system('Not connected: the message was not sent. Reconnecting…', { error: true });
    return false;
  }
  socket.send(JSON.stringify({ session_id: sessionId || undefined, ...frame }));
  return true;
}

// The server names the session this socket is bound to. When it is not the one asked
// for, it is a fresh one (the one asked for was unknown, ended or someone else's), with
// no history; with none asked for, it may be the user's most recent chat.
function adopt(id) {
  if (!id || id === sessionId) return;
  const askedNone = !sessionId;
  sessionId = id;
  const url = new URL(location.href);
  url.searchParams.delete('new');
  url.searchParams.set('session_id', id);
  history.replaceState(null, '', url.pathname + url.search);
  params.delete('new');
  log.clear();
  if (askedNone) loadHistory();
}

// The session's history and state, when it has any: a fresh session is stored with its
// first message, and asking for the history of one that is not listed would be a 404
// (an error in the console) for nothing.
async function loadHistory() {
  const id = sessionId;
  try {
    const list = await api('sessions', { token });
    const session = list.sessions.find((s) => s.id === id);
    if (!session || id !== sessionId) return;
    // Joined before this page loaded: the admin_join frame is not replayed.
    if (session.admin_assisted && !assisted) setAssisted(session.assisting_admin_name || 'An administrator');
    $('title').textContent = session.name || 'Chat';
    document.title = `${session.name || 'Chat'} · chatbox`;
    const body = await api(`sessions/${encodeURIComponent(id)}`, { token });
    if (id !== sessionId) return;
    log.history(body.messages || []);
    saveProgress(log.streaming());
  } catch (error) {
    log.system(`Could not load the history: ${error.message}`, { error: true });
  }
  setStreaming();
}

function onStatus(frame) {
  const meta = frame.metadata || {};
  if (frame.models) {
    const select = $('model');
    select.replaceChildren(...frame.models.map((m) => el('option', { value: m.id }, m.name || m.id)));
    $('model-field').hidden = frame.models.length < 2;
  }
  if (frame.model_id) $('model').value = frame.model_id;
  if (meta.ended === 'true') {
    ended = true;
    setStatus('This chat has ended', 'offline');
    log.system('This chat has ended.');
    composer.hidden = true;
    $('log').after(el('div', { class: 'composer' },
      el('a', { class: 'button primary', href: 'chat?new=1' }, 'Start a new chat')));
    return;
  }
  if (frame.content && frame.content !== 'Connected') log.system(frame.content);
}

function onFrame(frame) {
  if (frame.session_id && frame.type !== 'notification') adopt(frame.session_id);
  switch (frame.type) {
    case 'connection_status':
      onStatus(frame);
      break;
    case 'loading':
      waitingForReply = true;
      break;
    case 'ai_response': {
      waitingForReply = false;
      const state = log.reply(frame);
      saveProgress(state);
      break;
    }
    case 'user_message':
      // Our other devices' messages, and the administrator's replies.
      log.message(frame);
      if (frame.sender === 'admin') $('indicator').textContent = '';
      break;
    case 'file_upload':
    case 'voice_message':
      log.message(frame);
      break;
    case 'admin_join':
      setAssisted(frame.metadata?.admin_name || 'An administrator');
      log.system(frame.content || 'An administrator has joined.');
      break;
    case 'admin_leave':
      setAssisted(null);
      $('indicator').textContent = '';
      log.system(frame.content || 'The administrator has left.');
      break;
    case 'typing_indicator':
      if (frame.sender === 'admin') {
        $('indicator').textContent = frame.metadata?.typing === 'true' ? 'The administrator is typing…' : '';
      }
      break;
    case 'error':
      waitingForReply = false;
      log.system(frame.error?.message || 'Something went wrong.', { error: true });
      break;
    case 'notification':
      if (frame.content) log.system(frame.content);
      break;
    default:
      break;
  }
  setStreaming();
}

function connect() {
  const resume = log.streaming();
  log.asked = resume;
  setStatus(attempt ? 'Reconnecting…' : 'Connecting…');
  const ws = new WebSocket(socketUrl({
    token,
    session_id: sessionId,
    last_seq: resume?.seq,
    message_id: resume?.message_id,
  }));
  socket = ws;
  ws.addEventListener('open', () => {
    attempt = 0;
    setStatus('Connected', 'online');
    $('send').disabled = false;
  });
  ws.addEventListener('message', (event) => {
    let frame;
    try { frame = JSON.parse(event.data); } catch { return; }
    onFrame(frame);
  });
  ws.addEventListener('close', (event) => {
    if (socket !== ws) return;
    $('send').disabled = true;
    if (ended) return;
    if (event.code === 1008) {
      setStatus('Your login has expired: reopen the page with a new link.', 'offline');
      return;
    }
    const delay = backoff(attempt++);
    setStatus(`Disconnected; reconnecting in ${Math.ceil(delay / 1000)} s…`, 'offline');
    setTimeout(connect, delay);
  });
}

function typing(on) {
  if (!assisted) return;
  clearTimeout(typingTimer);
  const now = Date.now();
  if (on) {
    // At most one "typing" every 3 s: each relayed indicator costs from the budget.
    if (now - typingSent > 3000) {
      typingSent = now;
      send({ type: 'typing_indicator', metadata: { typing: 'true' } });
    }
    typingTimer = setTimeout(() => typing(false), 3000);
  } else if (typingSent) {
    typingSent = 0;
    send({ type: 'typing_indicator', metadata: { typing: 'false' } });
  }
}

composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const content = input.value.trim();
  if (!content) return;
  if (send({ type: 'user_message', content })) {
    typing(false);
    log.message({ sender: 'user', content });
    input.value = '';
    input.dispatchEvent(new Event('input'));
  }
});
input.addEventListener('input', () => { if (input.value) typing(true); });
enterSends(input, composer);

$('stop').addEventListener('click', () => send({ type: 'stop' }));
$('help').addEventListener('click', () => send({ type: 'help_request' }));
$('model').addEventListener('change', () => send({ type: 'model_select', model_id: $('model').value }));
$('about').addEventListener('click', () => {
  const box = $('help-text');
  box.hidden = !box.hidden;
  $('about').setAttribute('aria-expanded', String(!box.hidden));
});
$('share').addEventListener('click', async () => {
  const box = $('share-box');
  box.hidden = false;
  try {
    const body = await api(`sessions/${encodeURIComponent(sessionId)}/share`, { token, method: 'POST', body: {} });
    const link = new URL(`chat?share_token=${body.share_token}`, base).toString();
    box.replaceChildren(el('p', {}, 'Anyone with this link can read this chat:'), copyable('Read-only link', link));
  } catch (error) {
    box.textContent = error.status === 404
      ? 'Send a message first: a chat is saved with its first message.'
      : `Could not share: ${error.message}`;
  }
});

const attachments = new Attachments({
  token,
  fileInput: $('file'),
  attachButton: $('attach'),
  recordButton: $('record'),
  onUploaded: (type, upload, name) => {
    const frame = { type, file_id: upload.file_id, file_url: upload.file_url, content: name };
    // A file comes back to every socket of the session once stored, this one included,
    // and is shown then; a voice message goes to the others, and this socket gets the
    // `loading` of its answer instead.
    if (send(frame) && type === 'voice_message') log.message({ ...frame, sender: 'user' });
  },
  onError: (message) => log.system(message, { error: true }),
});

// A shared link (no login), or one of the user's ended chats: history only.
async function readOnly(path, banner) {
  $('readonly').textContent = banner;
  $('readonly').hidden = false;
  composer.hidden = true;
  $('chat-top').hidden = true;
  $('nav-sessions').hidden = !token;
  try {
    const body = await api(path, { token: path.startsWith('shared/') ? undefined : token });
    $('title').textContent = body.name || 'Shared chat';
    log.history(body.messages || []);
  } catch (error) {
    log.system(error.status === 404 ? 'This shared link does not exist or was revoked.' : `Could not load: ${error.message}`, { error: true });
  }
}

function start() {
  const who = claims(token);
  $('who').textContent = `Logged in as ${who.name || who.user_id || '?'}`;
  attachments.token = token;
  if (sessionId && !params.get('new')) {
    const saved = loadProgress();
    if (saved) log.restore(saved);
    loadHistory();
  }
  setStreaming();
  connect();
}

const shareToken = params.get('share_token');
if (shareToken) {
  readOnly(`shared/${encodeURIComponent(shareToken)}`, 'You are viewing a shared conversation (read-only).');
} else if (params.get('read') && sessionId) {
  readOnly(`sessions/${encodeURIComponent(sessionId)}`, 'This chat has ended (read-only).');
} else {
  $('send').disabled = true;
  acceptTokenMessages((fresh) => {
    token = fresh;
    if (!socket) start();
  });
  if (token) start();
  else setStatus('Not logged in: open this page with ?token=<your token>.', 'offline');
}
