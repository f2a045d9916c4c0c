/**
 * The /debug/ui status page: one self-contained HTML document (no external scripts, styles, fonts or images), in
 * the spirit of Istio's old ControlZ. It polls /debug/ui/state once a second and changes the log level through
 * POST /debug/loglevel.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>meshpilot status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
  .cards { display: flex; gap: 1em; flex-wrap: wrap; }
  .card { border: 1px solid #ccc; border-radius: 6px; padding: .5em 1em; min-width: 9em; }
  .card b { display: block; font-size: 1.5em; }
  table { border-collapse: collapse; }
  th, td { border-bottom: 1px solid #ddd; padding: .25em .7em; text-align: left; font-family: ui-monospace, monospace; font-size: 12px; }
  .SYNCED { color: #17752b; } .STALE { color: #a86400; } .NOT_SENT { color: #777; } .ERROR { color: #b00020; font-weight: bold; }
  .bars { display: flex; align-items: flex-end; gap: 4px; height: 120px; border-bottom: 1px solid #999; }
  .bar { width: 38px; background: #4a78c2; min-height: 1px; }
  .labels { display: flex; gap: 4px; font-size: 11px; }
  .labels span { width: 38px; text-align: center; }
  #error { color: #b00020; }
</style>
</head>
<body>
<h1>meshpilot</h1>
<div>push version <code id="push-version">–</code> · updated <span id="updated">never</span> <span id="error"></span></div>
<div class="cards">
  <div class="card">proxies<b id="proxy-count">–</b></div>
  <div class="card">pushes/s (10 s)<b id="push-rate">–</b></div>
  <div class="card">worker utilisation<b id="utilization">–</b></div>
  <div class="card">services<b id="services">–</b></div>
  <div class="card">configs (rejected)<b id="configs">–</b></div>
  <div class="card">cache hit ratio<b id="cache">–</b></div>
</div>
<h2>Connected proxies</h2>
<table id="proxies">
  <thead><tr><th>NAME</th><th>KIND</th><th>CDS</th><th>LDS</th><th>EDS</th><th>RDS</th><th>NACKS</th><th>CONNECTED</th></tr></thead>
  <tbody></tbody>
</table>
<h2>Proxy convergence time (pilot_proxy_convergence_time)</h2>
<div class="bars" id="convergence"></div>
<div class="labels" id="convergence-labels"></div>
<h2>Logging</h2>
<label>level <select id="log-level"></select></label> <span id="log-result"></span>
<script>
(function () {
  var $ = function (id) { return document.getElementById(id); };
  function cell(text, cls) { var td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; return td; }
  function render(s) {
    $('push-version').textContent = s.pushVersion || '–';
    $('updated').textContent = s.now;
    $('error').textContent = '';
    $('proxy-count').textContent = String(s.proxies.length);
    $('push-rate').textContent = s.pushesPerSecond.toFixed(1);
    $('utilization').textContent = Math.round(s.workerUtilization * 100) + ' %';
    $('services').textContent = String(s.services);
    $('configs').textContent = s.configs + ' (' + s.configRejected + ')';
    var lookups = s.cache.hits + s.cache.misses;
    $('cache').textContent = lookups ? Math.round(100 * s.cache.hits / lookups) + ' %' : '–';
    var tbody = $('proxies').tBodies[0];
    tbody.textContent = '';
    s.proxies.forEach(function (p) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-proxy', p.id);
      tr.appendChild(cell(p.id));
      tr.appendChild(cell(p.kind));
      ['CDS', 'LDS', 'EDS', 'RDS'].forEach(function (t) { var v = p.status[t]; tr.appendChild(cell(v.replace('_', ' '), v)); });
      tr.appendChild(cell(String(p.nacks)));
      tr.appendChild(cell(p.connectedAt));
      tbody.appendChild(tr);
    });
    // Cumulative buckets → per-bucket counts.
    var bars = $('convergence'), labels = $('convergence-labels');
    bars.textContent = ''; labels.textContent = '';
    var prev = 0, counts = s.convergence.map(function (b) { var c = b.count - prev; prev = b.count; return c; });
    var max = Math.max.apply(null, counts.concat([1]));
    s.convergence.forEach(function (b, i) {
      var bar = document.createElement('div');
      bar.className = 'bar';
      bar.style.height = Math.round(100 * counts[i] / max) + '%';
      bar.title = counts[i] + ' proxies ≤ ' + b.le + ' s';
      bar.setAttribute('data-count', String(counts[i]));
      bars.appendChild(bar);
      var l = document.createElement('span'); l.textContent = b.le === '+Inf' ? '>30' : '≤' + b.le; labels.appendChild(l);
    });
    var sel = $('log-level');
    if (!sel.options.length) s.logLevels.forEach(function (l) { var o = document.createElement('option'); o.value = o.textContent = l; sel.appendChild(o); });
    if (document.activeElement !== sel) sel.value = s.logLevel;
  }
  function poll() {
    fetch('/debug/ui/state').then(function (r) { return r.json(); }).then(render)
      .catch(function (e) { $('error').textContent = 'unreachable: ' + e; })
      .then(function () { setTimeout(poll, 1000); });
  }
  $('log-level').addEventListener('change', function (e) {
    fetch('/debug/loglevel?level=' + encodeURIComponent(e.target.value), { method: 'POST' })
      .then(function (r) { return r.json(); })
      .then(function (j) { $('log-result').textContent = 'now ' + j.level; });
  });
  poll();
})();
</script>
</body>
</html>
`;
