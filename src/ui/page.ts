// The status page: one HTML document with a little JavaScript that renders the JSON of /api/state and follows
// /api/events (server-sent events) to update live. No framework: the page is small and read-only.
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>stemcell — releases</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; } h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
  h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
  .muted { color: #777; } .live { color: #2a7; } .stale { color: #c60; }
  table { border-collapse: collapse; margin: .3rem 0 1rem; background: #fff; }
  th, td { border: 1px solid #ddd; padding: .25rem .45rem; text-align: left; vertical-align: top; }
  th { background: #f0f0f0; font-weight: 600; }
  .cell { display: inline-block; min-width: 7.5rem; margin: 1px; padding: .1rem .3rem; border-radius: 3px; font-size: 12px; }
  .pending { background: #eee; color: #666; } .announced { background: #dbeafe; } .updated { background: #d1fae5; }
  .already-current { background: #e0f2e9; } .skipped-older { background: #fef3c7; }
  .failed, .refused { background: #fecaca; font-weight: 600; } .halted { background: #fca5a5; font-weight: 600; }
  .aborted { background: #e5e7eb; text-decoration: line-through; }
  .wave-halted { color: #b91c1c; } .wave-healthy, .wave-complete { color: #15803d; } .wave-baking { color: #b45309; }
  .banner { background: #fee2e2; border: 1px solid #f87171; padding: .5rem .8rem; margin: .4rem 0; }
  code { font-size: 12px; } .counts span { padding: 0 .2rem; border-radius: 3px; } .counts { margin-bottom: .2rem; }
</style>
</head>
<body>
<h1>stemcell</h1>
<div class="muted">read-only · <span id="conn" class="stale">connecting…</span> · <span id="generated"></span></div>
<div id="pins"></div>
<h2>Releases</h2>
<table id="release-list"><thead><tr><th>release</th><th>stream</th><th>revision</th><th>sequence</th><th>rollout</th><th>regions</th><th>created</th></tr></thead><tbody></tbody></table>
<div id="releases"></div>
<h2>Adoption: who runs what</h2>
<div id="adoption-hidden" class="muted"></div>
<table id="adoption"><thead><tr><th>stream</th><th>region</th><th>account</th><th>launch templates (default version → image, release)</th><th>Auto Scaling groups (running images)</th><th>last report</th></tr></thead><tbody></tbody></table>
<script>
const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');
const ref = (r) => esc(r.imageId) + (r.revision ? ' (' + esc(r.revision) + ', seq ' + esc(r.sequence) + ')' : '');
const ALL = new URLSearchParams(location.search).get('accounts') === 'all';
const API = ALL ? '?accounts=all' : '';
// Per region of a wave: how many accounts are in each state; a large wave lists only what needs a look.
const counts = (w, g) => '<div class="counts">' + Object.entries((w.counts ?? {})[g] ?? {}).map(([k, n]) => '<span class="' + esc(k) + '" data-count="' + esc(k) + '">' + n + ' ' + esc(k) + '</span>').join(' · ') + '</div>';
const more = (w, g) => ((w.hidden ?? {})[g] ? '<div class="muted hidden-accounts">' + w.hidden[g] + ' more reported fine · <a href="?accounts=all">all accounts</a></div>' : '');
function render(state) {
  $('#adoption-hidden').innerHTML = state.adoptionHidden ? esc(state.adoptionHidden) + ' account rows on their current image (or without templates) not listed · <a href="?accounts=all">all accounts</a>' : '';
  $('#generated').textContent = 'updated ' + time(state.generatedAt);
  $('#pins').innerHTML = state.pins.map((p) => '<div class="banner">pinned: ' + esc(p.stream) + ' → ' + esc(p.revision) + '</div>').join('');
  $('#release-list tbody').innerHTML = state.releases.map((r) =>
    '<tr data-release="' + esc(r.releaseId) + '"><td><a href="#' + esc(r.releaseId) + '">' + esc(r.releaseId) + '</a></td><td>' + esc(r.stream) + '</td><td>' + esc(r.revision) +
    '</td><td>' + r.sequence + '</td><td class="rollout">' + esc(r.halted ? 'halted' : r.rollbackOf ? 'rollback to ' + r.rollbackOf : r.rollout ?? (r.completedAt ? 'complete' : 'rolling')) +
    '</td><td>' + Object.entries(r.regions).map(([k, v]) => esc(k) + ' ' + esc(v.state)).join(', ') + '</td><td>' + time(r.createdAt) + '</td></tr>').join('');
  $('#releases').innerHTML = state.releases.map((r) => {
    const regions = Object.keys(r.regions);
    const head = '<tr><th>wave</th>' + regions.map((g) => {
      const reg = r.regions[g];
      const log = reg.bootLog ? ' <a class="boot-log" href="/boot-log?release=' + encodeURIComponent(r.releaseId) + '&region=' + encodeURIComponent(g) + '">boot log</a>' : '';
      return '<th>' + esc(g) + ' <span class="muted">' + esc(reg.state) + ' ' + esc(reg.imageId ?? '') + '</span>' + log + (reg.reason ? '<br><span class="failed">' + esc(reg.reason) + '</span>' : '') + '</th>';
    }).join('') + '</tr>';
    const rows = r.waves.map((w) => '<tr data-wave="' + esc(w.name) + '" data-wave-state="' + esc(w.state) + '"><th class="wave-' + esc(w.state) + '">' + esc(w.name) + '<br><span class="muted">' + esc(w.state) + (w.state === 'baking' && w.bakeUntil ? ' until ' + time(w.bakeUntil) : '') + '</span></th>' +
      regions.map((g) => '<td>' + counts(w, g) + (w.regions[g] ?? []).map((c) => '<span class="cell ' + esc(c.state) + '" data-account="' + esc(c.accountId) + '" data-region="' + esc(g) + '" data-state="' + esc(c.state) + '" title="' + esc(c.reason ?? c.instanceRefresh ?? '') + '">' + esc(c.accountId) + ' ' + esc(c.state) + ' <span class="muted">' + time(c.at) + '</span></span>').join('') + more(w, g) + '</td>').join('') + '</tr>').join('');
    const halted = r.halted ? '<div class="banner halted-banner">halted at wave <b>' + esc(r.halted.wave) + '</b>: ' + esc(r.halted.reason) + '</div>' : '';
    return '<section class="release" id="' + esc(r.releaseId) + '" data-release="' + esc(r.releaseId) + '"><h3>' + esc(r.stream) + ' ' + esc(r.revision) + ' <span class="muted">sequence ' + r.sequence + (r.rollbackOf ? ', rollback to ' + esc(r.rollbackOf) : '') + '</span></h3>' + halted + '<table class="matrix">' + head + rows + '</table></section>';
  }).join('');
  $('#adoption tbody').innerHTML = state.adoption.map((a) => '<tr data-account="' + esc(a.accountId) + '" data-region="' + esc(a.region) + '" data-stream="' + esc(a.stream) + '"><td>' + esc(a.stream) + '</td><td>' + esc(a.region) + '</td><td>' + esc(a.accountId) + '</td><td>' +
    a.launchTemplates.map((t) => esc(t.name) + ' v' + t.defaultVersion + ' → ' + ref(t)).join('<br>') + '</td><td>' +
    a.autoScalingGroups.map((g) => esc(g.name) + ': ' + (g.images.map(ref).join(', ') || '<span class="muted">no instances</span>')).join('<br>') + '</td><td>' +
    (a.lastReport ? esc(a.lastReport.releaseId) + ' ' + esc(a.lastReport.outcome) + (a.lastReport.instanceRefresh ? ' / refresh ' + esc(a.lastReport.instanceRefresh) : '') : '') + '</td></tr>').join('');
}
async function poll() {
  try { render(await (await fetch('/api/state' + API)).json()); } catch (e) { $('#conn').textContent = 'offline'; }
  // Milliseconds from navigation to the first render (the Chromium test reads it at 10,000 accounts).
  document.body.dataset.firstRenderMs ??= String(Math.round(performance.now()));
}
function follow() {
  const source = new EventSource('/api/events' + API);
  source.onopen = () => { $('#conn').textContent = 'live'; $('#conn').className = 'live'; };
  source.onmessage = (e) => render(JSON.parse(e.data));
  source.onerror = () => { $('#conn').textContent = 'reconnecting…'; $('#conn').className = 'stale'; };
}
poll().then(follow);
</script>
</body>
</html>
`;
