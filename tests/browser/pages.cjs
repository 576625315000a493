// The built-in pages in headless Chromium against the real binary. Run by
// tests/web_pages.rs (`browser_scenarios`), which starts chatbox and the upstream it
// needs and passes, in the environment:
//   CHATBOX_URL      the pages' base, e.g. http://127.0.0.1:PORT/chatbox/
//   USER_TOKEN, OTHER_TOKEN, ADMIN_TOKEN   two users' and an admin's JWTs
//   SLOW_REPLY       the whole reply of the "slow" model (streamed word by word)
//   SCREENSHOTS      where to save a screenshot of each page, desktop and phone width
//   CHROMIUM         the browser (Debian's /usr/bin/chromium)
//   UPLOADS          "1" when the server has P/upload (the attach scenario runs)
// Exit status 0 when every scenario passed; each prints one line.
'use strict';

const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');

const BASE = process.env.CHATBOX_URL;
const SLOW_REPLY = process.env.SLOW_REPLY;
const SHOTS = process.env.SCREENSHOTS;
const WAIT = 15000;

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

// Chromium here has no GPU, no sandbox (containers) and no network beyond loopback.
const FLAGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
];

const problems = [];

// Every page is watched: a console error, an uncaught exception or a CSP violation
// anywhere fails the run.
async function open(browser, name, url, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) => {
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`);
    });
    // The page's sockets, so that a test can drop one as a network would.
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.__sockets.push(this);
      }
    };
  });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`${name}: console error: ${msg.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`${name}: uncaught: ${error.message}`));
  await page.goto(new URL(url, BASE).toString());
  return page;
}

async function shoot(page, name, { dark = false } = {}) {
  for (const [label, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: path.join(SHOTS, `${name}-${label}.png`), fullPage: true });
  }
  if (dark) {
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.screenshot({ path: path.join(SHOTS, `${name}-phone-dark.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: 'light' });
  }
  await page.setViewportSize(DESKTOP);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const lastAi = (page) => page.locator('#log .msg.ai .body').last();

async function waitText(locator, predicate, what) {
  const deadline = Date.now() + WAIT;
  let text = '';
  for (;;) {
    text = (await locator.count()) ? await locator.innerText() : '';
    if (predicate(text)) return text;
    if (Date.now() > deadline) throw new Error(`${what}; last seen: ${JSON.stringify(text)}`);
    await new Promise((resolve) => { setTimeout(resolve, 25); });
  }
}

async function sendMessage(page, text) {
  await page.locator('#send:not([disabled])').waitFor({ timeout: WAIT });
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

const words = (text) => text.trim().split(/\s+/).filter(Boolean).length;

const scenarios = [];
const scenario = (name, run) => scenarios.push({ name, run });
const state = {};

scenario('the token leaves the address bar and a reply streams in (echo)', async (browser) => {
  const page = await open(browser, 'chat', `chat?token=${process.env.USER_TOKEN}&new=1`);
  state.chat = page;
  await page.locator('#status', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
  check(!page.url().includes('token='), `token still in ${page.url()}`);
  await sendMessage(page, 'hello there streaming world');
  await waitText(lastAi(page), (t) => t === 'hello there streaming world', 'the echo reply did not arrive whole');
  const mine = await page.locator('#log .msg.user').count();
  check(mine === 1, `${mine} user bubbles`);
  // Shift+Enter is a new line, not a send.
  await page.fill('#input', 'line one');
  await page.press('#input', 'Shift+Enter');
  await page.keyboard.type('line two');
  check((await page.inputValue('#input')) === 'line one\nline two', 'Shift+Enter did not add a line');
  await page.press('#input', 'Enter');
  await waitText(lastAi(page), (t) => t.includes('line two'), 'the two-line message was not answered');
});

scenario('with two models the selector shows; a slow reply streams and Stop ends it', async () => {
  const page = state.chat;
  await page.locator('#model-field:not([hidden])').waitFor({ timeout: WAIT });
  await page.selectOption('#model', 'slow');
  await page.locator('#log .msg.system', { hasText: 'Model changed to slow' }).waitFor({ timeout: WAIT });
  const before = await page.locator('#log .msg.ai').count();
  await sendMessage(page, 'please answer slowly');
  await page.locator('#log .msg.ai').nth(before).waitFor({ timeout: WAIT });
  const partial = await waitText(lastAi(page), (t) => words(t) >= 2, 'no chunk arrived');
  check(words(partial) < words(SLOW_REPLY), 'the reply arrived whole, not streaming');
  await page.locator('#stop:not([hidden])').click();
  await page.locator('#log .msg.ai .tag', { hasText: 'stopped' }).waitFor({ timeout: WAIT });
  await page.locator('#stop[hidden]').waitFor({ state: 'attached', timeout: WAIT });
  const final = (await lastAi(page).innerText()).replace(/\s*stopped$/, '');
  check(SLOW_REPLY.startsWith(final.trim()), `stopped text is no prefix: ${final}`);
  check(words(final) < words(SLOW_REPLY), 'Stop did not end the reply early');
});

scenario('reloading mid-reply resumes it with nothing lost or repeated', async () => {
  const page = state.chat;
  const bubbles = (await page.locator('#log .msg.ai').count()) + 1;
  await sendMessage(page, 'and now a reload');
  await page.locator('#log .msg.ai').nth(bubbles - 1).waitFor({ timeout: WAIT });
  await waitText(lastAi(page), (t) => words(t) >= 3 && words(t) < words(SLOW_REPLY), 'no partial reply to reload on');
  await page.reload();
  await page.locator('#status', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
  const text = await waitText(lastAi(page), (t) => t.trim() === SLOW_REPLY, 'the resumed reply is not the whole reply exactly once');
  await page.locator('#stop[hidden]').waitFor({ state: 'attached', timeout: WAIT });
  check(text.trim() === SLOW_REPLY, text);
  const after = await page.locator('#log .msg.ai').count();
  check(after === bubbles, `${bubbles} reply bubbles before the reload, ${after} after`);
  await shoot(page, 'chat', { dark: true });
});

scenario('a dropped socket reconnects and resumes mid-reply with nothing lost or repeated', async () => {
  const page = state.chat;
  const bubbles = (await page.locator('#log .msg.ai').count()) + 1;
  await sendMessage(page, 'and now the network drops');
  await page.locator('#log .msg.ai').nth(bubbles - 1).waitFor({ timeout: WAIT });
  await waitText(lastAi(page), (t) => words(t) >= 3 && words(t) < words(SLOW_REPLY), 'no partial reply to drop on');
  const sockets = await page.evaluate(() => {
    window.__sockets.at(-1).close();
    return window.__sockets.length;
  });
  await page.waitForFunction((n) => window.__sockets.length > n, sockets, { timeout: WAIT });
  const text = await waitText(lastAi(page), (t) => t.trim() === SLOW_REPLY, 'the reply after the reconnect is not the whole reply exactly once');
  check(text.trim() === SLOW_REPLY, text);
  check((await page.locator('#log .msg.ai').count()) === bubbles, 'the reconnect added a reply bubble');
});

scenario('an embedding page hands the token over by postMessage; an unlisted one cannot', async (browser) => {
  const chatUrl = new URL('chat', BASE).toString();
  const context = await browser.newContext({ viewport: DESKTOP });
  // EMBEDDER (in CORS_ALLOWED_ORIGINS) and STRANGER (not) serve one page that frames
  // the address after its '#'.
  const embedder = await context.newPage();
  embedder.on('pageerror', (error) => problems.push(`embedder: uncaught: ${error.message}`));
  await embedder.goto(`${process.env.EMBEDDER}/#${chatUrl}`);
  const frame = await (await embedder.waitForSelector('#chat')).contentFrame();
  await frame.locator('#status', { hasText: 'Not logged in' }).waitFor({ timeout: WAIT });
  await embedder.evaluate((token) => {
    document.getElementById('chat').contentWindow.postMessage({ type: 'token', token }, '*');
  }, process.env.OTHER_TOKEN);
  await frame.locator('#status', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
  await frame.locator('#who', { hasText: 'Bob' }).waitFor({ timeout: WAIT });

  const stranger = await context.newPage();
  await stranger.goto(`${process.env.STRANGER}/#${chatUrl}`);
  const strange = await (await stranger.waitForSelector('#chat')).contentFrame();
  await strange.waitForLoadState();
  const [popup] = await Promise.all([
    context.waitForEvent('page'),
    stranger.evaluate((url) => { window.chat = window.open(url); }, chatUrl),
  ]);
  await popup.locator('#status', { hasText: 'Not logged in' }).waitFor({ timeout: WAIT });
  const warned = popup.waitForEvent('console', { predicate: (m) => m.text().includes('unlisted origin'), timeout: WAIT });
  await stranger.evaluate((token) => window.chat.postMessage({ type: 'token', token }, '*'), process.env.OTHER_TOKEN);
  await warned;
  check((await popup.locator('#status').innerText()).includes('Not logged in'), 'an unlisted origin logged the page in');
  check(!(await strange.url()).includes('/chatbox/'), 'an unlisted origin could frame the chat page');
  await context.close();
});

scenario('markup in a message is shown as text, never run', async (browser) => {
  const page = await open(browser, 'chat-xss', `chat?token=${process.env.USER_TOKEN}&new=1`);
  await page.locator('#status', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
  const payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> **bold** [x](javascript:alert(1))';
  await sendMessage(page, payload);
  await waitText(lastAi(page), (t) => t.includes('<img src=x'), 'the echo of the payload did not come');
  check(await page.evaluate(() => window.__xss === undefined), 'the payload ran');
  check((await page.locator('#log img, #log script').count()) === 0, 'the payload became elements');
  check((await page.locator('#log a[href^="javascript"]').count()) === 0, 'a javascript: link was made');
  check((await page.locator('#log .msg.ai strong', { hasText: 'bold' }).count()) === 1, 'Markdown bold was not rendered');
  const user = await page.locator('#log .msg.user .body').last().innerText();
  check(user === payload, `the user bubble shows ${user}`);
  await page.context().close();
});

scenario('a shared link opens the chat read-only, without a login', async (browser) => {
  const page = state.chat;
  await page.click('#share');
  const input = page.locator('#share-box input');
  await input.waitFor({ timeout: WAIT });
  const link = await input.inputValue();
  check(link.includes('share_token='), link);
  const shared = await open(browser, 'shared', link);
  await shared.locator('#log .msg.ai').first().waitFor({ timeout: WAIT });
  check(await shared.locator('#readonly').isVisible(), 'no read-only banner');
  check(!(await shared.locator('#composer').isVisible()), 'the composer is shown read-only');
  check((await shared.locator('#log .msg.ai .body', { hasText: SLOW_REPLY }).count()) === 2, 'the shared chat lacks the two whole replies');
  await shoot(shared, 'shared');
  await shared.context().close();
});

scenario('the sessions page lists the chats, ends one (then read-only) and opens another', async (browser) => {
  const page = await open(browser, 'sessions', `./?token=${process.env.USER_TOKEN}`);
  await page.locator('#sessions .card').first().waitFor({ timeout: WAIT });
  check(!page.url().includes('token='), 'token still in the address bar');
  const cards = await page.locator('#sessions .card').count();
  check(cards >= 2, `${cards} sessions listed`);
  await shoot(page, 'sessions');
  // End the newest chat (the markup one): it stays listed, ended, and opens read-only.
  page.on('dialog', (dialog) => dialog.accept());
  const newest = page.locator('#sessions .card').first();
  const id = await newest.getAttribute('data-session');
  await newest.locator('button', { hasText: 'End' }).click();
  const ended = page.locator(`#sessions .card[data-session="${id}"]`);
  await ended.locator('.badge', { hasText: 'ended' }).waitFor({ timeout: WAIT });
  await ended.locator('a.button', { hasText: 'Read' }).click();
  await page.waitForURL(/chat\?session_id=.*read=1/, { timeout: WAIT });
  await page.locator('#readonly', { hasText: 'ended' }).waitFor({ timeout: WAIT });
  await page.locator('#log .msg.user', { hasText: '<img src=x' }).waitFor({ timeout: WAIT });
  check(!(await page.locator('#composer').isVisible()), 'an ended chat can be written to');
  await page.goBack();
  await page.locator('#sessions .card a.button', { hasText: 'Open' }).first().click();
  await page.waitForURL(/chat\?session_id=[0-9a-f]+$/, { timeout: WAIT });
  await page.locator('#log .msg.ai').first().waitFor({ timeout: WAIT });
  await page.context().close();
});

scenario('help reaches the admin live; takeover, typing, reply, leave, assistant again', async (browser) => {
  const admin = await open(browser, 'admin', `admin?token=${process.env.ADMIN_TOKEN}`);
  await admin.locator('#metrics .metric').first().waitFor({ timeout: WAIT });
  await admin.locator('#dot.online').waitFor({ timeout: WAIT });
  const user = await open(browser, 'chat-bob', `chat?token=${process.env.OTHER_TOKEN}&new=1`);
  await user.locator('#status', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
  await sendMessage(user, 'I need a person');
  await waitText(lastAi(user), (t) => t === 'I need a person', 'no echo before the help request');
  await user.click('#help');
  await user.locator('#log .msg.system', { hasText: 'Help request sent' }).waitFor({ timeout: WAIT });
  const alert = admin.locator('#alerts li', { hasText: 'bob' });
  await alert.waitFor({ timeout: WAIT });
  await alert.locator('button', { hasText: 'Take over' }).click();
  await admin.locator('#live:not([hidden])').waitFor({ timeout: WAIT });
  await admin.locator('#live-log .msg.user', { hasText: 'I need a person' }).waitFor({ timeout: WAIT });
  await user.locator('#log .msg.system', { hasText: 'has joined the session' }).waitFor({ timeout: WAIT });
  await user.locator('#assist', { hasText: 'Ada is answering' }).waitFor({ timeout: WAIT });
  await admin.fill('#live-input', 'Hello, Ada here');
  await user.locator('#indicator', { hasText: 'administrator is typing' }).waitFor({ timeout: WAIT });
  await admin.press('#live-input', 'Enter');
  await user.locator('#log .msg.admin', { hasText: 'Hello, Ada here' }).waitFor({ timeout: WAIT });
  await admin.locator('#live-log .msg.admin', { hasText: 'Hello, Ada here' }).waitFor({ timeout: WAIT });
  check(!(await user.locator('#indicator', { hasText: 'typing' }).count()), 'the typing indicator stayed on');
  await sendMessage(user, 'thanks Ada');
  await admin.locator('#live-log .msg.user', { hasText: 'thanks Ada' }).waitFor({ timeout: WAIT });
  await shoot(admin, 'admin', { dark: true });
  await shoot(user, 'chat-assisted');
  await admin.click('#leave');
  await user.locator('#log .msg.system', { hasText: 'has left the session' }).waitFor({ timeout: WAIT });
  await user.locator('#assist[hidden]').waitFor({ state: 'attached', timeout: WAIT });
  await sendMessage(user, 'is the assistant back');
  await waitText(lastAi(user), (t) => t === 'is the assistant back', 'the assistant did not answer after the admin left');
  await admin.context().close();
  await user.context().close();
});

scenario('the admin table filters and pages', async (browser) => {
  const admin = await open(browser, 'admin-table', `admin?token=${process.env.ADMIN_TOKEN}`);
  await admin.locator('#rows tr[data-session]').first().waitFor({ timeout: WAIT });
  await admin.fill('#f-user', 'bob');
  await admin.click('#filters button[type=submit]');
  await admin.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#rows tr[data-session]')];
    return rows.length > 0 && rows.every((row) => row.firstChild.textContent === 'bob');
  }, null, { timeout: WAIT });
  // Sessions started from tomorrow on: none.
  const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 16);
  await admin.fill('#f-from', tomorrow);
  await admin.click('#filters button[type=submit]');
  await admin.locator('#rows td.empty').waitFor({ timeout: WAIT });
  await admin.fill('#f-from', '');
  await admin.fill('#f-user', '');
  await admin.selectOption('#f-limit', '10');
  await admin.selectOption('#f-sort', 'message_count');
  await admin.click('#filters button[type=submit]');
  await admin.locator('#page', { hasText: /^1–\d+ of \d+$/ }).waitFor({ timeout: WAIT });
  await admin.context().close();
});

if (process.env.UPLOADS === '1') {
  scenario('a file attached in the chat is uploaded and shown', async (browser) => {
    const page = await open(browser, 'chat-attach', `chat?token=${process.env.USER_TOKEN}&new=1`);
    await page.locator('#status', { hasText: 'Connected' }).waitFor({ timeout: WAIT });
    await page.setInputFiles('#file', { name: 'note.txt', mimeType: 'text/plain', buffer: Buffer.from('attached text') });
    const link = page.locator('#log .msg.user a', { hasText: 'note.txt' });
    await link.waitFor({ timeout: WAIT });
    const href = await link.getAttribute('href');
    const body = await page.evaluate(async (url) => (await fetch(url)).text(), href);
    check(body === 'attached text', `the file link serves ${JSON.stringify(body)}`);
    check((await link.count()) === 1, 'the file is shown more than once');
    // An image is shown inline, loaded from the file link (which the CSP allows).
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
    await page.setInputFiles('#file', { name: 'dot.png', mimeType: 'image/png', buffer: png });
    await page.waitForFunction(() => {
      const img = document.querySelector('#log .msg.user img');
      return img && img.complete && img.naturalWidth === 1;
    }, null, { timeout: WAIT });
    // A voice message from Chromium's fake microphone.
    await page.click('#record');
    await page.locator('#record.recording').waitFor({ timeout: WAIT });
    await page.click('#record');
    await page.locator('#log .msg.user audio').waitFor({ timeout: WAIT });
    await waitText(lastAi(page), (t) => t.length > 0, 'the voice message got no reply');
    await shoot(page, 'chat-attach');
    await page.context().close();
  });
}

(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
  });
  let failed = false;
  for (const { name, run } of scenarios) {
    try {
      await run(browser);
      console.log(`ok    ${name}`);
    } catch (error) {
      failed = true;
      console.log(`FAIL  ${name}\n      ${error.message.split('\n').join('\n      ')}`);
      break;
    }
  }
  await browser.close();
  if (problems.length) {
    failed = true;
    console.log(`FAIL  console errors or CSP violations:\n      ${problems.join('\n      ')}`);
  } else {
    console.log('ok    no console errors and no CSP violations on any page');
  }
  process.exit(failed ? 1 : 0);
})().catch((error) => {
  console.log(`FAIL  ${error.stack}`);
  process.exit(1);
});
