#include "server/demo_page.h"

namespace sb::server {

const std::string_view kDemoPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Switchboard</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }
#log { border: 1px solid #ccc; height: 18rem; overflow-y: auto; padding: .5rem; font-family: monospace; }
input { width: 70%; }
</style>
</head>
<body>
<h1>Switchboard</h1>
<p>A chat room over the native protocol at <code>/ws</code> (channel <code>demo</code>):
open this page in two tabs and type in one.</p>
<div id="log"></div>
<p><input id="msg" placeholder="message" autofocus> <button id="send">Send</button></p>
<p id="status">connecting…</p>
<script>
const log = document.getElementById('log');
const status = document.getElementById('status');
const line = (t) => { const d = document.createElement('div'); d.textContent = t; log.append(d); log.scrollTop = 1e9; };
const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
const ws = new WebSocket(url, ['switchboard.v1.json']);
let next = 1;
const request = (msg) => ws.send(JSON.stringify({ id: next++, ...msg }));
ws.onopen = () => {
  status.textContent = 'connected to ' + url + (ws.extensions ? ' (' + ws.extensions + ')' : '');
  request({ type: 'connect', user: 'demo-' + Math.random().toString(36).slice(2, 6) });
  request({ type: 'subscribe', channel: 'demo' });
};
ws.onmessage = (e) => {
  const m = JSON.parse(e.data);
  if (m.type === 'message') line('← ' + (typeof m.data === 'string' ? m.data : JSON.stringify(m.data)));
  else if (m.type === 'connected') line('connected as ' + m.client);
  else if (m.type === 'error') line('error ' + m.code + ': ' + m.message);
  else if (m.type === 'disconnect') line('disconnected ' + m.code + ': ' + m.reason);
};
ws.onclose = (e) => { status.textContent = 'closed: ' + e.code + ' ' + e.reason; };
const send = () => { const m = document.getElementById('msg'); if (m.value) { request({ type: 'publish', channel: 'demo', data: m.value }); m.value = ''; } };
document.getElementById('send').onclick = send;
document.getElementById('msg').onkeydown = (e) => { if (e.key === 'Enter') send(); };
</script>
</body>
</html>
)html";

}  // namespace sb::server
