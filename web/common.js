// What the three pages share: where the API is, the token, HTTP calls, DOM building.
// The pages are served under the path prefix (P/, P/chat, P/admin), so the directory
// of the page's own address is P/: every API path is relative to it, and the same files
// work under any CHATBOX_PATH_PREFIX and behind any proxy.

export const base = new URL('.', location.href);

const TOKEN_KEY = 'chatbox.token';

// The token, from `?token=` (then kept in sessionStorage and taken out of the address
// bar, so it is neither bookmarked nor shown over a shoulder) or from an earlier page
// of this tab.
export function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

// An embedding page may hand the token over with postMessage({type: "token", token}).
// Only our own origin and those in CORS_ALLOWED_ORIGINS are listened to; anyone else
// could otherwise log the page in as someone of their choosing.
export function acceptTokenMessages(onToken) {
  // Asked for once, when the first token message arrives: most pages never get one.
  let allowed = null;
  const origins = () => {
    allowed ??= fetch(new URL('assets/embedders.json', base))
      .then((r) => (r.ok ? r.json() : { origins: [] }))
      .then((body) => new Set(body.origins || []))
      .catch(() => new Set());
    return allowed;
  };
  window.addEventListener('message', async (event) => {
    const data = event.data;
    if (!data || data.type !== 'token' || typeof data.token !== 'string') return;
    if (event.origin !== location.origin && !(await origins()).has(event.origin)) {
      console.warn('chatbox: token message from an unlisted origin ignored:', event.origin);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, data.token);
    onToken(data.token);
  });
}

// The token's claims, for showing who is logged in. Never trusted: the server checks.
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      Array.from(atob(part), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
    );
    return JSON.parse(json);
  } catch {
    return {};
  }
}

export function isAdmin(token) {
  const roles = claims(token).roles || [];
  return roles.includes('admin') || roles.includes('chat_admin');
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One API call; the JSON answer, or an ApiError carrying the server's message.
export async function api(path, { token, method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const response = await fetch(new URL(path, base), { method, headers, body: payload });
  if (response.status === 204) return null;
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) {
    const message = (json && (json.message || json.error)) || `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return json;
}

// The chat WebSocket's address with these query parameters.
export function socketUrl(params) {
  const url = new URL('ws', base);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url.toString();
}

// Builds an element; children are nodes or strings (always text, never HTML).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'hidden') node.hidden = true;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function showNotice(container, text, kind = '') {
  container.replaceChildren(text ? el('div', { class: `notice ${kind}` }, text) : '');
}

export function formatTime(value) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// The page that says a token is needed, instead of a page of failing calls.
export function requireToken(token, container) {
  if (token) return true;
  showNotice(
    container,
    'You are not logged in. Open this page with ?token=<your token> (chatbox --dev prints such links).',
    'error',
  );
  return false;
}

// Reconnection delays: 0.5 s doubling to 15 s, with jitter so that a server restart
// is not met by every browser in the same millisecond.
export function backoff(attempt) {
  const ceiling = Math.min(15000, 500 * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// Enter sends, Shift+Enter is a new line; the form's submit does the sending.
export function enterSends(textarea, form) {
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  textarea.addEventListener('input', () => {
    textarea.style.height = 'auto';
    textarea.style.height = Math.min(textarea.scrollHeight, 160) + 'px';
  });
}

export function copyable(label, value) {
  const input = el('input', { value, readonly: true, 'aria-label': label });
  const copy = el('button', {
    type: 'button',
    onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(value);
        copy.textContent = 'Copied';
      } catch {
        copy.textContent = 'Select and copy';
      }
    },
  }, 'Copy');
  return el('div', { class: 'share-link' }, input, copy);
}
