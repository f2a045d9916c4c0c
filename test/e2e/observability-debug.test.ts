/**
 * Debug surface over real streams: proxy-status (the CLI, as a child process) shows SYNCED / NOT SENT / STALE for
 * clients that ACK, stay silent or fall behind; /debug/* endpoints; config_dump and proxy-config tables; CSDS and
 * `istio.io/debug/syncz` over gRPC; the guarded force_disconnect; push log lines carry proxy and push version.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { pino } from 'pino';
import * as grpc from '@grpc/grpc-js';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE } from '../../src/proto/type-urls.js';
import { messageType, decodeAny } from '../../src/proto/encode.js';

const run = promisify(execFile);
const CLI = path.resolve('dist/src/cli/main.js');
const NODE = (pod: string): string => `sidecar~10.1.0.1~${pod}.default~default.svc.cluster.local`;
const META = { NAMESPACE: 'default', ISTIO_VERSION: '1.24.0', INTERCEPTION_MODE: 'NONE' };
const CLUSTER = 'outbound|9080||reviews.default.svc.cluster.local';
let mesh: TestMesh;
let mon: string;
const logLines: Array<Record<string, unknown>> = [];
const clients: AdsTestClient[] = [];

function client(pod: string): AdsTestClient {
  const c = new AdsTestClient(mesh.xdsAddress, NODE(pod), META);
  clients.push(c);
  return c;
}

async function cli(...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const { stdout } = await run(process.execPath, [CLI, ...args]);
    return { stdout, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout + err.stderr, code: err.code };
  }
}

async function getJson(p: string): Promise<any> {
  const res = await fetch(`http://${mon}${p}`);
  assert.equal(res.status, 200, `${p}: ${res.status}`);
  return res.json();
}

/** Table row of a proxy → column values keyed by header (columns are separated by 2+ spaces). */
function row(table: string, startsWith: string): Record<string, string> {
  const lines = table.trimEnd().split('\n');
  const header = lines[0]!;
  const starts = [...header.matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], at: m.index! }));
  const line = lines.find((l) => l.startsWith(startsWith));
  assert.ok(line, `no row for ${startsWith} in\n${table}`);
  return Object.fromEntries(starts.map((s, i) => [s.name, line.slice(s.at, starts[i + 1]?.at ?? undefined).trim()]));
}

before(async () => {
  const logger = pino({ level: 'debug' }, { write: (s: string) => { logLines.push(JSON.parse(s)); } });
  mesh = await startMeshpilot({
    'reviews.yaml': serviceYaml({ name: 'reviews', port: 9080, endpoints: [{ ip: '10.0.0.1', port: 9080 }, { ip: '10.0.0.2', port: 9080, ready: false }] }),
  }, { logger, pushAckTimeoutMs: 200 });
  mon = `127.0.0.1:${mesh.server.monitoringPort}`;
});

after(async () => {
  for (const c of clients) c.close();
  await mesh.stop();
});

test('proxy-status: SYNCED for a proxy that ACKs, STALE for one that does not, NOT SENT for unrequested types', async () => {
  const synced = client('synced');
  const silent = client('silent');
  const lagging = client('lagging');
  for (const c of [synced, lagging]) {
    c.send({ type_url: CLUSTER_TYPE });
    c.ack(await c.next(CLUSTER_TYPE));
    c.send({ type_url: LISTENER_TYPE });
    c.ack(await c.next(LISTENER_TYPE));
  }
  synced.send({ type_url: ENDPOINT_TYPE, resource_names: [CLUSTER] });
  synced.ack(await synced.next(ENDPOINT_TYPE), [CLUSTER]);
  silent.send({ type_url: CLUSTER_TYPE });
  await silent.next(CLUSTER_TYPE);

  // A change the lagging proxy receives but never ACKs.
  const seenLag = lagging.received.length;
  const seenSynced = synced.received.length;
  mesh.write('dr.yaml', `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
`);
  await lagging.next(CLUSTER_TYPE, 5000, seenLag);
  synced.ack(await synced.next(CLUSTER_TYPE, 5000, seenSynced));
  // EDS follows CDS in the same push (Envoy re-warms updated clusters); a proxy in sync ACKs that too.
  synced.ack(await synced.next(ENDPOINT_TYPE, 5000, seenSynced), [CLUSTER]);
  await mesh.settle();
  await new Promise((r) => setTimeout(r, 100));

  const { stdout, code } = await cli('proxy-status', '--server', mon);
  assert.equal(code, 0, stdout);
  assert.match(stdout.split('\n')[0]!, /^NAME\s+CLUSTER\s+CDS\s+LDS\s+EDS\s+RDS\s+ISTIOD\s+VERSION$/);
  const s = row(stdout, NODE('synced'));
  assert.deepEqual([s.CDS, s.LDS, s.EDS, s.RDS, s.VERSION], ['SYNCED', 'SYNCED', 'SYNCED', 'NOT SENT', '1.24.0']);
  const q = row(stdout, NODE('silent'));
  assert.deepEqual([q.CDS, q.LDS, q.EDS, q.RDS], ['STALE (Never Acknowledged)', 'NOT SENT', 'NOT SENT', 'NOT SENT']);
  const l = row(stdout, NODE('lagging'));
  assert.deepEqual([l.CDS, l.LDS], ['STALE', 'SYNCED']);

  const only = await cli('proxy-status', 'silent', '--server', mon);
  assert.equal(only.stdout.trimEnd().split('\n').length, 2, 'header and the one matching proxy');

  const syncz = await getJson('/debug/syncz');
  const entry = syncz.find((x: any) => x.proxy === NODE('silent'));
  assert.ok(entry.cluster_sent && entry.cluster_acked === undefined);
  assert.equal(entry.cluster_id, 'Kubernetes');
});

test('istio.io/debug/syncz over ADS and CSDS over gRPC report the same states', async () => {
  const debug = client('istioctl-debug');
  debug.send({ type_url: 'istio.io/debug/syncz' });
  const res = await debug.next('istio.io/debug/syncz');
  const byNode = new Map(res.resources.map((r: any) => [r.node.id, r]));
  assert.ok(!byNode.has(NODE('istioctl-debug')), 'the debug client itself is not a proxy');
  const st = (id: string, shortType: string): string => {
    const cfg: any = byNode.get(NODE(id));
    const typeUrl = { CDS: CLUSTER_TYPE, LDS: LISTENER_TYPE }[shortType]!;
    return cfg.generic_xds_configs.find((g: any) => g.type_url === typeUrl).config_status;
  };
  assert.equal(st('synced', 'CDS'), 'SYNCED');
  assert.equal(st('silent', 'CDS'), 'STALE');
  assert.equal(st('silent', 'LDS'), 'NOT_SENT');
  assert.equal(st('lagging', 'CDS'), 'STALE');
  const legacy: any = byNode.get(NODE('synced'));
  assert.ok(legacy.xds_config.some((x: any) => x.status === 'SYNCED' && 'cluster_config' in x), 'deprecated xds_config for older istioctl');

  const def: grpc.ServiceDefinition = {
    FetchClientStatus: {
      path: '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus', requestStream: false, responseStream: false,
      requestSerialize: (o: any) => Buffer.from(messageType('envoy.service.status.v3.ClientStatusRequest').encode(messageType('envoy.service.status.v3.ClientStatusRequest').fromObject(o)).finish()),
      requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => messageType('envoy.service.status.v3.ClientStatusResponse').toObject(messageType('envoy.service.status.v3.ClientStatusResponse').decode(b), { enums: String }),
    },
  };
  const Ctor = grpc.makeGenericClientConstructor(def, 'ClientStatusDiscoveryService');
  const csds = new Ctor(mesh.xdsAddress, grpc.credentials.createInsecure()) as any;
  try {
    const fetchStatus = (req: unknown): Promise<any> => new Promise((resolve, reject) => csds.FetchClientStatus(req, (e: Error | null, r: any) => (e ? reject(e) : resolve(r))));
    const r = await fetchStatus({ node_matchers: [{ node_id: { prefix: 'sidecar~10.1.0.1~synced' } }] });
    assert.equal(r.config.length, 1);
    const cfg = r.config[0];
    assert.equal(cfg.node.id, NODE('synced'));
    const cluster = cfg.generic_xds_configs.find((g: any) => g.name === CLUSTER);
    assert.equal(cluster.config_status, 'SYNCED');
    assert.equal(cluster.client_status, 'ACKED');
    const anyBytes = messageType('google.protobuf.Any').encode(cluster.xds_config).finish();
    assert.equal(decodeAny(anyBytes).lb_policy, 'ROUND_ROBIN', 'resource contents are the cluster as sent');
    const lean = await fetchStatus({ exclude_resource_contents: true });
    assert.ok(lean.config.length >= 3);
    assert.ok(lean.config.every((c: any) => c.generic_xds_configs.every((g: any) => g.xds_config === undefined)));
    await assert.rejects(fetchStatus({ node_matchers: [{ node_metadatas: [{ path: [{ key: 'x' }], value: { present_match: true } }] }] }), /INVALID_ARGUMENT|not supported/);
  } finally {
    csds.close();
  }
});

test('config_dump and proxy-config show what the proxy was sent, in istioctl tables and as JSON', async () => {
  const dump = await getJson(`/debug/config_dump?proxyID=${encodeURIComponent(NODE('synced'))}`);
  const types = dump.configs.map((c: any) => c['@type'].split('.').pop());
  assert.deepEqual(types, ['ClustersConfigDump', 'ListenersConfigDump', 'RoutesConfigDump', 'SecretsConfigDump', 'EndpointsConfigDump']);
  const byPod = await getJson('/debug/config_dump?proxyID=synced.default');
  assert.equal(byPod.configs[0].dynamic_active_clusters.length, dump.configs[0].dynamic_active_clusters.length, 'POD.NAMESPACE works as proxyID');

  const clusters = await cli('proxy-config', 'clusters', 'synced.default', '--server', mon);
  assert.equal(clusters.code, 0, clusters.stdout);
  assert.match(clusters.stdout.split('\n')[0]!, /^SERVICE FQDN\s+PORT\s+SUBSET\s+DIRECTION\s+TYPE\s+DESTINATION RULE$/);
  const c = row(clusters.stdout, 'reviews.default.svc.cluster.local');
  assert.deepEqual([c.PORT, c.SUBSET, c.DIRECTION, c.TYPE], ['9080', '-', 'outbound', 'EDS']);
  assert.ok(row(clusters.stdout, 'BlackHoleCluster'));

  const listeners = await cli('proxy-config', 'listeners', NODE('synced'), '--server', mon);
  assert.match(listeners.stdout.split('\n')[0]!, /^ADDRESSES\s+PORT\s+MATCH\s+DESTINATION$/);
  // As istioctl shows an istiod 1.29 HTTP listener: the HTTP chain by ALPN, then the default chain's passthrough.
  assert.match(listeners.stdout, /127\.0\.0\.1\s+9080\s+Trans: raw_buffer; App: http\/1\.1,h2c\s+Route: 9080/);
  assert.match(listeners.stdout, /127\.0\.0\.1\s+9080\s+ALL\s+Cluster: PassthroughCluster/);

  const eps = await cli('proxy-config', 'endpoints', 'synced.default', '--server', mon);
  assert.match(eps.stdout.split('\n')[0]!, /^ENDPOINT\s+STATUS\s+OUTLIER CHECK\s+CLUSTER$/);
  const e = row(eps.stdout, '10.0.0.1:9080');
  assert.deepEqual([e.STATUS, e['OUTLIER CHECK'], e.CLUSTER], ['HEALTHY', 'OK', CLUSTER]);

  const json = await cli('proxy-config', 'clusters', 'synced.default', '--server', mon, '-o', 'json');
  const parsed = JSON.parse(json.stdout);
  assert.ok(parsed.some((x: any) => x.name === CLUSTER && x.lb_policy === 'ROUND_ROBIN'));

  const synced = clients.find((x) => x.nodeId === NODE('synced'))!;
  synced.send({ type_url: ROUTE_TYPE, resource_names: ['9080'] });
  synced.ack(await synced.next(ROUTE_TYPE), ['9080']);
  const routes = await cli('proxy-config', 'routes', 'synced.default', '--server', mon);
  assert.match(routes.stdout.split('\n')[0]!, /^NAME\s+VHOST NAME\s+DOMAINS\s+MATCH\s+VIRTUAL SERVICE$/);
  const r = row(routes.stdout, '9080');
  assert.equal(r['VHOST NAME'], 'reviews.default.svc.cluster.local:9080');
  assert.match(r.DOMAINS, /^reviews\.default\.svc\.cluster\.local, /);
  assert.equal(r.MATCH, '/*');

  const secrets = await cli('proxy-config', 'secrets', 'synced.default', '--server', mon);
  assert.match(secrets.stdout.split('\n')[0]!, /^RESOURCE NAME\s+TYPE\s+STATUS\s+VALID CERT\s+SERIAL NUMBER\s+NOT AFTER\s+NOT BEFORE$/);

  const missing = await cli('proxy-config', 'clusters', 'nobody.default', '--server', mon);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stdout, /404 Proxy not connected/);
  const down = await cli('proxy-status', '--server', '127.0.0.1:1');
  assert.notEqual(down.code, 0);
  assert.match(down.stdout, /cannot reach meshpilot at 127\.0\.0\.1:1/);
});

test('the other debug endpoints describe registry, config, cache, connections and pushes', async () => {
  const adsz = await getJson('/debug/adsz');
  const synced = adsz.clients.find((c: any) => c.connectionId.startsWith(NODE('synced')));
  assert.deepEqual(synced.watches[ENDPOINT_TYPE], [CLUSTER]);
  assert.equal(adsz.totalClients, adsz.clients.length);
  const conns = await getJson('/debug/connections');
  assert.ok(conns.some((c: any) => c.proxy === NODE('silent') && c.types.includes('CDS')));
  const registry = await getJson('/debug/registryz');
  assert.deepEqual(registry.map((s: any) => s.hostname), ['reviews.default.svc.cluster.local']);
  const configz = await getJson('/debug/configz');
  assert.ok(configz.some((c: any) => c.kind === 'DestinationRule' && c.metadata.name === 'reviews'));
  const cachez = await getJson('/debug/cachez');
  assert.ok(cachez.size > 0 && cachez.misses > 0);
  const push = await getJson('/debug/push_status');
  assert.equal(push.services, 1);
  assert.ok(push.stats.pushes >= 1);
  const edsz = await getJson(`/debug/edsz?proxyID=${encodeURIComponent(NODE('synced'))}`);
  assert.equal(edsz[0].cluster_name, CLUSTER);
  const registryEps = await getJson('/debug/edsz');
  assert.equal(registryEps[0].endpoints.length, 2, 'the registry view includes the unready endpoint');
  const missing = await fetch(`http://${mon}/debug/config_dump`);
  assert.equal(missing.status, 400);
});

test('push log lines carry the proxy ID and the push version', () => {
  const pushes = logLines.filter((l) => l.msg === 'ADS: push' || l.msg === 'ADS: delta push');
  assert.ok(pushes.length >= 8);
  for (const l of pushes) {
    assert.equal(typeof l.proxy, 'string');
    assert.equal(typeof l.pushVersion, 'string');
  }
  const complete = logLines.filter((l) => l.msg === 'push complete');
  assert.ok(complete.length >= 1 && complete.every((l) => typeof l.pushVersion === 'string'));
});

test('force_disconnect is guarded (POST only) and ends the proxy\'s stream', async () => {
  const get = await fetch(`http://${mon}/debug/force_disconnect?proxyID=silent.default`);
  assert.equal(get.status, 405);
  const unknown = await fetch(`http://${mon}/debug/force_disconnect?proxyID=nobody.default`, { method: 'POST' });
  assert.equal(unknown.status, 404);
  const silent = clients.find((c) => c.nodeId === NODE('silent'))!;
  const res = await fetch(`http://${mon}/debug/force_disconnect?proxyID=silent.default`, { method: 'POST' });
  assert.equal(res.status, 200);
  await assert.rejects(silent.next('never', 2000), (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE);
  const after = await getJson('/debug/syncz');
  assert.ok(!after.some((x: any) => x.proxy === NODE('silent')));
});
