// The /admin dashboard's script: the live figures from /admin/ws (a snapshot a second, and the
// charts' last five minutes on connect), drawn with uPlot (embedded, global `uPlot`); the
// channel inspector, disconnects and the configuration through /admin/api/*. Talks to this
// server only.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const KEEP = 300; // chart points: five minutes of one a second

  // ---- formatting ----
  const int = (n) => Math.round(n).toLocaleString('en-US');
  const rate = (n) => (n >= 100 ? int(n) : (Math.round(n * 10) / 10).toLocaleString('en-US'));
  const ms = (n) => (n < 0 ? '–' : `${n < 10 ? n.toFixed(2) : n.toFixed(1)} ms`);
  const bytes = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  };
  const duration = (s) => {
    const d = Math.floor(s / 86400); const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
  };
  const set = (id, text) => { const el = $(id); if (el.textContent !== text) el.textContent = text; };
  const cell = (text) => { const td = document.createElement('td'); td.textContent = text; return td; };
  const rowOf = (...cells) => { const tr = document.createElement('tr'); tr.append(...cells); return tr; };

  // ---- charts ----
  const series = { t: [], connects: [], disconnects: [], in: [], out: [], p50: [], p95: [], p99: [] };
  let rateChart = null;
  let latencyChart = null;
  function chartWidth(el) { return Math.max(280, el.parentElement.clientWidth - 16); }
  function makeCharts() {
    if (typeof uPlot !== 'function') return;
    const common = (el, title) => ({
      width: chartWidth(el), height: 220, title, scales: { x: { time: true } },
      legend: { live: true },
    });
    const rEl = $('chart-rates');
    rateChart = new uPlot({
      ...common(rEl),
      series: [{}, { label: 'connects/s', stroke: '#1a7f37' }, { label: 'disconnects/s', stroke: '#b42318' },
        { label: 'messages in/s', stroke: '#1f5fbf' }, { label: 'messages out/s', stroke: '#9a6700' }],
    }, [series.t, series.connects, series.disconnects, series.in, series.out], rEl);
    const lEl = $('chart-latency');
    latencyChart = new uPlot({
      ...common(lEl),
      series: [{}, { label: 'p50', stroke: '#1a7f37' }, { label: 'p95', stroke: '#9a6700' },
        { label: 'p99', stroke: '#b42318' }],
    }, [series.t, series.p50, series.p95, series.p99], lEl);
    window.addEventListener('resize', () => {
      rateChart.setSize({ width: chartWidth(rEl), height: 220 });
      latencyChart.setSize({ width: chartWidth(lEl), height: 220 });
    });
  }
  function addPoint(tMs, c, d, i, o, p50, p95, p99) {
    const lat = (v) => (v < 0 ? null : v);
    series.t.push(tMs / 1000); series.connects.push(c); series.disconnects.push(d);
    series.in.push(i); series.out.push(o);
    series.p50.push(lat(p50)); series.p95.push(lat(p95)); series.p99.push(lat(p99));
    if (series.t.length > KEEP) for (const k of Object.keys(series)) series[k].shift();
  }
  function redraw() {
    rateChart?.setData([series.t, series.connects, series.disconnects, series.in, series.out]);
    latencyChart?.setData([series.t, series.p50, series.p95, series.p99]);
  }

  // ---- the snapshot ----
  let lastT = 0;
  function show(s) {
    set('conn-websocket', int(s.connections.websocket));
    set('conn-sse', int(s.connections.sse));
    set('conn-poll', int(s.connections.poll));
    set('conn-http', int(s.connections.http));
    set('clients', int(s.clients));
    set('rate-connects', rate(s.rates.connects));
    set('rate-disconnects', rate(s.rates.disconnects));
    const codes = Object.entries(s.disconnects_by_code ?? {});
    set('disconnect-codes', codes.length ? codes.map(([c, n]) => `${c}: ${int(n)}`).join(', ') : 'none');
    set('rate-in', rate(s.rates.messages_in));
    set('rate-out', rate(s.rates.messages_out));
    set('lat-p50', ms(s.latency_ms.p50));
    set('lat-p95', ms(s.latency_ms.p95));
    set('lat-p99', ms(s.latency_ms.p99));
    set('backlog', bytes(s.backlog_bytes));
    set('slow-consumers', int(s.totals.slow_consumer_disconnects));
    set('channels-count', int(s.channels.count));
    set('sessions', int(s.sessions));
    set('uptime', `up ${duration(s.uptime_s)}`);
    const e = s.engine;
    set('engine-state', `${e.name} engine ${e.available ? 'available' : 'UNAVAILABLE'}`);
    set('engine', `${e.name}: ${e.available ? 'available' : `unavailable (${e.error})`}` +
      (e.node ? `, this node ${e.node}, ${e.reconnects} reconnects` : ', one process (no cluster)'));
    $('nodes').tBodies[0].replaceChildren(...e.nodes.map((n) =>
      rowOf(cell(n.id), cell(n.name), cell(int(n.connections)), cell(`${(n.age_ms / 1000).toFixed(1)} s ago`))));
    $('loops').tBodies[0].replaceChildren(...s.loops.map((l) =>
      rowOf(cell(String(l.loop)), cell(int(l.clients)), cell(rate(l.messages_in)), cell(rate(l.messages_out)),
        cell(bytes(l.backlog_bytes)), cell(ms(l.lag_ms)))));
    $('namespaces').tBodies[0].replaceChildren(...(s.namespaces ?? []).map((n) =>
      rowOf(cell(n.name), cell(int(n.subscriptions)), cell(rate(n.publications)), cell(rate(n.deliveries)))));
    $('top-channels').tBodies[0].replaceChildren(...s.channels.top.map((c) => {
      const name = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'small'; b.textContent = c.channel;
      b.addEventListener('click', () => inspect(c.channel));
      name.append(b);
      return rowOf(name, cell(int(c.subscribers)), cell(int(c.presence)), cell(int(c.loops)), cell(int(c.history)), cell(int(c.offset)));
    }));
    $('fastest-channels').tBodies[0].replaceChildren(...(s.channels.fastest ?? []).map((c) =>
      rowOf(cell(c.channel), cell(rate(c.publications)), cell(int(c.subscribers)))));
    const totals = [];
    for (const [k, v] of Object.entries(s.totals)) {
      const dt = document.createElement('dt'); dt.textContent = k.replaceAll('_', ' ');
      const dd = document.createElement('dd'); dd.textContent = int(v);
      totals.push(dt, dd);
    }
    totals.push(Object.assign(document.createElement('dt'), { textContent: 'dashboards open' }),
      Object.assign(document.createElement('dd'), { textContent: int(s.admins) }));
    $('totals').replaceChildren(...totals);
    if (s.t > lastT) {
      lastT = s.t;
      addPoint(s.t, s.rates.connects, s.rates.disconnects, s.rates.messages_in, s.rates.messages_out,
        s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99);
      redraw();
    }
  }

  // ---- /admin/ws ----
  let retry = 500;
  function connect() {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/admin/ws`);
    const state = $('live-state');
    ws.onopen = () => { retry = 500; state.dataset.state = 'live'; state.textContent = 'live'; };
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === 'history') {
        for (const k of Object.keys(series)) series[k].length = 0;
        for (const p of m.points) addPoint(...p);
        lastT = m.points.length ? m.points[m.points.length - 1][0] : 0;
        redraw();
      } else if (m.type === 'snapshot') {
        show(m);
      }
    };
    ws.onclose = (ev) => {
      state.dataset.state = 'down';
      if (ev.code === 4401 || ev.code === 1008) {
        state.textContent = 'logged out: the session ended';
        setTimeout(() => location.assign('/admin'), 1500);
        return;
      }
      state.textContent = `disconnected (${ev.code}); retrying`;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }

  // ---- /admin/api ----
  async function call(path, body) {
    const r = await fetch(path, body === undefined ? { credentials: 'same-origin' } : {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    if (r.status === 401) { location.assign('/admin'); throw new Error('logged out'); }
    const type = r.headers.get('content-type') || '';
    const data = type.startsWith('application/json') ? await r.json() : await r.text();
    if (!r.ok) throw new Error(data.message || String(data));
    return data;
  }

  async function find(q) {
    const out = $('find-result');
    try {
      const r = await call(`/admin/api/channels?q=${encodeURIComponent(q)}`);
      out.textContent = r.total === 0 ? `No channel matches "${q}".`
        : `${r.total} channel${r.total === 1 ? '' : 's'} found${r.total > r.channels.length ? ` (the ${r.channels.length} busiest shown)` : ''}.`;
      $('channel-list').replaceChildren(...r.channels.map((c) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button'; b.textContent = c.channel;
        b.addEventListener('click', () => inspect(c.channel));
        li.append(b, ` — ${c.presence} in presence, offset ${c.offset}, ${c.history} kept`);
        return li;
      }));
      if (r.channels.length === 1) inspect(r.channels[0].channel);
    } catch (e) { out.textContent = `Search failed: ${e.message}`; }
  }

  let inspected = '';
  async function inspect(name) {
    inspected = name;
    const d = await call(`/admin/api/channel?name=${encodeURIComponent(name)}`).catch((e) => ({ error: e.message }));
    $('channel-detail').hidden = false;
    set('detail-title', name);
    if (d.error) { set('detail-position', d.error); return; }
    set('detail-position', d.epoch !== undefined ? `epoch ${d.epoch || '(none)'}, offset ${d.offset}` : '');
    const rows = (d.presence || []).map((c) => {
      const act = document.createElement('td');
      const b = document.createElement('button');
      b.type = 'button'; b.className = 'small'; b.textContent = 'Disconnect';
      b.setAttribute('aria-label', `Disconnect ${c.client}`);
      b.dataset.client = c.client;
      b.addEventListener('click', () => disconnect({ client: c.client }));
      act.append(b);
      if (c.user) {
        const u = document.createElement('button');
        u.type = 'button'; u.className = 'small'; u.textContent = 'Disconnect user';
        u.setAttribute('aria-label', `Disconnect every connection of ${c.user}`);
        u.addEventListener('click', () => disconnect({ user: c.user }));
        act.append(' ', u);
      }
      return rowOf(cell(c.client), cell(c.user || '(anonymous)'), cell(c.info || ''), act);
    });
    $('presence').tBodies[0].replaceChildren(...rows);
    set('presence-note', d.presence_error ? d.presence_error
      : `${rows.length} client${rows.length === 1 ? '' : 's'} in presence.`);
    $('history').replaceChildren(...(d.history || []).map((p) => {
      const li = document.createElement('li');
      li.value = p.offset;
      li.textContent = `${((d.now_ms - p.time_ms) / 1000).toFixed(1)} s ago  ${p.data}`;
      return li;
    }));
    set('history-note', d.history_error ? d.history_error
      : `${(d.history || []).length} most recent publication${(d.history || []).length === 1 ? '' : 's'}.`);
  }

  async function disconnect(who) {
    const out = $('action-result');
    try {
      const r = await call('/admin/api/disconnect', { ...who, reconnect: true });
      out.textContent = who.client ? `Disconnected ${who.client} (close 4003, it may reconnect).`
        : `Disconnected ${r.disconnected} connection${r.disconnected === 1 ? '' : 's'} of ${who.user} on this node.`;
      if (inspected) setTimeout(() => inspect(inspected), 1000);
    } catch (e) { out.textContent = `Disconnect failed: ${e.message}`; }
  }

  $('find-form').addEventListener('submit', (ev) => { ev.preventDefault(); find($('find-channel').value.trim()); });
  $('disconnect-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = $('disconnect-id').value.trim();
    if (v) disconnect({ [$('disconnect-kind').value]: v });
  });
  $('config-load').addEventListener('click', async () => {
    const pre = $('config');
    try { pre.textContent = await call('/admin/api/config'); } catch (e) { pre.textContent = e.message; }
    pre.hidden = false;
    $('config-load').textContent = 'Refresh';
  });

  makeCharts();
  connect();
})();
