/**
 * /metrics over real pushes to real ADS clients: istiod's metric names, types, labels and buckets, and counters and
 * histograms that move by exactly what the clients observed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMeshpilot, serviceYaml, type TestMesh } from '../helpers/meshpilot.js';
import { AdsTestClient, DeltaTestClient, type Response } from '../helpers/ads-client.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE } from '../../src/proto/type-urls.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { caClient, createCertificate, generateCsr } from '../../src/security/workload-agent.js';

const NODE = (pod: string): string => `sidecar~10.1.0.1~${pod}.default~default.svc.cluster.local`;
const META = { NAMESPACE: 'default', ISTIO_VERSION: '1.24.0', INTERCEPTION_MODE: 'NONE' };
let mesh: TestMesh;
const clients: AdsTestClient[] = [];

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Prometheus text exposition → samples (enough of the format for prom-client's output). */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) { types.set(t[1]!, t[2]!); continue; }
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

async function scrape(): Promise<ReturnType<typeof parseMetrics> & { get(name: string, labels?: Record<string, string>): number }> {
  const res = await fetch(`http://127.0.0.1:${mesh.server.monitoringPort}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const parsed = parseMetrics(await res.text());
  return {
    ...parsed,
    get(name, labels = {}) {
      return parsed.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((a, s) => a + s.value, 0);
    },
  };
}

function client(pod: string): AdsTestClient {
  const c = new AdsTestClient(mesh.xdsAddress, NODE(pod), META);
  clients.push(c);
  return c;
}

const reviews = (port: number): string => serviceYaml({ name: 'reviews', port, endpoints: [{ ip: '10.0.0.1', port: 9080 }] });

before(async () => {
  // inlineMax 0: every generation batch goes to the worker pool, whose metrics this test checks.
  mesh = await startMeshpilot({ 'reviews.yaml': reviews(9080) }, { pushAckTimeoutMs: 300, inlineMax: 0 });
});

after(async () => {
  for (const c of clients) c.close();
  await mesh.stop();
});

/** Subscribe to CDS and LDS and ACK both; returns the responses. */
async function subscribeAndAck(c: AdsTestClient): Promise<Response[]> {
  c.send({ type_url: CLUSTER_TYPE });
  const cds = await c.next(CLUSTER_TYPE);
  c.ack(cds);
  c.send({ type_url: LISTENER_TYPE });
  const lds = await c.next(LISTENER_TYPE);
  c.ack(lds);
  return [cds, lds];
}

test('names, types and buckets are istiod\'s', async () => {
  const m = await scrape();
  const expectTypes: Record<string, string> = {
    pilot_xds: 'gauge', pilot_xds_pushes: 'counter', pilot_xds_push_time: 'histogram', pilot_proxy_convergence_time: 'histogram',
    pilot_proxy_queue_time: 'histogram', pilot_debounce_time: 'histogram', pilot_pushcontext_init_seconds: 'histogram',
    pilot_push_triggers: 'counter', pilot_inbound_updates: 'counter', pilot_services: 'gauge', pilot_xds_config_size_bytes: 'histogram',
    pilot_xds_send_time: 'histogram', pilot_total_xds_rejects: 'counter', pilot_xds_cds_reject: 'gauge', pilot_xds_eds_reject: 'gauge',
    pilot_xds_lds_reject: 'gauge', pilot_xds_rds_reject: 'gauge', pilot_xds_expired_nonce: 'counter', pilot_xds_write_timeout: 'counter',
    pilot_total_xds_internal_errors: 'counter', meshpilot_worker_queue_depth: 'gauge', meshpilot_worker_utilization: 'gauge',
    meshpilot_worker_task_seconds: 'histogram', meshpilot_xds_cache_hits: 'counter', meshpilot_xds_cache_misses: 'counter',
    process_cpu_user_seconds_total: 'counter', process_resident_memory_bytes: 'gauge', nodejs_eventloop_lag_seconds: 'gauge',
  };
  for (const [name, type] of Object.entries(expectTypes)) assert.equal(m.types.get(name), type, `${name} is a ${type}`);
  const buckets = (name: string): string[] => [...new Set(m.samples.filter((s) => s.name === `${name}_bucket`).map((s) => s.labels.le!))];
  assert.deepEqual(buckets('pilot_proxy_convergence_time'), ['0.1', '0.5', '1', '3', '5', '10', '20', '30', '+Inf']);
  assert.deepEqual(buckets('pilot_proxy_queue_time'), ['0.1', '0.5', '1', '3', '5', '10', '20', '30', '+Inf']);
  assert.deepEqual(buckets('pilot_debounce_time'), ['0.01', '0.1', '1', '3', '5', '10', '20', '30', '+Inf']);
  assert.deepEqual(buckets('pilot_pushcontext_init_seconds'), ['0.01', '0.1', '0.5', '1', '3', '5', '+Inf']);
  assert.deepEqual(buckets('pilot_xds_send_time'), ['0.01', '0.1', '1', '3', '5', '10', '20', '30', '+Inf']);
  assert.equal(m.get('pilot_services'), 1);
});

test('pushes, sizes, convergence, triggers and inbound updates move by what the clients saw', async () => {
  const a = client('metrics-a');
  const b = client('metrics-b');
  const before0 = await scrape();
  await subscribeAndAck(a);
  await subscribeAndAck(b);
  const m1 = await scrape();
  // Two proxies × (one CDS + one LDS) initial responses.
  assert.equal(m1.get('pilot_xds_pushes', { type: 'cds' }) - before0.get('pilot_xds_pushes', { type: 'cds' }), 2);
  assert.equal(m1.get('pilot_xds_pushes', { type: 'lds' }) - before0.get('pilot_xds_pushes', { type: 'lds' }), 2);
  assert.equal(m1.get('pilot_xds_config_size_bytes_count', { type: 'cds' }) - before0.get('pilot_xds_config_size_bytes_count', { type: 'cds' }), 2);
  assert.ok(m1.get('pilot_xds_config_size_bytes_sum', { type: 'cds' }) > before0.get('pilot_xds_config_size_bytes_sum', { type: 'cds' }) + 200);
  assert.equal(m1.get('pilot_xds_send_time_count') - before0.get('pilot_xds_send_time_count'), 4);
  assert.equal(m1.get('pilot_xds', { version: '1.24.0' }), 2);
  assert.ok(m1.get('meshpilot_xds_cache_misses', { type: 'cds' }) >= 1, 'the first CDS was generated');
  assert.ok(m1.get('meshpilot_worker_task_seconds_count', { type: 'cds' }) >= 1);

  // A config change: the service's port moves, which changes CDS and LDS for both proxies.
  const seenA = a.received.length;
  const seenB = b.received.length;
  mesh.write('reviews.yaml', reviews(9081));
  const cdsA = await a.next(CLUSTER_TYPE, 5000, seenA);
  const cdsB = await b.next(CLUSTER_TYPE, 5000, seenB);
  a.ack(cdsA); b.ack(cdsB);
  const ldsA = await a.next(LISTENER_TYPE, 5000, seenA);
  const ldsB = await b.next(LISTENER_TYPE, 5000, seenB);
  a.ack(ldsA); b.ack(ldsB);
  await mesh.settle();
  const m2 = await scrape();
  const sent = (c: AdsTestClient, from: number, type: string): number => c.received.slice(from).filter((r) => r.type_url === type).length;
  assert.equal(m2.get('pilot_xds_pushes', { type: 'cds' }) - m1.get('pilot_xds_pushes', { type: 'cds' }), sent(a, seenA, CLUSTER_TYPE) + sent(b, seenB, CLUSTER_TYPE));
  assert.equal(m2.get('pilot_xds_pushes', { type: 'lds' }) - m1.get('pilot_xds_pushes', { type: 'lds' }), sent(a, seenA, LISTENER_TYPE) + sent(b, seenB, LISTENER_TYPE));
  assert.equal(m2.get('pilot_debounce_time_count') - m1.get('pilot_debounce_time_count'), 1, 'one debounced push');
  assert.equal(m2.get('pilot_pushcontext_init_seconds_count') - m1.get('pilot_pushcontext_init_seconds_count'), 1);
  // The rewritten file carries a Service, a Pod and an EndpointSlice; only the Service changed.
  assert.equal(m2.get('pilot_push_triggers', { type: 'service' }) - m1.get('pilot_push_triggers', { type: 'service' }), 1);
  assert.equal(m2.get('pilot_inbound_updates', { type: 'svc' }) - m1.get('pilot_inbound_updates', { type: 'svc' }), 1);
  assert.equal(m2.get('pilot_proxy_convergence_time_count') - m1.get('pilot_proxy_convergence_time_count'), 2, 'both proxies converged');
  assert.equal(m2.get('pilot_proxy_queue_time_count') - m1.get('pilot_proxy_queue_time_count'), 2);
  // Convergence counts from the file event, through the 50 ms debounce: at least that long, under a second here.
  const conv = m2.get('pilot_proxy_convergence_time_sum') - m1.get('pilot_proxy_convergence_time_sum');
  assert.ok(conv >= 2 * 0.05 && conv < 2 * 5, `convergence sum ${conv}s`);
  // The push generated in the worker pool since the previous scrape: some of its capacity was busy.
  const util = m2.get('meshpilot_worker_utilization');
  assert.ok(util > 0 && util <= 1, `utilisation ${util}`);
  assert.ok(m2.get('meshpilot_worker_task_seconds_count') > m1.get('meshpilot_worker_task_seconds_count'));
  // Clusters the port change did not touch (BlackHoleCluster, PassthroughCluster) came from the cache.
  assert.ok(m2.get('meshpilot_xds_cache_hits', { type: 'cds' }) - m1.get('meshpilot_xds_cache_hits', { type: 'cds' }) >= 2);
  assert.ok(m2.get('pilot_xds_push_time_count', { type: 'cds' }) - m1.get('pilot_xds_push_time_count', { type: 'cds' }) >= 2);
});

test('a NACK counts as a reject per type and per node; an old nonce as an expired nonce', async () => {
  const c = client('metrics-nacker');
  const m0 = await scrape();
  c.send({ type_url: CLUSTER_TYPE });
  const cds = await c.next(CLUSTER_TYPE);
  c.nack(cds, '', 'cluster outbound|9081||reviews.default.svc.cluster.local: rejected by test');
  c.send({ type_url: ENDPOINT_TYPE, resource_names: ['outbound|9081||reviews.default.svc.cluster.local'] });
  const eds = await c.next(ENDPOINT_TYPE);
  c.ack(eds, ['outbound|9081||reviews.default.svc.cluster.local']);
  // An ACK that carries a nonce the server never sent last: expired.
  c.send({ type_url: ENDPOINT_TYPE, version_info: eds.version_info, response_nonce: 'not-the-last-nonce', resource_names: ['outbound|9081||reviews.default.svc.cluster.local'] });
  await new Promise((r) => setTimeout(r, 200));
  const m1 = await scrape();
  assert.equal(m1.get('pilot_total_xds_rejects', { type: 'cds' }) - m0.get('pilot_total_xds_rejects', { type: 'cds' }), 1);
  assert.equal(m1.get('pilot_total_xds_rejects', { type: 'eds' }) - m0.get('pilot_total_xds_rejects', { type: 'eds' }), 0);
  assert.equal(m1.get('pilot_xds_cds_reject', { node: NODE('metrics-nacker'), err: '3' }), 1);
  assert.equal(m1.get('pilot_xds_expired_nonce', { type: 'eds' }) - m0.get('pilot_xds_expired_nonce', { type: 'eds' }), 1);
});

test('delta streams count the same way: a response is a push, a NACK a reject; syncz reports their state', async () => {
  const d = new DeltaTestClient(mesh.xdsAddress, NODE('metrics-delta'), META);
  try {
    const m0 = await scrape();
    d.send({ type_url: CLUSTER_TYPE });
    const first = await d.next(CLUSTER_TYPE);
    d.ack(first);
    d.send({ type_url: LISTENER_TYPE });
    const lds = await d.next(LISTENER_TYPE);
    d.send({ type_url: LISTENER_TYPE, response_nonce: lds.nonce, error_detail: { code: 13, message: 'listener rejected by test' } });
    await new Promise((r) => setTimeout(r, 200));
    const m1 = await scrape();
    assert.equal(m1.get('pilot_xds_pushes', { type: 'cds' }) - m0.get('pilot_xds_pushes', { type: 'cds' }), 1);
    assert.equal(m1.get('pilot_xds_pushes', { type: 'lds' }) - m0.get('pilot_xds_pushes', { type: 'lds' }), 1);
    assert.equal(m1.get('pilot_total_xds_rejects', { type: 'lds' }) - m0.get('pilot_total_xds_rejects', { type: 'lds' }), 1);
    assert.equal(m1.get('pilot_xds_lds_reject', { node: NODE('metrics-delta'), err: '13' }), 1);
    const syncz = await (await fetch(`http://127.0.0.1:${mesh.server.monitoringPort}/debug/syncz`)).json() as Array<Record<string, unknown>>;
    const mine = syncz.find((x) => x.proxy === NODE('metrics-delta'))!;
    assert.equal(mine.xds_kind, 'delta');
    assert.equal(mine.cluster_sent, mine.cluster_acked, 'CDS ACKed: SYNCED');
    assert.notEqual(mine.listener_sent, mine.listener_acked, 'LDS NACKed: not synced');
    assert.deepEqual(mine.errors, { LDS: 'listener rejected by test' });
  } finally {
    d.close();
  }
});

test('each server has its own registry', async () => {
  const other = await startMeshpilot({ 'reviews.yaml': reviews(9080) });
  try {
    const res = await fetch(`http://127.0.0.1:${other.server.monitoringPort}/metrics`);
    const m = parseMetrics(await res.text());
    const pushes = m.samples.filter((s) => s.name === 'pilot_xds_pushes').reduce((a, s) => a + s.value, 0);
    assert.equal(pushes, 0, 'a fresh server has pushed nothing, whatever the first one did');
    const mine = await scrape();
    assert.ok(mine.get('pilot_xds_pushes') > 0);
  } finally {
    await other.stop();
  }
});

test('citadel_server_csr_count counts CSRs received by the CA; issuances count only the signed ones', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshpilot-obs-ca-'));
  fs.writeFileSync(path.join(tmp, 'tokens'), 'tok-sleep default sleep\n');
  const ca = await startMeshpilot({}, { secureXdsPort: 0, caDir: path.join(tmp, 'ca'), caTokenFile: path.join(tmp, 'tokens') });
  try {
    const rootPem = fs.readFileSync(path.join(tmp, 'ca', 'istio-ca-secret', 'root-cert.pem'), 'utf8');
    const client = caClient({ address: `127.0.0.1:${ca.server.secureXdsPort}`, rootPem });
    try {
      const { csrPem } = await generateCsr(['spiffe://cluster.local/ns/default/sa/sleep']);
      await createCertificate(client, { csr: csrPem, validityDuration: 0, metadata: {} }, 'tok-sleep');
      await assert.rejects(createCertificate(client, { csr: csrPem, validityDuration: 0, metadata: {} }, 'wrong-token'));
    } finally {
      client.close();
    }
    const m = parseMetrics(await (await fetch(`http://127.0.0.1:${ca.server.monitoringPort}/metrics`)).text());
    const v = (name: string): number | undefined => m.samples.find((x) => x.name === name)?.value;
    assert.equal(m.types.get('citadel_server_csr_count'), 'counter');
    assert.equal(v('citadel_server_csr_count'), 2);
    assert.equal(v('citadel_server_success_cert_issuance_count'), 1);
  } finally {
    await ca.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
