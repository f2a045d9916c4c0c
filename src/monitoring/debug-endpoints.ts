/**
 * istiod's debug endpoints on the monitoring port (pilot/pkg/xds/debug.go): /metrics, /debug/syncz,
 * /debug/config_dump?proxyID=, /debug/configz, /debug/push_status, /debug/adsz, /debug/edsz, /debug/registryz,
 * /debug/cachez, /debug/connections, /debug/force_disconnect (POST from loopback only), and the /debug/ui page.
 * The port binds 127.0.0.1 by default, as istiod keeps its debug interface local.
 */
import type http from 'node:http';
import type { MonitoringServer } from './http-server.js';
import type { PilotMetrics } from './metrics.js';
import type { PushEngine } from '../push/push-engine.js';
import type { ConfigStore } from '../config/store.js';
import { Kind } from '../config/kinds.js';
import type { Logger } from '../log/logger.js';
import { LOG_LEVELS } from '../log/logger.js';
import { ENDPOINT_TYPE, shortType } from '../proto/type-urls.js';
import { configDump, sentResources } from './config-dump.js';
import { configStatus, matchesProxyId, proxyConnections, STATUS_TYPES, syncStatus, type ConnectionView } from './sync-status.js';
import { STATUS_PAGE_HTML } from './ui.js';

/** The parts of a MeshpilotServer the debug endpoints read. */
export interface DebugSource {
  readonly engine: PushEngine;
  readonly ads: { readonly connections: Iterable<object>; disconnect(con: object): boolean };
  readonly store: ConfigStore;
  readonly log: Logger;
  readonly metrics: PilotMetrics;
  readonly opts: { readonly clusterId: string };
  readonly configRejected: number;
}

export function connectionsOf(src: DebugSource): ConnectionView[] {
  // Both ADS variants (XdsConnection, DeltaConnection) carry the fields ConnectionView names.
  return [...src.ads.connections] as ConnectionView[];
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body, null, 2)}\n`);
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
}

function isLoopback(req: http.IncomingMessage): boolean {
  const a = req.socket.remoteAddress ?? '';
  return a === '127.0.0.1' || a === '::1' || a === '::ffff:127.0.0.1';
}

function findConnection(src: DebugSource, url: URL, res: http.ServerResponse): ConnectionView | undefined {
  const id = url.searchParams.get('proxyID');
  if (!id) { text(res, 400, 'You must provide a proxyID in the query string\n'); return undefined; }
  const con = connectionsOf(src).find((c) => !c.closed && matchesProxyId(c, id));
  if (!con) { text(res, 404, `Proxy not connected to this Pilot instance: ${id}\n`); return undefined; }
  return con;
}

/** What the status page polls: one JSON document with everything it draws. */
export async function uiState(src: DebugSource): Promise<unknown> {
  const proxies = proxyConnections(connectionsOf(src)).map((c) => ({
    id: c.proxy.id, conId: c.conId, kind: c.kind, type: c.proxy.type, generator: c.proxy.generator, peer: c.peer,
    connectedAt: c.connectedAt.toISOString(),
    status: Object.fromEntries(STATUS_TYPES.map((t) => [shortType(t), configStatus(c.watches.get(t))])),
    nacks: c.stats.nacks, responses: c.stats.responses,
  }));
  const ctx = src.engine.pushContext;
  return {
    now: new Date().toISOString(),
    pushVersion: ctx?.version,
    services: ctx?.services.length ?? 0,
    configs: src.store.size(),
    configRejected: src.configRejected,
    proxies,
    pushesPerSecond: src.metrics.pushRate(10),
    convergence: await src.metrics.convergenceBuckets(),
    workerUtilization: src.metrics.utilization('ui'),
    engine: src.engine.stats,
    cache: src.engine.cache.stats(),
    logLevel: src.log.level,
    logLevels: LOG_LEVELS,
  };
}

export function registerDebugEndpoints(mon: MonitoringServer, src: DebugSource): void {
  mon.route('/metrics', async (_req, res) => {
    const body = await src.metrics.metrics();
    res.writeHead(200, { 'content-type': src.metrics.contentType }).end(body);
  });

  mon.route('/debug/syncz', (_req, res) => json(res, 200, proxyConnections(connectionsOf(src)).map(syncStatus)));

  mon.route('/debug/config_dump', (_req, res, url) => {
    const con = findConnection(src, url, res);
    if (con) json(res, 200, configDump(con));
  });

  mon.route('/debug/configz', (_req, res) => {
    const all: unknown[] = [];
    for (const kind of Object.values(Kind)) for (const c of src.store.list(kind)) all.push({ ...c.resource, source: c.source });
    json(res, 200, all);
  });

  mon.route('/debug/push_status', (_req, res) => {
    const ctx = src.engine.pushContext;
    json(res, 200, {
      version: ctx?.version,
      services: ctx?.services.length ?? 0,
      virtualServices: ctx?.data.virtualServices.length ?? 0,
      destinationRules: ctx?.data.destinationRules.length ?? 0,
      gateways: ctx?.data.gateways.length ?? 0,
      sidecars: ctx?.data.sidecars.length ?? 0,
      stats: src.engine.stats,
      configRejected: src.configRejected,
    });
  });

  mon.route('/debug/adsz', (_req, res) => {
    const clients = connectionsOf(src).filter((c) => !c.closed).map((c) => ({
      connectionId: c.conId,
      connectedAt: c.connectedAt.toISOString(),
      address: c.peer,
      kind: c.kind,
      labels: c.proxy.labels,
      metadata: c.proxy.metadata,
      watches: Object.fromEntries([...c.watches.values()].map((w) => [w.typeUrl, w.lastSent?.names ?? []])),
    }));
    json(res, 200, { totalClients: clients.length, clients });
  });

  mon.route('/debug/connections', (_req, res) => {
    json(res, 200, connectionsOf(src).filter((c) => !c.closed).map((c) => ({
      connectionId: c.conId, proxy: c.proxy.id, address: c.peer, connectedAt: c.connectedAt.toISOString(), kind: c.kind,
      types: [...c.watches.keys()].map(shortType), responses: c.stats.responses, bytes: c.stats.bytes, acks: c.stats.acks, nacks: c.stats.nacks,
    })));
  });

  mon.route('/debug/edsz', (_req, res, url) => {
    if (url.searchParams.get('proxyID')) {
      const con = findConnection(src, url, res);
      if (con) json(res, 200, sentResources(con.watches.get(ENDPOINT_TYPE)).map((r) => r.resource));
      return;
    }
    // Without a proxy: the registry's endpoints per service, as the push context holds them.
    const ctx = src.engine.pushContext;
    json(res, 200, (ctx?.services ?? []).map((s) => ({ service: s.hostname, endpoints: ctx!.endpoints(s.hostname) })));
  });

  mon.route('/debug/registryz', (_req, res) => json(res, 200, src.engine.pushContext?.services ?? []));

  mon.route('/debug/cachez', (_req, res) => json(res, 200, src.engine.cache.stats()));

  mon.route('/debug/force_disconnect', (req, res, url) => {
    // Guarded: it drops a live proxy's stream, so only a POST from this host may do it.
    if (req.method !== 'POST') { res.setHeader('allow', 'POST'); text(res, 405, 'force_disconnect needs POST\n'); return; }
    if (!isLoopback(req)) { text(res, 403, 'force_disconnect is only served to loopback clients\n'); return; }
    const con = findConnection(src, url, res);
    if (!con) return;
    const done = src.ads.disconnect(con);
    src.log.info({ proxy: con.proxy.id, conId: con.conId }, 'debug: force disconnect');
    text(res, done ? 200 : 500, done ? `disconnected ${con.conId}\n` : 'stream not found\n');
  });

  mon.route('/debug/ui', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'" }).end(STATUS_PAGE_HTML);
  });
  mon.route('/debug/ui/state', async (_req, res) => json(res, 200, await uiState(src)));

  // ControlZ-style runtime log level: GET shows it, POST ?level=debug changes it.
  mon.route('/debug/loglevel', (req, res, url) => {
    if (req.method === 'POST') {
      const level = url.searchParams.get('level') ?? '';
      if (!(LOG_LEVELS as readonly string[]).includes(level)) { text(res, 400, `level must be one of ${LOG_LEVELS.join(', ')}\n`); return; }
      const from = src.log.level;
      src.log.level = level;
      src.log.info({ from, to: level }, 'log level changed');
    }
    json(res, 200, { level: src.log.level });
  });

  mon.route('/debug', (_req, res) => {
    text(res, 200, ['/metrics', '/debug/syncz', '/debug/config_dump?proxyID=', '/debug/configz', '/debug/push_status', '/debug/adsz',
      '/debug/edsz[?proxyID=]', '/debug/registryz', '/debug/cachez', '/debug/connections', '/debug/force_disconnect?proxyID= (POST)',
      '/debug/ui', '/debug/loglevel[?level=] (POST to change)'].join('\n') + '\n');
  });
}
