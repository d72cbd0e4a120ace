/**
 * The dashboard's HTML: one page with its style and script inline (no build step, no CDN, no framework),
 * allowed by a per-response CSP nonce. The script listens to `/events` (server-sent events, see
 * `dashboard.ts`) and renders with `textContent` only, so no value from the node becomes markup. The
 * throughput chart is inline SVG.
 */

/** `Content-Security-Policy` of a page whose inline style and script carry `nonce`. */
export function pageCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

const STYLE = `
:root { color-scheme: light dark; --fg: #1d2733; --muted: #66727f; --bg: #f5f7fa; --card: #fff; --line: #dde3ea;
  --up: #2f7ed8; --down: #1aa36f; --peers: #c77c11; --bad: #c62f2f; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e9ef; --muted: #97a3af; --bg: #12171d; --card: #1b222b; --line: #2c3642; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; gap: 16px; align-items: baseline; padding: 14px 24px; border-bottom: 1px solid var(--line); background: var(--card); }
header h1 { font-size: 18px; margin: 0; }
header .state { font-weight: 600; }
header .right { margin-left: auto; color: var(--muted); }
.ok, header .ok { color: var(--down); } .bad, header .bad { color: var(--bad); } .muted { color: var(--muted); }
main { padding: 16px 24px; display: grid; gap: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card, section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 26px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 12px; }
section h2 { font-size: 13px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-top: 1px solid var(--line); vertical-align: top; }
th { border-top: 0; color: var(--muted); font-weight: 500; font-size: 12px; }
td.empty { color: var(--muted); font-style: italic; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
svg { width: 100%; height: 220px; display: block; }
svg .axis { stroke: var(--line); } svg text { fill: var(--muted); font-size: 11px; }
svg polyline { fill: none; stroke-width: 2; }
.s-down { stroke: var(--down); } .s-up { stroke: var(--up); } .s-peers { stroke: var(--peers); }
.k-down { background: var(--down); } .k-up { background: var(--up); } .k-peers { background: var(--peers); }
.legend span { margin-right: 16px; } .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
form { max-width: 360px; margin: 80px auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 20px; display: grid; gap: 10px; }
input, button { font: inherit; padding: 8px; border-radius: 6px; border: 1px solid var(--line); }
button { background: var(--up); color: #fff; border: 0; cursor: pointer; }
`;

const SCRIPT = `
'use strict';
const MAX_POINTS = 720;
const $ = (id) => document.getElementById(id);
let points = [];
let sampleMs = 5000;

function units(n, list) {
  let i = 0;
  while (n >= 1000 && i < list.length - 1) { n /= 1000; i++; }
  return (n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)) + ' ' + list[i];
}
const bytes = (n) => units(n, ['B', 'kB', 'MB', 'GB', 'TB']);
const rate = (n) => units(n, ['B/s', 'kB/s', 'MB/s', 'GB/s']);
function age(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return seconds + 's';
  if (seconds < 3600) return Math.floor(seconds / 60) + 'm' + (seconds % 60) + 's';
  if (seconds < 86400) return Math.floor(seconds / 3600) + 'h' + Math.floor((seconds % 3600) / 60) + 'm';
  return Math.floor(seconds / 86400) + 'd' + Math.floor((seconds % 86400) / 3600) + 'h';
}
const since = (iso) => age((Date.now() - Date.parse(iso)) / 1000);

function setText(id, text, cls) {
  const node = $(id);
  node.textContent = text;
  if (cls !== undefined) node.className = cls;
}

function fill(id, rows, empty, omitted) {
  const body = $(id);
  body.replaceChildren();
  const columns = body.parentElement.querySelectorAll('th').length;
  for (const cells of rows) {
    const tr = document.createElement('tr');
    for (const cell of cells) {
      const td = document.createElement('td');
      td.textContent = cell;
      tr.append(td);
    }
    body.append(tr);
  }
  if (rows.length === 0 || omitted > 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = columns;
    td.className = 'empty';
    td.textContent = rows.length === 0 ? empty : '… ' + omitted + ' more';
    tr.append(td);
    body.append(tr);
  }
}

function claimsText(b) {
  const c = b.claims;
  if (!c) return b.era === 'current' ? 'current era' : '';
  const parts = [];
  if (c.tcpPorts) parts.push('tcp ' + c.tcpPorts.join(', '));
  if (c.udpPorts) parts.push('udp ' + c.udpPorts.join(', '));
  if (c.outbound && c.outbound.allowed) parts.push('outbound ' + (c.outbound.ports.length > 0 ? c.outbound.ports.join(', ') : 'any port'));
  if (c.policyVersion) parts.push('policy ' + c.policyVersion);
  return parts.join('; ');
}

function render(s) {
  const state = s.readiness.ready ? 'ready' : 'not ready: ' + s.readiness.reasons.join(', ');
  setText('state', state, 'state ' + (s.readiness.ready ? 'ok' : 'bad'));
  setText('version', 'v' + s.version);
  setText('uptime', 'up ' + age(s.uptimeSeconds));
  setText('open-streams', String(s.streams.open));
  setText('opened', s.totals.streamsOpened + ' opened, ' + s.totals.streamsClosed + ' closed');
  setText('backend-count', String(s.backends.length + s.omitted.backends));
  const weights = s.backends.reduce((n, b) => n + b.streams, 0);
  setText('backend-streams', weights + ' streams on them');
  const local = s.routes.filter((r) => r.kind === 'local').length;
  setText('route-count', String(s.routes.length + s.omitted.routes));
  setText('route-split', local + ' local, ' + (s.routes.length - local) + ' via peers');
  setText('misses', s.totals.routeMisses + ' route misses, ' + s.totals.sniffFailures + ' sniff failures');
  if (s.certificate) {
    const days = (Date.parse(s.certificate.notAfter) - Date.now()) / 86400000;
    setText('cert-days', days < 1 ? 'expires in ' + age(days * 86400) : Math.floor(days) + ' days', days < 14 ? 'value bad' : 'value');
    setText('cert-sub', (s.certificate.temporary ? 'temporary, ' : '') + 'until ' + s.certificate.notAfter.slice(0, 16).replace('T', ' ') + ' UTC');
  } else {
    setText('cert-days', '—');
    setText('cert-sub', 'no hub certificate');
  }
  fill('backends', s.backends.map((b) => [b.id, b.hostnames.join(', '), String(b.weight), String(b.streams), since(b.connectedAt), claimsText(b)]), 'no backend attached', s.omitted.backends);
  fill('routes', s.routes.map((r) => [r.pattern, r.kind === 'local' ? 'local' : 'via peers', String(r.targets)]), 'no routes', s.omitted.routes);
  const down = (s.dialedPeers || []).filter((d) => !d.connected).map((d) => [d.url, 'outbound', '', '', 'not connected (dialling)']);
  fill('peers', s.peers.map((p) => [p.peer, p.direction, String(p.routes), String(p.tunnels), 'up ' + since(p.openedAt)]).concat(down), 'no peer links', s.omitted.peers);
  setText('peer-count', s.peers.length + s.omitted.peers + (down.length > 0 ? ' / ' + (s.peers.length + s.omitted.peers + down.length) : ''));
  fill('streams', s.streams.list.map((t) => [t.hostname, t.route, String(t.port), t.tls ? 'tls' : 'http', t.via, age(t.ageSeconds)]), 'no open streams', s.streams.open - s.streams.list.length);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawChart() {
  const chart = $('chart');
  const W = Math.max(300, Math.round(chart.clientWidth || 800)), H = 220, L = 70, B = 22, T = 10;
  chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  const perSecond = 1000 / sampleMs;
  const series = ['down', 'up', 'peers'];
  let max = 1;
  for (const p of points) for (const k of series) max = Math.max(max, p[k] * perSecond);
  const span = Math.max(sampleMs * 10, (points.length - 1) * sampleMs);
  const end = points.length > 0 ? points[points.length - 1].at : Date.now();
  const x = (at) => L + (W - L - 4) * (1 - (end - at) / span);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const nodes = [
    svg('line', { class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B }),
    svg('line', { class: 'axis', x1: L, y1: T, x2: L, y2: H - B }),
    svg('text', { x: 4, y: T + 10 }, rate(max)),
    svg('text', { x: 4, y: H - B }, '0'),
    svg('text', { x: L, y: H - 4 }, span < 120000 ? Math.round(span / 1000) + ' s ago' : Math.round(span / 60000) + ' min ago'),
    svg('text', { x: W - 28, y: H - 4 }, 'now'),
  ];
  for (const k of series) {
    const pts = points.filter((p) => end - p.at <= span).map((p) => x(p.at).toFixed(1) + ',' + y(p[k] * perSecond).toFixed(1));
    if (pts.length > 0) nodes.push(svg('polyline', { points: pts.join(' '), class: 's-' + k }));
  }
  chart.replaceChildren(...nodes);
  const lastPoint = points[points.length - 1];
  setText('rate-now', lastPoint ? '↓ ' + rate(lastPoint.down * perSecond) + '  ↑ ' + rate(lastPoint.up * perSecond) + '  peers ' + rate(lastPoint.peers * perSecond) : 'no samples yet');
}

const events = new EventSource('/events');
events.addEventListener('open', () => setText('live', '● live', 'right ok'));
events.addEventListener('error', () => {
  setText('live', events.readyState === EventSource.CLOSED ? 'disconnected: reload the page (log in again if asked)' : 'reconnecting…', 'right bad');
});
events.addEventListener('history', (e) => {
  const d = JSON.parse(e.data);
  sampleMs = d.sampleMs;
  points = d.points.slice(-MAX_POINTS);
  drawChart();
});
events.addEventListener('sample', (e) => {
  points.push(JSON.parse(e.data));
  if (points.length > MAX_POINTS) points.shift();
  drawChart();
});
events.addEventListener('status', (e) => render(JSON.parse(e.data)));
`;

function table(id: string, title: string, columns: string[]): string {
  const head = columns.map((c) => `<th>${c}</th>`).join('');
  return `<section><h2>${title}</h2><table><thead><tr>${head}</tr></thead><tbody id="${id}"></tbody></table></section>`;
}

function card(label: string, valueId: string, subId: string): string {
  return `<div class="card"><div class="label">${label}</div><div class="value" id="${valueId}">–</div><div class="sub" id="${subId}"></div></div>`;
}

/** The dashboard page. `logout`: show a log-out link (the listener has a token). */
export function renderDashboardPage(nonce: string, logout: boolean): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nexus dashboard</title><style nonce="${nonce}">${STYLE}</style></head>
<body>
<header><h1>Nexus</h1><span id="version" class="muted"></span><span id="state" class="state">connecting…</span>
<span id="uptime" class="muted"></span><span id="live" class="right">connecting…</span>${logout ? '<a href="/logout">log out</a>' : ''}</header>
<main>
<div class="cards">
${card('Open streams', 'open-streams', 'opened')}
${card('Backends', 'backend-count', 'backend-streams')}
${card('Routes', 'route-count', 'route-split')}
${card('Peers', 'peer-count', 'misses')}
${card('Hub certificate', 'cert-days', 'cert-sub')}
</div>
<section><h2>Throughput</h2>
<div class="legend"><span><i class="k-down"></i>to end users</span><span><i class="k-up"></i>from end users</span><span><i class="k-peers"></i>peer links</span><span id="rate-now" class="muted"></span></div>
<svg id="chart" viewBox="0 0 800 220" role="img" aria-label="throughput over the last minutes"></svg>
</section>
<div class="grid2">
${table('backends', 'Backends', ['ID', 'Hostnames', 'Weight', 'Streams', 'Connected', 'Claims'])}
${table('routes', 'Routes', ['Pattern', 'Via', 'Targets'])}
</div>
<div class="grid2">
${table('streams', 'Open streams', ['Hostname', 'Route', 'Port', 'Mode', 'Via', 'Age'])}
${table('peers', 'Peers', ['Peer', 'Direction', 'Routes', 'Tunnels', 'State'])}
</div>
</main>
<script nonce="${nonce}">${SCRIPT}</script>
</body></html>
`;
}

/** The login form; `message` (plain text) says why it is shown again. */
export function renderLoginPage(nonce: string, message?: string): string {
  const escaped = (message ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Nexus dashboard: log in</title><style nonce="${nonce}">${STYLE}</style></head>
<body><form method="post" action="/login">
<h1>Nexus dashboard</h1>
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
<p class="${message ? 'bad' : 'muted'}" id="message">${escaped || 'The admin listener has a token: enter it once; the browser keeps a session cookie for 12 hours.'}</p>
</form></body></html>
`;
}
