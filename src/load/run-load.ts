/**
 * `meshpilot load`: N simulated proxies against any xDS server, churn, and the measurements — connect storm to
 * all-ACKed, per-proxy convergence from a change to the ACK of the first response carrying it, bytes and pushes,
 * the harness's own CPU, the server's CPU and RSS.
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { envoyRoot } from '../proto/envoy-protos.js';
import { DeriveMemo, SimProxy, type ProxyObserver, type XdsMode } from './sim-proxy.js';
import { Http2Pool } from './http2-pool.js';
import { makeIdentity, type IdentityOptions } from './node-identity.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { CHURN_KINDS, KubeChurnApplier, MeshChurner, type ChurnChange, type ChurnKind, type ChurnRate } from './churn.js';
import { readManifest, type MeshManifest } from './mesh-gen.js';
import { cpuPercent, sampleProcess, sampleSelf, type ProcSample } from './proc-stats.js';
import { Recorder, loadRecording } from './recorder.js';

export interface LoadOptions {
  target: string;
  proxies: number;
  mode: XdsMode;
  proxyless: boolean;
  meshDir?: string;
  namespaces?: string[];
  churn?: ChurnRate[];
  /** Churn through this kubeconfig's API server (server-side apply) instead of rewriting the mesh's files. */
  churnKubeconfig?: string;
  /** Length of the churn phase. */
  durationMs: number;
  streamsPerConn: number;
  /** New streams per second; 0 = as fast as possible. */
  connectRate: number;
  /** New HTTP/2 connections whose TCP/HTTP2 handshake may be in flight at once. */
  maxPendingConnects: number;
  connectTimeoutMs: number;
  /** How long a change may take to reach every proxy it should reach. */
  eventTimeoutMs: number;
  serverPid?: number;
  /** Record responses here for the floor server. */
  record?: string;
  /** Floor mode: replay the churn of this recording by asking the floor server at `floorControl` to push. */
  floorRecording?: string;
  floorControl?: string;
  istioVersion: string;
  clusterId: string;
  interceptionMode: string;
  progress: boolean;
  log?: (line: string) => void;
}

export function defaultLoadOptions(): Omit<LoadOptions, 'target' | 'proxies'> {
  return {
    mode: 'sotw', proxyless: false, durationMs: 10_000, streamsPerConn: 1, connectRate: 0, maxPendingConnects: 128, connectTimeoutMs: 120_000,
    eventTimeoutMs: 15_000, istioVersion: '1.29.0', clusterId: 'Kubernetes', interceptionMode: 'REDIRECT', progress: true,
  };
}

export interface EventResult {
  seq: number; kind: ChurnKind; service: string; namespace: string; marker: string;
  expected: number | null; reached: number; p50: number; p99: number; max: number;
}

export interface KindResult { events: number; expected: number | null; reached: number; missed: number | null; latency: LatencySummary; percentiles: Array<[number, number]> }

export interface LoadReport {
  target: string;
  mode: XdsMode;
  proxyless: boolean;
  proxies: number;
  streamsPerConn: number;
  connections: number;
  connectRate: number;
  floor: boolean;
  machine: { nproc: number; memGiB: number; node: string; loadavg: number[] };
  /** `ready`: configured when the connect phase ended (all, or at the timeout); `readyAtEnd`: by the end of the run. */
  connect: { allReady: boolean; ready: number; readyAtEnd: number; failed: number; reconnects: number; stormMs: number; perProxy: LatencySummary; percentiles: Array<[number, number]> };
  churn: { durationMs: number; events: EventResult[]; byKind: Partial<Record<ChurnKind, KindResult>> };
  traffic: {
    responses: number; bytes: number; acks: number; requests: number; byType: Record<string, { responses: number; bytes: number }>;
    /** What the churn phase alone received. */
    churnPhase: { responses: number; bytes: number; byType: Record<string, { responses: number; bytes: number }> };
  };
  harness: { cpuMs: { connect: number; churn: number }; cpuPct: { connect: number; churn: number }; rssMB: number; deriveMemo: { hits: number; misses: number } };
  server: null | {
    pid: number; cpuMs: { connect: number; churn: number }; cpuPct: { connect: number; churn: number };
    rssMB: { before: number; afterConnect: number; peak: number; end: number }; rssPerProxyKB: number;
  };
  recordedBodies?: number;
  /** The first occurrence of each distinct stream error, and how often each happened. */
  errors: string[];
  errorCounts: Record<string, number>;
}

interface ActiveEvent {
  /** Position in this run's sequence of changes. */
  index: number;
  change: ChurnChange;
  marker: Buffer;
  t0: number;
  seen: Uint8Array;
  reached: number;
  expected: number | undefined;
  hist: LatencyHistogram;
  done: boolean;
}

const MB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function identityOptions(o: LoadOptions, mesh: MeshManifest | undefined): IdentityOptions {
  const namespaces = o.namespaces ?? mesh?.namespaceNames ?? ['default'];
  const appsByNamespace = new Map<string, string[]>();
  const targetsByNamespace = new Map<string, string[]>();
  if (mesh) {
    for (const s of mesh.services_) {
      (appsByNamespace.get(s.namespace) ?? appsByNamespace.set(s.namespace, []).get(s.namespace)!).push(s.name);
      (targetsByNamespace.get(s.namespace) ?? targetsByNamespace.set(s.namespace, []).get(s.namespace)!)
        .push(`${s.name}.${s.namespace}.svc.${mesh.domainSuffix}:${mesh.port}`);
    }
  }
  return {
    namespaces, appsByNamespace, targetsByNamespace, proxyless: o.proxyless, istioVersion: o.istioVersion,
    clusterId: o.clusterId, interceptionMode: o.interceptionMode, domainSuffix: mesh?.domainSuffix ?? 'cluster.local',
  };
}

/** Proxies a change must reach: with Sidecar isolation only its namespace's, otherwise every one (unknown for proxyless). */
function expectedReach(change: ChurnChange, mesh: MeshManifest | undefined, proxies: SimProxy[]): number | undefined {
  if (!mesh) return undefined;
  if (proxies[0]?.id.proxyless) {
    // A proxyless client asks only for the listeners of its targets: a Service's new port is none of them.
    if (change.kind === 'service') return 0;
    return proxies.filter((p) => p.id.targets.some((t) => t.startsWith(`${change.service}.${change.namespace}.`))).length;
  }
  if (mesh.sidecarIsolation) return proxies.filter((p) => p.id.namespace === change.namespace).length;
  return proxies.length;
}

/** The schedule of changes: each kind at its own rate, merged in time order. */
function schedule(churn: ChurnRate[], durationMs: number): Array<{ at: number; kind: ChurnKind }> {
  const out: Array<{ at: number; kind: ChurnKind }> = [];
  for (const c of churn) {
    const n = Math.max(1, Math.floor((durationMs / 1000) * c.perSecond));
    for (let i = 0; i < n; i++) out.push({ at: ((i + 0.5) * 1000) / c.perSecond, kind: c.kind });
  }
  return out.sort((a, b) => a.at - b.at);
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  envoyRoot();
  const mesh = o.meshDir ? readManifest(o.meshDir) : undefined;
  if (o.churn && !o.floorRecording && !mesh) throw new Error('--churn needs --mesh DIR made by `meshpilot load gen-mesh` (its .mesh-manifest says what to rewrite)');
  const floor = o.floorRecording ? loadRecording(o.floorRecording).recording : undefined;
  if (floor && !o.floorControl) throw new Error('--floor-recording needs --floor-control URL');
  const recorder = o.record ? new Recorder() : undefined;
  const idOpts = identityOptions(o, mesh);
  const pool = new Http2Pool(o.target, o.streamsPerConn);
  const memo = new DeriveMemo();
  const connectHist = new LatencyHistogram();
  const errors: string[] = [];
  const active: ActiveEvent[] = [];
  const finished: ActiveEvent[] = [];
  let readyCount = 0;
  let failed = 0;
  let reconnects = 0;
  const errorCounts = new Map<string, number>();
  let lastResponseAt = performance.now();
  let t0 = 0;

  const observer: ProxyObserver = {
    onResponse(p, typeUrl, body, at) {
      lastResponseAt = at;
      let carried: number | undefined;
      for (let k = 0; k < active.length; k++) {
        const ev = active[k]!;
        if (ev.done || ev.seen[p.id.index] || body.indexOf(ev.marker) < 0) continue;
        // A response that carries several changes (coalesced) could not have been sent before the newest of them.
        carried = ev.index;
        ev.seen[p.id.index] = 1;
        ev.reached++;
        ev.hist.recordMs(at - ev.t0);
        if (ev.reached === ev.expected) ev.done = true;
      }
      recorder?.record(p.id.index, typeUrl, body, carried);
    },
    onReady(p, at) {
      readyCount++;
      connectHist.recordMs(at - Math.max(t0, p.startedAt));
    },
    onClosed(p, err, retryInMs) {
      if (retryInMs === undefined) failed++;
      else reconnects++;
      const key = err?.replace(/\d+/g, 'N') ?? '';
      errorCounts.set(key, (errorCounts.get(key) ?? 0) + 1);
      if (errors.length < 10 && errorCounts.get(key) === 1) errors.push(`${p.id.nodeId}: ${err}`);
    },
  };

  const proxies: SimProxy[] = [];
  for (let i = 0; i < o.proxies; i++) {
    const id = makeIdentity(i, idOpts);
    if (o.proxyless && id.targets.length === 0) throw new Error(`proxyless proxy in namespace ${id.namespace} has no targets: give --mesh with services there`);
    proxies.push(new SimProxy(id, o.mode, observer, memo));
    recorder?.addProxy(i, id.nodeId);
  }

  const selfStart = sampleSelf();
  const serverStart = o.serverPid ? sampleProcess(o.serverPid) : undefined;
  let serverPeak = serverStart?.rssBytes ?? 0;
  let phase = 'connect';
  let lastTick = { self: selfStart, server: serverStart, responses: 0, bytes: 0 };
  const totals = (): { responses: number; bytes: number; acks: number; requests: number } => {
    let responses = 0, bytes = 0, acks = 0, requests = 0;
    for (const p of proxies) { responses += p.stats.responses; bytes += p.stats.bytes; acks += p.stats.acks; requests += p.stats.requests; }
    return { responses, bytes, acks, requests };
  };
  const byTypeTotals = (): Record<string, { responses: number; bytes: number }> => {
    const out: Record<string, { responses: number; bytes: number }> = {};
    for (const p of proxies) for (const [k, v] of Object.entries(p.stats.byType)) {
      const b = (out[k] ??= { responses: 0, bytes: 0 });
      b.responses += v.responses;
      b.bytes += v.bytes;
    }
    return out;
  };
  let started = 0;
  const ticker = setInterval(() => {
    const self = sampleSelf();
    const server = o.serverPid ? sampleProcess(o.serverPid) : undefined;
    if (server) serverPeak = Math.max(serverPeak, server.rssBytes);
    const t = totals();
    if (o.progress) {
      const evDone = finished.length;
      log(`[load ${((performance.now() - t0) / 1000).toFixed(1)}s ${phase}] streams ${started}/${o.proxies} ready ${readyCount} failed ${failed}` +
        ` rx ${t.responses - lastTick.responses}/s ${((t.bytes - lastTick.bytes) / MB).toFixed(1)} MB/s` +
        (o.churn ? ` events ${evDone} done, ${active.length} open` : '') +
        ` harness-cpu ${cpuPercent(lastTick.self, self).toFixed(0)}%` +
        (server && lastTick.server ? ` server-cpu ${cpuPercent(lastTick.server, server).toFixed(0)}% rss ${(server.rssBytes / MB).toFixed(0)} MB` : ''));
    }
    lastTick = { self, server, responses: t.responses, bytes: t.bytes };
  }, 1000);

  try {
    // Connect storm.
    t0 = performance.now();
    const rate = o.connectRate > 0 ? o.connectRate : Infinity;
    while (started < proxies.length) {
      const allowed = rate === Infinity ? proxies.length : Math.min(proxies.length, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      const batchEnd = Math.min(allowed, started + 200);
      let blocked = false;
      for (; started < batchEnd; started++) {
        // Bound TCP handshakes in flight: thousands of simultaneous SYNs overflow the server's accept backlog and
        // the kernel's SYN retransmits (1 s, 3 s, 7 s) would then dominate what is measured.
        if (started % o.streamsPerConn === 0 && pool.connecting >= o.maxPendingConnects) { blocked = true; break; }
        const i = started;
        proxies[i]!.start(() => pool.sessionFor(i));
      }
      await (rate === Infinity && !blocked ? new Promise((r) => setImmediate(r)) : sleep(blocked ? 1 : 5));
    }
    const deadline = t0 + o.connectTimeoutMs;
    while (readyCount + failed < proxies.length && performance.now() < deadline) await sleep(10);
    const stormMs = performance.now() - t0;
    const readyAtConnectEnd = readyCount;
    const allReady = readyCount === proxies.length;
    log(`[load] connect storm: ${readyCount}/${proxies.length} proxies configured and ACKed in ${(stormMs / 1000).toFixed(2)} s (${failed} failed, ${reconnects} reconnects)`);
    // Let pushes triggered by the connects drain before measuring churn.
    const quietDeadline = performance.now() + 10_000;
    while (performance.now() - lastResponseAt < 500 && performance.now() < quietDeadline) await sleep(50);
    const connectedTotals = totals();
    const connectedByType = byTypeTotals();
    const selfConnected = sampleSelf();
    const serverConnected = o.serverPid ? sampleProcess(o.serverPid) : undefined;

    // Churn.
    phase = 'churn';
    const churner = mesh && o.churn && !floor ? new MeshChurner(o.meshDir!, mesh, randomBytes(3).toString('hex')) : undefined;
    const kubeChurn = churner && o.churnKubeconfig ? await KubeChurnApplier.open(o.churnKubeconfig) : undefined;
    let floorIdx = 0;
    let eventIndex = 0;
    const plan = o.churn ? schedule(o.churn, o.durationMs) : [];
    const churnStart = performance.now();
    for (const step of plan) {
      const wait = churnStart + step.at - performance.now();
      if (wait > 0) await sleep(wait);
      let change: ChurnChange;
      let tChange: number;
      if (floor) {
        change = floor.events[floorIdx++]!;
        if (!change) break;
        tChange = performance.now();
        await fetch(`${o.floorControl}/event?i=${floorIdx - 1}`, { method: 'POST' }).then((r) => { if (!r.ok) throw new Error(`floor control: HTTP ${r.status}`); });
      } else {
        if (!churner!.canChurn(step.kind)) throw new Error(`--churn ${step.kind}: the mesh has nothing to change (no VirtualServices?)`);
        if (kubeChurn) {
          // The change time is when the API server accepted it (the apply's response).
          change = await churner!.changeVia(step.kind, kubeChurn);
        } else {
          change = churner!.change(step.kind);
        }
        tChange = performance.now();
      }
      recorder?.beginEvent(change);
      const expected = expectedReach(change, mesh, proxies);
      active.push({ index: eventIndex++, change, marker: Buffer.from(change.marker), t0: tChange, seen: new Uint8Array(proxies.length), reached: 0, expected, hist: new LatencyHistogram(), done: expected === 0 });
      // Retire events that are complete or timed out.
      for (let k = active.length - 1; k >= 0; k--) {
        const ev = active[k]!;
        if (ev.done || performance.now() - ev.t0 > o.eventTimeoutMs) { ev.done = true; finished.push(ev); active.splice(k, 1); }
      }
    }
    while (active.length > 0) {
      for (let k = active.length - 1; k >= 0; k--) {
        const ev = active[k]!;
        const stale = ev.expected === undefined ? performance.now() - Math.max(ev.t0, lastResponseAt) > 2000 : false;
        if (ev.done || stale || performance.now() - ev.t0 > o.eventTimeoutMs) { ev.done = true; finished.push(ev); active.splice(k, 1); }
      }
      await sleep(20);
    }
    const selfEnd = sampleSelf();
    const serverEnd = o.serverPid ? sampleProcess(o.serverPid) : undefined;
    if (serverEnd) serverPeak = Math.max(serverPeak, serverEnd.rssBytes);

    finished.sort((a, b) => a.change.seq - b.change.seq);
    const byKind: Partial<Record<ChurnKind, KindResult>> = {};
    for (const kind of CHURN_KINDS) {
      const evs = finished.filter((e) => e.change.kind === kind);
      if (evs.length === 0) continue;
      const h = new LatencyHistogram();
      const known = evs.every((e) => e.expected !== undefined);
      const expected = known ? evs.reduce((s, e) => s + (e.expected ?? 0), 0) : null;
      const reached = evs.reduce((s, e) => s + e.reached, 0);
      for (const e of evs) h.merge(e.hist);
      byKind[kind] = { events: evs.length, expected, reached, missed: expected === null ? null : expected - reached, latency: h.summary(), percentiles: h.percentiles() };
    }
    const t = totals();
    const byType = byTypeTotals();
    const churnByType: Record<string, { responses: number; bytes: number }> = {};
    for (const [k, v] of Object.entries(byType)) {
      const c = connectedByType[k] ?? { responses: 0, bytes: 0 };
      if (v.responses > c.responses) churnByType[k] = { responses: v.responses - c.responses, bytes: v.bytes - c.bytes };
    }
    const rss = (s: ProcSample | undefined): number => Math.round((s?.rssBytes ?? 0) / MB);
    const report: LoadReport = {
      target: o.target,
      mode: o.mode,
      proxyless: o.proxyless,
      proxies: o.proxies,
      streamsPerConn: o.streamsPerConn,
      connections: pool.connections,
      connectRate: o.connectRate,
      floor: !!floor,
      machine: { nproc: os.availableParallelism(), memGiB: Math.round(os.totalmem() / 1024 ** 3), node: process.version, loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100) },
      connect: { allReady, ready: readyAtConnectEnd, readyAtEnd: readyCount, failed, reconnects, stormMs: Math.round(stormMs), perProxy: connectHist.summary(), percentiles: connectHist.percentiles() },
      churn: {
        durationMs: o.churn ? Math.round(performance.now() - churnStart) : 0,
        events: finished.map((e) => {
          const s = e.hist.summary();
          return { seq: e.change.seq, kind: e.change.kind, service: e.change.service, namespace: e.change.namespace, marker: e.change.marker, expected: e.expected ?? null, reached: e.reached, p50: s.p50, p99: s.p99, max: s.max };
        }),
        byKind,
      },
      traffic: {
        ...t, byType,
        churnPhase: { responses: t.responses - connectedTotals.responses, bytes: t.bytes - connectedTotals.bytes, byType: churnByType },
      },
      harness: {
        cpuMs: { connect: Math.round(selfConnected.cpuMs - selfStart.cpuMs), churn: Math.round(selfEnd.cpuMs - selfConnected.cpuMs) },
        cpuPct: { connect: Math.round(cpuPercent(selfStart, selfConnected)), churn: Math.round(cpuPercent(selfConnected, selfEnd)) },
        rssMB: Math.round(process.memoryUsage.rss() / MB),
        deriveMemo: { hits: memo.hits, misses: memo.misses },
      },
      server: o.serverPid && serverStart && serverConnected && serverEnd ? {
        pid: o.serverPid,
        cpuMs: { connect: Math.round(serverConnected.cpuMs - serverStart.cpuMs), churn: Math.round(serverEnd.cpuMs - serverConnected.cpuMs) },
        cpuPct: { connect: Math.round(cpuPercent(serverStart, serverConnected)), churn: Math.round(cpuPercent(serverConnected, serverEnd)) },
        rssMB: { before: rss(serverStart), afterConnect: rss(serverConnected), peak: Math.round(serverPeak / MB), end: rss(serverEnd) },
        rssPerProxyKB: Math.round((serverConnected.rssBytes - serverStart.rssBytes) / 1024 / Math.max(1, readyCount)),
      } : null,
      errors,
      errorCounts: Object.fromEntries(errorCounts),
    };
    if (recorder) {
      recorder.save(o.record!);
      report.recordedBodies = recorder.uniqueBodies;
    }
    return report;
  } finally {
    clearInterval(ticker);
    for (const p of proxies) p.close();
    pool.close();
  }
}

/** A short human summary of a report (the CLI prints it to stderr; JSON goes to --json). */
export function formatReport(r: LoadReport): string {
  const lines = [
    `target ${r.target} (${r.mode}${r.proxyless ? ', proxyless' : ''}${r.floor ? ', floor replay' : ''}): ${r.proxies} proxies on ${r.connections} connections`,
    `connect storm: ${r.connect.ready}/${r.proxies} ready in ${r.connect.stormMs} ms${r.connect.allReady ? '' : ` (timed out; ${r.connect.readyAtEnd} by the end)`} (per proxy p50 ${r.connect.perProxy.p50} p99 ${r.connect.perProxy.p99} ms), ${r.connect.failed} failed, ${r.connect.reconnects} reconnects`,
  ];
  for (const [k, v] of Object.entries(r.churn.byKind)) {
    lines.push(`${k} changes: ${v.events} events, reached ${v.reached}${v.expected !== null ? `/${v.expected}` : ''} proxy-updates; convergence p50 ${v.latency.p50} p90 ${v.latency.p90} p99 ${v.latency.p99} max ${v.latency.max} ms`);
  }
  lines.push(`received ${r.traffic.responses} responses, ${(r.traffic.bytes / MB).toFixed(1)} MB, ${r.traffic.acks} ACKs; churn phase ${r.traffic.churnPhase.responses} responses, ${(r.traffic.churnPhase.bytes / MB).toFixed(2)} MB`);
  lines.push(`harness CPU ${r.harness.cpuMs.connect} ms connect / ${r.harness.cpuMs.churn} ms churn, RSS ${r.harness.rssMB} MB`);
  if (r.server) lines.push(`server CPU ${r.server.cpuMs.connect} ms connect / ${r.server.cpuMs.churn} ms churn; RSS ${r.server.rssMB.before} → ${r.server.rssMB.afterConnect} MB (peak ${r.server.rssMB.peak}), ${r.server.rssPerProxyKB} KiB per proxy`);
  for (const e of r.errors.slice(0, 3)) lines.push(`error: ${e}`);
  return lines.join('\n');
}
