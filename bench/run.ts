/**
 * The bench runner: one scenario file (bench/scenarios/*.yaml) → a generated mesh, `meshpilot serve` in its own
 * process, `meshpilot load` in another, optionally the floor server replaying the same bytes to the same streams,
 * and a section appended to bench/RESULTS.md (command line, machine, results side by side, ratios) plus SVG plots
 * and the raw JSON reports in bench/results/.
 *
 *   node dist/bench/run.js [--scenario NAME[,NAME…]] [--scale 0.1] [--no-write]
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import type { LoadReport } from '../src/load/run-load.js';
import { CHURN_KINDS, type ChurnKind } from '../src/load/churn.js';
import { lineChart, type Series } from './plot.js';
import { f1, lat, MAIN, reach, ROOT, runHarness, stop, waitReady } from './common.js';
import { freePort } from '../test/helpers/ports.js';

const FLOOR = path.join(ROOT, 'dist/bench/floor-server.js');
const SCENARIOS = path.join(ROOT, 'bench/scenarios');
const RESULTS_DIR = path.join(ROOT, 'bench/results');
const RESULTS_MD = path.join(ROOT, 'bench/RESULTS.md');

interface Variant { name: string; serve?: string[]; env?: Record<string, string>; delta?: boolean }

interface Scenario {
  name: string;
  description: string;
  mesh: { services: number; namespaces: number; endpoints: number; sidecarIsolation: boolean; vsEvery?: number; format?: 'kube' | 'istiod' };
  proxies: number;
  streamsPerConn?: number;
  connectRate?: number;
  delta?: boolean;
  churn: string;
  duration: string;
  /** How long one change may take to reach every proxy (the harness's --event-timeout). */
  eventTimeout?: string;
  debounceAfterMs?: number;
  variants: Variant[];
  /** Record the first variant's responses and replay them from the floor server. */
  floor?: boolean;
  /** Capacity curve: run the first variant at these fractions of `proxies`. */
  capacity?: number[];
}

interface RunResult { label: string; variant: string; floor: boolean; report: LoadReport; serverCmd: string; loadCmd: string }

const { values: args } = parseArgs({
  options: {
    scenario: { type: 'string' },
    scale: { type: 'string', default: '1' },
    'no-write': { type: 'boolean', default: false },
  },
});
const scale = Number(args.scale);
if (!(scale > 0)) throw new Error('--scale must be a positive number');

function log(s: string): void { process.stderr.write(`[bench] ${s}\n`); }

/** A variant name as a file name part ("no warm-up" → "no-warm-up"). */
const slug = (name: string): string => name.replace(/[^\w.-]+/g, '-');

function scaled(s: Scenario): Scenario {
  if (scale === 1) return s;
  const services = Math.max(1, Math.round(s.mesh.services * scale));
  return {
    ...s,
    proxies: Math.max(10, Math.round(s.proxies * scale)),
    mesh: { ...s.mesh, services, namespaces: Math.min(s.mesh.namespaces, services) },
  };
}

const serveFlags = spawnSync(process.execPath, [MAIN, 'serve', '--help'], { encoding: 'utf8' }).stdout;

function genMesh(s: Scenario, dir: string): void {
  const m = s.mesh;
  const r = spawnSync(process.execPath, [MAIN, 'load', 'gen-mesh', '--out', dir, '--services', String(m.services), '--namespaces', String(m.namespaces),
    '--endpoints', String(m.endpoints), '--vs-every', String(m.vsEvery ?? 10), '--format', m.format ?? 'kube', ...(m.sidecarIsolation ? ['--sidecar-isolation'] : [])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gen-mesh failed: ${r.stderr}`);
}

function harnessArgs(s: Scenario, v: Variant | undefined, target: string, meshDir: string, pid: number, proxies: number): string[] {
  return ['--target', target, '--proxies', String(proxies), '--mesh', meshDir, '--churn', s.churn, '--duration', s.duration,
    '--streams-per-conn', String(s.streamsPerConn ?? 1), '--connect-rate', String(s.connectRate ?? 0), '--server-pid', String(pid),
    ...(s.eventTimeout ? ['--event-timeout', s.eventTimeout] : []), ...(v?.delta ?? s.delta ? ['--delta'] : [])];
}

async function runMeshpilot(s: Scenario, v: Variant, work: string, proxies: number, record?: string, pass = ''): Promise<RunResult & { meshDir: string }> {
  const tag = `${slug(v.name)}-${proxies}${pass && `-${pass}`}`;
  const meshDir = path.join(work, `mesh-${tag}`);
  genMesh(s, meshDir);
  const xdsPort = await freePort();
  const monPort = await freePort();
  const serveArgs = ['serve', '--config-dir', meshDir, '--xds-port', String(xdsPort), '--monitoring-port', String(monPort), '--log-level', 'warn',
    ...(serveFlags.includes('--secure-xds-port') ? ['--secure-xds-port', '0'] : []),
    ...(s.debounceAfterMs !== undefined ? ['--debounce-after', `${s.debounceAfterMs}ms`] : []), ...(v.serve ?? [])];
  const logFile = path.join(work, `serve-${tag}.log`);
  const server = spawn(process.execPath, [MAIN, ...serveArgs], { stdio: ['ignore', fs.openSync(logFile, 'w'), fs.openSync(logFile, 'a')], env: { ...process.env, ...(v.env ?? {}) } });
  try {
    await waitReady(`http://127.0.0.1:${monPort}/ready`, server, 120_000);
    const hargs = [...harnessArgs(s, v, `127.0.0.1:${xdsPort}`, meshDir, server.pid!, proxies), ...(record ? ['--record', record] : [])];
    log(`${s.name}/${v.name}: ${proxies} proxies against meshpilot serve ${(v.serve ?? []).join(' ')}`);
    const report = await runHarness(hargs, path.join(work, `load-${tag}.json`));
    const env = Object.entries(v.env ?? {}).map(([k, val]) => `${k}=${val} `).join('');
    return { label: v.name, variant: v.name, floor: false, report, meshDir, serverCmd: `${env}meshpilot ${serveArgs.join(' ')}`, loadCmd: `meshpilot load ${hargs.join(' ')}` };
  } finally {
    await stop(server);
  }
}

async function runFloor(s: Scenario, meshDir: string, record: string, work: string, proxies: number): Promise<RunResult> {
  const floor = spawn(process.execPath, [FLOOR, '--recording', record], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const info = await new Promise<{ port: number; controlPort: number }>((resolve, reject) => {
      let buf = '';
      floor.stdout!.on('data', (c: Buffer) => { buf += c; const nl = buf.indexOf('\n'); if (nl >= 0) resolve(JSON.parse(buf.slice(0, nl))); });
      floor.once('exit', (c) => reject(new Error(`floor server exited with ${c}`)));
    });
    const hargs = [...harnessArgs(s, undefined, `127.0.0.1:${info.port}`, meshDir, floor.pid!, proxies),
      '--floor-recording', record, '--floor-control', `http://127.0.0.1:${info.controlPort}`];
    log(`${s.name}/floor: ${proxies} proxies against the floor server (replaying the recorded bytes)`);
    const report = await runHarness(hargs, path.join(work, `load-floor-${proxies}.json`));
    return { label: 'floor', variant: 'floor', floor: true, report, serverCmd: `node dist/bench/floor-server.js --recording DIR`, loadCmd: `meshpilot load ${hargs.join(' ')}` };
  } finally {
    await stop(floor);
  }
}

/** Megabytes with two decimals below 10 MB, one above. */
const mb = (bytes: number): string => { const m = bytes / 1024 / 1024; return m < 10 ? m.toFixed(2) : f1(m); };
function table(runs: RunResult[]): string[] {
  // Service changes (full pushes) get their columns only where a run made some.
  const svc = runs.some(({ report: r }) => r.churn.byKind.service);
  const rows = [
    `| run | proxies | conns | connect storm s | EDS change p50 / p99 / max ms | reached | VS change p50 / p99 / max ms | reached | ${svc ? 'Service change p50 / p99 / max ms | reached | ' : ''}MB received (churn phase) | responses (churn phase) | server CPU s connect / churn | server RSS MB | RSS growth / proxy KiB | harness CPU s connect / churn |`,
    `|---|---|---|---|---|---|---|---|${svc ? '---|---|' : ''}---|---|---|---|---|---|`,
  ];
  for (const { label, report: r } of runs) {
    rows.push(`| ${label} | ${r.connect.ready}/${r.proxies} | ${r.connections} | ${r.connect.allReady ? '' : '> '}${(r.connect.stormMs / 1000).toFixed(2)}${r.connect.allReady ? '' : ' (timeout)'} | ${lat(r, 'endpoints')} | ${reach(r, 'endpoints')} | ${lat(r, 'vs')} | ${reach(r, 'vs')} | ${svc ? `${lat(r, 'service')} | ${reach(r, 'service')} | ` : ''}` +
      `${f1(r.traffic.bytes / 1024 / 1024)} (${mb(r.traffic.churnPhase?.bytes ?? 0)}) | ${r.traffic.responses} (${r.traffic.churnPhase?.responses ?? 0}) | ${r.server ? `${(r.server.cpuMs.connect / 1000).toFixed(2)} / ${(r.server.cpuMs.churn / 1000).toFixed(2)}` : '–'} | ` +
      `${r.server ? r.server.rssMB.afterConnect : '–'} | ${r.server ? r.server.rssPerProxyKB : '–'} | ${(r.harness.cpuMs.connect / 1000).toFixed(2)} / ${(r.harness.cpuMs.churn / 1000).toFixed(2)} |`);
  }
  return rows;
}

function ratios(mp: LoadReport, floor: LoadReport, debounceMs: number): string[] {
  const ratio = (a: number, b: number): string => (b > 0 ? `${(a / b).toFixed(2)}×` : '–');
  const p99 = (r: LoadReport, k: ChurnKind, minus: number): number => Math.max(0, (r.churn.byKind[k]?.latency.p99 ?? 0) - minus);
  const serverRss = (r: LoadReport): number => (r.server?.rssMB.afterConnect ?? 0) * 1024 / Math.max(1, r.connect.ready);
  return [
    '| meshpilot / floor | ratio |',
    '|---|---|',
    `| connect storm to all-ACKed | ${ratio(mp.connect.stormMs, floor.connect.stormMs)} |`,
    `| EDS change p99 (meshpilot minus its ${debounceMs} ms debounce) | ${ratio(p99(mp, 'endpoints', debounceMs), p99(floor, 'endpoints', 0))} |`,
    `| VS change p99 (minus debounce) | ${ratio(p99(mp, 'vs', debounceMs), p99(floor, 'vs', 0))} |`,
    ...(mp.churn.byKind.service ? [`| Service change p99 (minus debounce) | ${ratio(p99(mp, 'service', debounceMs), p99(floor, 'service', 0))} |`] : []),
    `| server CPU, connect storm | ${ratio(mp.server?.cpuMs.connect ?? 0, floor.server?.cpuMs.connect ?? 0)} |`,
    `| server CPU, churn phase | ${ratio(mp.server?.cpuMs.churn ?? 0, floor.server?.cpuMs.churn ?? 0)} |`,
    `| server RSS per connected proxy (total RSS / proxies) | ${ratio(serverRss(mp), serverRss(floor))} |`,
    `| server RSS growth per proxy (after connect − before) | ${ratio(mp.server?.rssPerProxyKB ?? 0, floor.server?.rssPerProxyKB ?? 0)} |`,
  ];
}

async function runScenario(file: string): Promise<void> {
  const s = scaled(YAML.parse(fs.readFileSync(file, 'utf8')) as Scenario);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `meshpilot-bench-${s.name}-`));
  const runs: RunResult[] = [];
  const capacity: Array<{ proxies: number; report: LoadReport }> = [];
  const load0 = os.loadavg();
  const t0 = Date.now();
  try {
    // The floor replays what meshpilot sent, recorded in a pass of its own: hashing and keeping every response
    // costs the harness CPU (~0.5 s in a 5,000-proxy isolation storm, most of a core in the no-isolation churn) on
    // the cores it shares with the server, so neither measured run records. A recorded run and a measured one send
    // the same bytes up to the churn's random addresses (same sizes) and the version strings.
    let recorded: { record: string; meshDir: string } | undefined;
    if (s.floor) {
      const record = path.join(work, 'recording');
      log(`${s.name}: recording pass (not reported), for the floor to replay`);
      recorded = { record, meshDir: (await runMeshpilot(s, s.variants[0]!, work, s.proxies, record, 'recording')).meshDir };
    }
    for (const [i, v] of s.variants.entries()) {
      runs.push(await runMeshpilot(s, v, work, s.proxies));
      if (i === 0 && recorded) runs.push(await runFloor(s, recorded.meshDir, recorded.record, work, s.proxies));
    }
    for (const frac of s.capacity ?? []) {
      const n = Math.max(10, Math.round(s.proxies * frac));
      if (n === s.proxies && runs[0]) { capacity.push({ proxies: n, report: runs[0].report }); continue; }
      capacity.push({ proxies: n, report: (await runMeshpilot(s, s.variants[0]!, work, n)).report });
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const debounce = s.debounceAfterMs ?? 100;
  const base = `${s.name}-${stamp}`;
  // --no-write leaves bench/ untouched: plots and the raw report go to a temporary directory instead.
  const outDir = args['no-write'] ? fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-bench-')) : RESULTS_DIR;
  const link = args['no-write'] ? outDir : 'results';
  fs.mkdirSync(outDir, { recursive: true });
  const plots: string[] = [];
  const cdf: Series[] = [];
  for (const r of runs) {
    for (const k of CHURN_KINDS) {
      const b = r.report.churn.byKind[k];
      if (b && b.percentiles.length > 0) cdf.push({ name: `${r.label} ${k === 'vs' ? 'VS' : k === 'service' ? 'Service' : 'EDS'}`, points: b.percentiles });
    }
  }
  if (cdf.length > 0) {
    const f = `${base}-convergence.svg`;
    fs.writeFileSync(path.join(outDir, f), lineChart({ title: `${s.name}: convergence after a change`, xLabel: 'ms from the file write to the proxy\'s ACK', yLabel: 'percentile of proxy updates', series: cdf }));
    plots.push(f);
  }
  if (capacity.length > 0) {
    const f = `${base}-capacity.svg`;
    const pts = (k: 'endpoints' | 'vs'): Array<[number, number]> => capacity.map((c) => [c.proxies, c.report.churn.byKind[k]?.latency.p99 ?? 0]);
    fs.writeFileSync(path.join(outDir, f), lineChart({ title: `${s.name}: capacity`, xLabel: 'proxies', yLabel: 'p99 convergence ms / connect storm ms', series: [
      { name: 'EDS change p99', points: pts('endpoints') }, { name: 'VS change p99', points: pts('vs') },
      { name: 'connect storm (all ACKed)', points: capacity.map((c) => [c.proxies, c.report.connect.stormMs]) },
    ] }));
    plots.push(f);
  }
  fs.writeFileSync(path.join(outDir, `${base}.json`), `${JSON.stringify({ scenario: s, scale, runs, capacity }, null, 1)}\n`);

  const m = runs[0]?.report.machine;
  const md: string[] = [
    '', `## ${s.name} — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC${scale !== 1 ? ` (scale ${scale})` : ''}`, '',
    s.description.trim(), '',
    `Command: \`node dist/bench/run.js --scenario ${s.name}${scale !== 1 ? ` --scale ${scale}` : ''}\` (${Math.round((Date.now() - t0) / 1000)} s)  `,
    `Machine: ${m?.nproc ?? os.availableParallelism()} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, Node ${process.version}; load average at start ${load0.map((x) => x.toFixed(2)).join(' ')} ` +
      '— shared with other engineers\' builds and tests while this ran: compare ratios within a run, not absolute times.  ',
    `Mesh: ${s.mesh.services} services in ${s.mesh.namespaces} namespaces, ${s.mesh.endpoints} endpoints each, ${s.mesh.sidecarIsolation ? 'Sidecar isolation' : 'no Sidecar (every proxy sees every service)'}; ` +
      `${s.proxies} proxies, ${s.streamsPerConn ?? 1} stream(s) per HTTP/2 connection, ${s.delta ? 'delta' : 'SotW'}; churn \`${s.churn}\` for ${s.duration}. ` +
      `Convergence is from the file write (floor: the push trigger) to the proxy's ACK of the first response carrying the change; meshpilot's includes the file watcher and the ${debounce} ms debounce.${s.floor ? ' The floor replays the bytes of a separate, unreported meshpilot run with --record, so neither measured harness pays for recording.' : ''}`,
    '',
    ...table(runs),
    '',
  ];
  const fl = runs.find((r) => r.floor);
  if (fl && runs[0]) md.push(...ratios(runs[0].report, fl.report, debounce), '');
  if (capacity.length > 0) {
    md.push('Capacity (first variant):', '', '| proxies | connect storm s | EDS p99 ms | VS p99 ms | server RSS MB | server CPU s (connect) |', '|---|---|---|---|---|---|');
    for (const c of capacity) md.push(`| ${c.proxies} | ${(c.report.connect.stormMs / 1000).toFixed(2)} | ${f1(c.report.churn.byKind.endpoints?.latency.p99 ?? 0)} | ${f1(c.report.churn.byKind.vs?.latency.p99 ?? 0)} | ${c.report.server?.rssMB.afterConnect ?? '–'} | ${((c.report.server?.cpuMs.connect ?? 0) / 1000).toFixed(2)} |`);
    md.push('');
  }
  for (const r of runs) md.push(`- ${r.label}: \`${r.serverCmd.replace(/\/tmp\/[^\s]+/g, 'DIR').replace(/(--(?:xds|monitoring)-port) \d+/g, '$1 PORT')}\`; \`${r.loadCmd.replace(/\/tmp\/[^\s]+/g, 'DIR').replace(/--server-pid \d+/, '--server-pid PID').replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')}\``);
  const errs = runs.flatMap((r) => r.report.errors.map((e) => `${r.label}: ${e}`));
  if (errs.length > 0) md.push('', 'Errors seen:', ...errs.slice(0, 5).map((e) => `- ${e}`));
  md.push('', ...plots.map((p) => `![${p}](${link}/${p})`), `Raw reports: [${link}/${base}.json](${link}/${base}.json)`, '');
  process.stdout.write(md.join('\n'));
  if (!args['no-write']) {
    if (!fs.existsSync(RESULTS_MD)) fs.writeFileSync(RESULTS_MD, '# Benchmark results\n\nAppended by `node dist/bench/run.js` (see bench/README.md); newest last.\n');
    fs.appendFileSync(RESULTS_MD, md.join('\n'));
  }
}

const names = args.scenario ? args.scenario.split(',') : fs.readdirSync(SCENARIOS).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5)).sort();
for (const n of names) {
  const file = /\.ya?ml$/.test(n) ? n : path.join(SCENARIOS, `${n}.yaml`);
  if (!fs.existsSync(file)) throw new Error(`no scenario ${n} (looked for ${file})`);
  await runScenario(file);
}
