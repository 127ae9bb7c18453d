// Switchboard chat demo: rooms, history, presence with join/leave notices, a typing indicator
// and the connection's state, over the JS client (/switchboard.min.js, served by the server).
//
// Channels: a room R is `chat:R` (namespace `chat`: presence, join_leave, history; built in when
// the server configures no namespace). Typing events go to `typing.R` in the `default`
// namespace: no history and no presence, so they never push messages out of a room's history.
// Query parameters: ?transports=sse,polling sets the client's transport order.
import { Switchboard } from '/switchboard.min.js';

const FIXED_ROOMS = ['lobby', 'random', 'help'];
const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const HISTORY_LIMIT = 50;          // messages loaded when a room opens
const MAX_ITEMS = 300;             // lines kept on screen
const TYPING_EVERY_MS = 2000;      // publish "typing" at most this often while typing
const TYPING_SHOWN_MS = 4000;      // "X is typing…" disappears this long after the last event

const $ = (id) => document.getElementById(id);
const ui = {
  state: $('conn-state'), note: $('conn-note'), transport: $('transport'),
  nameForm: $('name-form'), name: $('user-name'),
  rooms: $('room-list'), joinForm: $('join-form'), roomName: $('room-name'),
  title: $('room-title'), messages: $('messages'), typing: $('typing'),
  sendForm: $('send-form'), text: $('send-text'),
  people: $('people'), peopleCount: $('people-count'),
};

const store = (() => { try { return window.localStorage; } catch { return null; } })();
const remember = (k, v) => { try { store?.setItem(k, v); } catch { /* private mode */ } };
const recall = (k) => { try { return store?.getItem(k) ?? null; } catch { return null; } };
const randomId = () => Math.random().toString(36).slice(2, 10);

const params = new URLSearchParams(location.search);
const transports = (params.get('transports') || '').split(',').map((s) => s.trim()).filter(Boolean);

let myName = (recall('sb-chat-name') || '').trim() || `guest-${randomId().slice(0, 4)}`;
let client = null;
let room = null;          // the open room (see openRoom)
let everConnected = false;
let customRooms = JSON.parse(recall('sb-chat-rooms') || '[]').filter((r) => ROOM_NAME.test(r));

// ---- connection state -------------------------------------------------------------------

const STATE_TEXT = {
  connecting: 'connecting…', connected: 'connected', reconnecting: 'reconnecting…',
  disconnected: 'disconnected',
};
function showState(state) {
  ui.state.dataset.state = state;
  ui.state.textContent = STATE_TEXT[state] ?? state;
  document.body.dataset.conn = state;
}
// note: 'recovered' (a reconnect lost nothing), 'missed' (publications were gone: reloaded).
function showNote(note) {
  ui.note.dataset.note = note;
  ui.note.textContent = note === 'recovered' ? 'recovered'
    : note === 'missed' ? 'missed messages — reloaded' : '';
}
function showTransport(name) {
  ui.transport.textContent = name ? `via ${name}` : '';
}

function startClient() {
  if (client) client.disconnect();
  const options = {
    user: myName, name: 'chat-demo',
    // A chat retries soon (at most 5 s apart) and lets a message typed offline wait 30 s.
    backoff: { minMs: 250, maxMs: 5000 }, requestTimeoutMs: 30000,
  };
  if (transports.length) options.transports = transports;
  const c = new Switchboard(location.origin, options);
  client = c;
  c.on('state', (s) => { if (client === c) showState(s === 'connecting' && everConnected ? 'reconnecting' : s); });
  c.on('connecting', (e) => { if (client === c) showTransport(e.transport); });
  c.on('connected', (e) => {
    if (client !== c) return;
    showTransport(e.transport ?? c.transportName);
    everConnected = true;
    // Join/leave events that happened while away are not replayed: ask again.
    if (room) refreshPresence(room);
  });
  c.on('disconnected', (e) => {
    if (client === c && !e.reconnect) notice(`Disconnected (${e.code}${e.reason ? `: ${e.reason}` : ''}).`, true);
  });
  c.on('error', (e) => console.warn('switchboard:', e.code, e.message));
  showState('connecting');
  c.connect().catch((e) => notice(`Could not connect: ${e.message}`, true));
  return c;
}

// ---- rooms --------------------------------------------------------------------------------

function renderRoomList() {
  const names = [...FIXED_ROOMS, ...customRooms.filter((r) => !FIXED_ROOMS.includes(r))];
  ui.rooms.replaceChildren(...names.map((name) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'link';
    b.textContent = `#${name}`;
    b.setAttribute('aria-current', room?.name === name ? 'true' : 'false');
    b.addEventListener('click', () => { location.hash = name; });
    li.append(b);
    return li;
  }));
}

function roomFromHash() {
  const h = decodeURIComponent(location.hash.slice(1));
  return ROOM_NAME.test(h) ? h : FIXED_ROOMS[0];
}

function closeRoom() {
  if (!room) return;
  room.closed = true;
  room.sub?.unsubscribe();
  room.typingSub?.unsubscribe();
  for (const t of room.typing.values()) clearTimeout(t.timer);
  room = null;
}

function openRoom(name) {
  closeRoom();
  const r = {
    name, channel: `chat:${name}`, typingChannel: `typing.${name}`,
    messages: new Map(),   // offset → {offset, user, text, at}
    notices: [],           // {key, text, bad}
    seq: 0, base: 0,       // notices sort after the offset seen when they came
    people: new Map(),     // client id → user
    typing: new Map(),     // user → {timer}
    lastTypingSent: 0, closed: false,
  };
  room = r;
  ui.title.textContent = `#${name}`;
  ui.text.placeholder = `Message #${name}`;
  document.title = `#${name} · Switchboard chat`;
  renderRoomList();
  renderMessages(true);
  renderPeople();
  renderTyping();

  r.sub = client.subscribe(r.channel, {
    onMessage: (pub) => {
      if (r.closed) return;
      addMessage(r, pub.offset, pub.data);
      const user = pub.data?.user;
      if (user && r.typing.has(user)) { clearTimeout(r.typing.get(user).timer); r.typing.delete(user); renderTyping(); }
      renderMessages();
    },
    onJoin: (ev) => { if (!r.closed) presenceChange(r, ev, true); },
    onLeave: (ev) => { if (!r.closed) presenceChange(r, ev, false); },
    onSubscribed: (info) => { if (!r.closed) r.base = Math.max(r.base, info.offset); },
    onRecovered: (info) => {
      if (r.closed) return;
      if (info.recovered) {
        showNote('recovered');
      } else {
        // Publications are gone (server restart, history passed): reload the room.
        showNote('missed');
        reloadRoom(r, 'Messages were missed while disconnected: the room was reloaded.');
      }
      refreshPresence(r);
    },
    onError: (err) => {
      if (r.closed) return;
      const hint = err.code === 'unknown_namespace'
        ? ' The server has no "chat" namespace: add [namespaces.chat] with presence, join_leave and history_size to its config.'
        : '';
      notice(`Cannot open #${name}: ${err.message || err.code}.${hint}`, true);
    },
  });
  r.typingSub = client.subscribe(r.typingChannel, {
    onMessage: (pub) => { if (!r.closed) typingEvent(r, pub.data); },
    onError: () => { /* no typing indicator on this server */ },
  });
  r.sub.ready.then((info) => {
    if (r.closed) return;
    notice(`You joined #${r.name} as ${myName}.`);
    loadHistory(r, info.epoch);
    refreshPresence(r);
  }, () => {});
}

async function loadHistory(r, epoch) {
  try {
    const h = await r.sub.history({ limit: HISTORY_LIMIT });
    if (r.closed || (epoch && h.epoch !== epoch)) return;
    for (const p of h.publications) addMessage(r, p.offset, p.data);
    r.historyLoaded = true;
    renderMessages(true);
  } catch (e) {
    if (!r.closed) notice(`History unavailable: ${e.message || e.code}`, true);
  }
}

function reloadRoom(r, why) {
  r.messages.clear();
  r.notices = [];
  r.base = r.sub.position?.offset ?? 0;
  notice(why, true, 0);
  loadHistory(r, r.sub.position?.epoch);
}

// ---- messages ------------------------------------------------------------------------------

function addMessage(r, offset, data) {
  const d = (data && typeof data === 'object') ? data : { text: String(data) };
  r.messages.set(offset, {
    offset,
    user: typeof d.user === 'string' ? d.user.slice(0, 32) : '?',
    text: typeof d.text === 'string' ? d.text : JSON.stringify(d.text ?? d),
    at: typeof d.at === 'number' ? d.at : null,
  });
  if (offset > r.base) r.base = offset;
  while (r.messages.size > MAX_ITEMS) r.messages.delete(r.messages.keys().next().value);
}

// A line between messages: after the last one seen when it came, or at `key` (0: on top).
function notice(text, bad = false, key = null) {
  if (!room) return;
  room.notices.push({ key: (key ?? room.base + 0.5) + (room.seq++) * 1e-6, text, bad });
  if (room.notices.length > MAX_ITEMS) room.notices.shift();
  renderMessages();
}

function renderMessages(forceBottom = false) {
  const box = ui.messages;
  const atBottom = forceBottom || box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  if (!room) { box.replaceChildren(); return; }
  const items = [
    ...[...room.messages.values()].map((m) => ({ key: m.offset, m })),
    ...room.notices.map((n) => ({ key: n.key, n })),
  ].sort((a, b) => a.key - b.key);
  box.replaceChildren(...items.map(({ m, n }) => {
    const li = document.createElement('li');
    if (n) {
      li.className = n.bad ? 'notice bad' : 'notice';
      li.textContent = n.text;
      return li;
    }
    li.className = m.user === myName ? 'msg mine' : 'msg';
    li.dataset.offset = String(m.offset);
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = m.user;
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.append(who, text);
    if (m.at) {
      const t = document.createElement('time');
      const when = new Date(m.at);
      t.dateTime = when.toISOString();
      t.textContent = when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      li.append(t);
    }
    return li;
  }));
  box.dataset.count = String(room.messages.size);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

async function send(text) {
  const r = room;
  if (!r || !text) return;
  r.lastTypingSent = 0;
  try {
    // The key makes a publish safe to send again after a reconnect: never doubled.
    await r.sub.publish({ user: myName, text, at: Date.now() }, { idempotencyKey: `m-${randomId()}${randomId()}` });
  } catch (e) {
    if (!r.closed) notice(`Not sent (${e.code}): "${text.slice(0, 60)}"`, true);
  }
}

// ---- presence --------------------------------------------------------------------------

function usersOf(r) {
  const counts = new Map();
  for (const user of r.people.values()) counts.set(user, (counts.get(user) ?? 0) + 1);
  return counts;
}

function presenceChange(r, ev, joined) {
  const user = ev.user || ev.client;
  const before = usersOf(r).get(user) ?? 0;
  if (joined) r.people.set(ev.client, user); else r.people.delete(ev.client);
  const after = usersOf(r).get(user) ?? 0;
  // A notice when a user arrives or goes, not for each of their tabs or reconnects.
  if (ev.client !== client?.clientId) {
    if (before === 0 && after > 0) notice(`${user} joined`);
    if (before > 0 && after === 0) notice(`${user} left`);
  }
  renderPeople();
}

async function refreshPresence(r) {
  try {
    const p = await r.sub.presence();
    if (r.closed || room !== r) return;
    r.people = new Map(p.clients.map((c) => [c.client, c.user || c.client]));
    renderPeople();
  } catch { /* presence off or offline: the next (re)connect asks again */ }
}

function renderPeople() {
  const counts = room ? usersOf(room) : new Map();
  const names = [...counts.keys()].sort((a, b) => a.localeCompare(b));
  ui.peopleCount.textContent = String(names.length);
  ui.people.replaceChildren(...names.map((user) => {
    const li = document.createElement('li');
    li.textContent = user;
    if (counts.get(user) > 1) li.append(` (${counts.get(user)} tabs)`);
    if (user === myName) {
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = ' (you)';
      li.append(you);
    }
    return li;
  }));
}

// ---- typing --------------------------------------------------------------------------------

function typingEvent(r, data) {
  const user = typeof data?.user === 'string' ? data.user.slice(0, 32) : null;
  if (!user || data.client === client?.clientId) return;
  const prev = r.typing.get(user);
  if (prev) clearTimeout(prev.timer);
  const timer = setTimeout(() => { r.typing.delete(user); renderTyping(); }, TYPING_SHOWN_MS);
  r.typing.set(user, { timer });
  renderTyping();
}

function renderTyping() {
  const users = room ? [...room.typing.keys()].sort() : [];
  ui.typing.textContent = users.length === 0 ? ''
    : users.length === 1 ? `${users[0]} is typing…`
    : users.length <= 3 ? `${users.slice(0, -1).join(', ')} and ${users.at(-1)} are typing…`
    : 'Several people are typing…';
}

function typed() {
  const r = room;
  if (!r || !ui.text.value.trim() || client?.state !== 'connected') return;
  const now = Date.now();
  if (now - r.lastTypingSent < TYPING_EVERY_MS) return;
  r.lastTypingSent = now;
  client.publish(r.typingChannel, { user: myName, client: client.clientId }).catch(() => {});
}

// ---- wiring ----------------------------------------------------------------------------------

ui.name.value = myName;
ui.nameForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.name.value.trim().slice(0, 32);
  if (!name || name === myName) return;
  myName = name;
  remember('sb-chat-name', name);
  // The user name is part of `connect`: a new connection (and session) under the new name.
  startClient();
  openRoom(roomFromHash());
});
ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.roomName.value.trim();
  if (!ROOM_NAME.test(name)) { ui.roomName.focus(); return; }
  if (!FIXED_ROOMS.includes(name) && !customRooms.includes(name)) {
    customRooms = [...customRooms, name].slice(-10);
    remember('sb-chat-rooms', JSON.stringify(customRooms));
  }
  ui.roomName.value = '';
  if (location.hash.slice(1) === name) openRoom(name); else location.hash = name;
  ui.text.focus();
});
ui.sendForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.text.value.trim();
  ui.text.value = '';
  send(text);
});
ui.text.addEventListener('input', typed);
window.addEventListener('hashchange', () => {
  const name = roomFromHash();
  if (name !== room?.name) openRoom(name);
});

remember('sb-chat-name', myName);
startClient();
openRoom(roomFromHash());
// For tests and the console: the live client and room.
Object.defineProperty(window, 'chat', { get: () => ({ client, room }) });
